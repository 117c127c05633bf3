"""The node's ``finvault`` command, named without importing it (see :mod:`chain.entry`)."""

from __future__ import annotations

#: name -> (the click command, its one-line help); tests/unit/test_entry.py holds them to the commands.
COMMANDS = {
    "node": (
        "node.cli:node",
        "Run a verification node: follow the registry into the mirror and serve the HTTP API.",
    ),
}
