"""The indexer's ``finvault`` commands, named without importing them (see :mod:`chain.entry`)."""

from __future__ import annotations

#: name -> (the click command, its one-line help); tests/unit/test_entry.py holds them to the commands.
COMMANDS = {
    "sync": ("indexer.cli:sync", "Catch the mirror up with the chain (or to --to N) and exit."),
    "reconcile": (
        "indexer.cli:reconcile",
        "Compare the mirror with the chain, row by row, and report every drift.",
    ),
    "resync": (
        "indexer.cli:resync",
        "Repair a drifted mirror: delete everything from block --from up and re-read it from the chain.",
    ),
}
