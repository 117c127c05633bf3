"""The ``chain`` package's ``finvault`` commands, named without importing them (see :mod:`chain.entry`)."""

from __future__ import annotations

#: name -> (the click command, its one-line help); tests/unit/test_entry.py holds them to the commands.
COMMANDS = {
    "devchain": ("chain.cli:devchain", "Run a local anvil chain on 127.0.0.1 until Ctrl-C."),
    "deploy": ("chain.cli:deploy", "Deploy FinVaultRegistry from the committed artifact."),
    "account": ("chain.cli:account", "Manage the encrypted keystore of a sending account."),
    "verify": (
        "chain.cli:verify_command",
        "Verify receipt files against a node (--node URL) or straight against the chain.",
    ),
    "disclose": ("chain.holder:disclose", "Withhold claims of RECEIPT; the smaller receipt still verifies."),
    "qr": (
        "chain.holder:qr_command",
        "Write the QR code PNG of each RECEIPT's verification link.",
    ),
}
