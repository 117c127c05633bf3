"""The one exception family of FinVault: its base (from the pure core) and the errors of I/O.

Every error a user can see carries a stable ``code`` (for programs, HTTP mappings and tests) and a
one-line message (for people). Secrets never go into messages.
"""

from __future__ import annotations

from typing import Any

from chain.core.errors import FinVaultError, KeystoreError

__all__ = [
    "ChainMismatch",
    "ConfigError",
    "DatabaseMissing",
    "FinVaultError",
    "KeystoreError",
    "RpcError",
    "RpcUnavailable",
    "ToolchainError",
    "TransactionFailed",
]


class ConfigError(FinVaultError, ValueError):
    """Settings or command-line input that cannot work."""

    code = "config_error"


class DatabaseMissing(ConfigError):
    """A command that reads a database was pointed at a SQLite file that does not exist (a typo in
    ``--db``, or a step not run yet): refused, rather than create an empty one and answer from it."""

    code = "database_missing"


class ToolchainError(FinVaultError):
    """The local toolchain (node_modules, solc-js, anvil) is missing or broken."""

    code = "toolchain_error"


class RpcError(FinVaultError):
    """A JSON-RPC endpoint answered with an error object, or with a result that cannot be one
    (``null`` where the method always has a value). Keeps the raw error and the method for diagnosis."""

    code = "rpc_error"

    def __init__(
        self, message: str, *, rpc_code: int | None = None, data: Any = None, method: str | None = None
    ) -> None:
        super().__init__(message)
        self.rpc_code = rpc_code
        self.data = data
        self.method = method


class RpcUnavailable(FinVaultError, ConnectionError):
    """No configured endpoint answered, after retries and failover."""

    code = "rpc_unavailable"


class ChainMismatch(FinVaultError):
    """The endpoint serves a different chain, or the registry is not what was configured."""

    code = "chain_mismatch"


class TransactionFailed(FinVaultError):
    """A transaction reverted (at estimation or on-chain) or was dropped."""

    code = "transaction_failed"

    def __init__(
        self,
        message: str,
        *,
        error_name: str | None = None,
        error_args: dict[str, Any] | None = None,
        tx_hash: str | None = None,
    ) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.error_args = error_args or {}
        self.tx_hash = tx_hash
