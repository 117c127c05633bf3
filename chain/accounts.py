"""Transaction signers: an encrypted eth-account keystore, or anvil's public dev accounts.

A signer exposes an address and signs EIP-1559 transactions; where the key lives is its own
business, so ape accounts, hardware wallets and KMS signers can plug in behind the same protocol.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain.errors import ConfigError, KeystoreError
from chain.service.files import require_private, write_secret_file

#: anvil's well-known development mnemonic. Its keys are public: never use them on a real network.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
#: Chain ids where dev accounts are acceptable (anvil, hardhat).
DEV_CHAIN_IDS = frozenset({31337, 1337})


class Signer(Protocol):
    """What a transaction sender needs of an account: its address, and signing; the key stays inside."""

    @property
    def address(self) -> str:
        """The account that signs, as ``0x`` hex (the transactions' ``from``)."""
        ...

    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        """Returns the raw signed transaction."""
        ...


class LocalSigner:
    """Signs with a private key held in memory (decrypted keystore or dev account)."""

    def __init__(self, account: LocalAccount) -> None:
        self._account = account

    def __repr__(self) -> str:  # never shows the key
        return f"LocalSigner({self.address})"

    @property
    def address(self) -> str:
        """The account's address, lowercase ``0x`` hex."""
        return str(self._account.address).lower()

    def sign_transaction(self, tx: dict[str, Any]) -> bytes:
        """Returns the raw signed transaction."""
        return bytes(self._account.sign_transaction(tx).raw_transaction)

    @classmethod
    def from_keystore(cls, path: Path, password: str) -> LocalSigner:
        """Decrypts the eth-account keystore at ``path``; raises :class:`KeystoreError` if it cannot,
        and :class:`ConfigError` if others on this machine can read it."""
        if path.exists():
            require_private(path, "keystore")
        try:
            keystore = json.loads(path.read_text())
        except OSError as exc:
            raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from None
        except ValueError:
            raise KeystoreError(f"{path} is not a keystore JSON file") from None
        try:
            key = Account.decrypt(keystore, password)
        except ValueError as exc:
            if "MAC mismatch" in str(exc):
                raise KeystoreError(f"wrong password for keystore {path}") from None
            raise KeystoreError(f"cannot decrypt keystore {path}: {exc}") from None
        return cls(Account.from_key(key))

    @classmethod
    def dev(cls, index: int = 0) -> LocalSigner:
        """anvil's dev account ``index`` (0 is the default deployer)."""
        Account.enable_unaudited_hdwallet_features()
        account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        return cls(account)


def write_keystore(path: Path, private_key: bytes, password: str) -> str:
    """Encrypts ``private_key`` into an eth-account keystore file (scrypt); returns the address."""
    keystore = Account.encrypt(private_key, password)
    write_secret_file(path, json.dumps(keystore).encode())
    return "0x" + str(keystore["address"]).lower().removeprefix("0x")


def require_dev_chain(chain_id: int) -> None:
    """Dev accounts' keys are public: refuse them anywhere but a local development chain."""
    if chain_id not in DEV_CHAIN_IDS:
        raise ConfigError(
            f"--dev uses anvil's public test keys and is refused on chain id {chain_id}; use --keystore"
        )
