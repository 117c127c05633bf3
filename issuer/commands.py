"""The issuer's ``finvault`` commands, named without importing them (see :mod:`chain.entry`)."""

from __future__ import annotations

#: name -> (the click command, its one-line help); tests/unit/test_entry.py holds them to the commands.
COMMANDS = {
    "issuer": (
        "issuer.registration:issuer_group",
        "Register issuers (owner) and manage their document-signing keys (issuer).",
    ),
    "issue": (
        "issuer.cli:issue",
        "Store the certificates of INPUT (CSV, JSON Lines or a JSON array) as pending.",
    ),
    "anchor": (
        "issuer.cli:anchor_command",
        "Finish interrupted batches, then seal and anchor every pending certificate.",
    ),
    "revoke": (
        "issuer.cli:revoke",
        "Revoke the certificates of RECEIPT files (one transaction per batch), or --batch ROOT.",
    ),
    "issuer-api": ("issuer.cli:issuer_api", "Run the issuer HTTP API and manage its API keys."),
}
