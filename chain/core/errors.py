"""The base of FinVault's one exception family, and the errors the pure core raises.

Every error a user can see carries a stable ``code`` (for programs, HTTP mappings and tests) and a
one-line message (for people). Secrets never go into messages. The rest of the family, the errors
of I/O (RPC, settings, transactions), is in :mod:`chain.errors`, which re-exports these.
"""

from __future__ import annotations


class FinVaultError(Exception):
    """Base of every error FinVault raises on purpose."""

    code: str = "finvault_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The one-line message for people (the ``code`` when none was given)."""
        return str(self.args[0]) if self.args else self.code

    def diagnostics(self) -> str:
        """A one-line description suitable for a CLI or a log line."""
        return f"{self.code}: {self.message}"


class DataIntegrityError(FinVaultError, ValueError):
    """A Data Integrity proof that is malformed, of another kind, or does not verify."""

    code = "data_integrity_invalid"


class KeystoreError(FinVaultError):
    """A keystore or key file could not be read or decrypted."""

    code = "keystore_error"
