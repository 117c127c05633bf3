"""``finvault issuer ...``: the registry side of being an issuer.

The owner registers issuers and sets whether they may anchor (``register``, ``status``); an issuer
creates its document-signing key (``keygen``: a passphrase-encrypted PKCS#8 file, its public key
and key id) and registers or revokes keys on-chain (``add-key``, ``revoke-key``). The passphrase
comes from ``--passphrase-file``, ``FINVAULT_SIGNING_KEY_PASSPHRASE`` (the issuer settings) or a
prompt, never from the command line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives import serialization

from chain.cli import chain_options, read_secret, registry_option, session, signer_options
from chain.core.encoding import hex0x
from chain.core.signing import load_public_key, public_key_info
from chain.errors import ConfigError
from chain.keys import encrypt_private_key, generate_private_key
from chain.service.files import write_secret_file
from chain.service.settings import load_settings, normalize_address
from issuer.settings import IssuerSettings

SIGNING_KEY_FILE = "signing-key.pem"
SIGNING_PUBLIC_KEY_FILE = "signing-key.pub.pem"
SIGNING_KEY_INFO_FILE = "signing-key.json"


@click.group("issuer")
def issuer_group() -> None:
    """Register issuers (owner) and manage their document-signing keys (issuer)."""


@issuer_group.command("register")
@click.argument("address")
@click.option("--name", required=True)
@click.option("--uri", required=True, help="Where the issuer describes itself (https URL).")
@registry_option
@chain_options
@signer_options
def issuer_register(address: str, name: str, uri: str, registry: str | None, **options: Any) -> None:
    """Register ADDRESS as an active issuer (registry owner only)."""
    chain = session(registry=registry, **options)
    receipt = chain.registry.register_issuer(normalize_address(address), name, uri)
    click.echo(
        f"registered {address.lower()} as {name!r} in block {receipt.block_number} ({receipt.tx_hash})"
    )


@issuer_group.command("status")
@click.argument("address")
@click.option("--active/--inactive", default=None, help="Set the status (owner only); omit to show it.")
@registry_option
@chain_options
@signer_options
def issuer_status(address: str, active: bool | None, registry: str | None, **options: Any) -> None:
    """Show or set whether ADDRESS may anchor."""
    chain = session(registry=registry, **options)
    address = normalize_address(address)
    if active is not None:
        receipt = chain.registry.set_issuer_active(address, active)
        click.echo(f"{address} {'activated' if active else 'suspended'} in block {receipt.block_number}")
        return
    info = chain.reader.issuer_of(address)
    state = "active" if info.active else "inactive" if info.registered else "not registered"
    click.echo(f"{address}: {state}" + (f" ({info.name}, {info.uri})" if info.registered else ""))


@issuer_group.command("keygen")
@click.option(
    "--algorithm",
    type=click.Choice(["ed25519", "rsa-2048", "rsa-3072", "rsa-4096"]),
    default="ed25519",
    show_default=True,
)
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def issuer_keygen(algorithm: str, out_dir: Path, passphrase_file: Path | None) -> None:
    """Create a passphrase-encrypted document-signing key in OUT."""
    target = out_dir / SIGNING_KEY_FILE
    if target.exists():
        raise ConfigError(f"{target} exists: refusing to overwrite a signing key")
    stored = load_settings(IssuerSettings).signing_key_passphrase
    passphrase = read_secret(
        "Signing key passphrase", passphrase_file, stored.get_secret_value() if stored else None, confirm=True
    )
    key = generate_private_key(algorithm)  # type: ignore[arg-type]  # click.Choice guarantees it
    info = public_key_info(key)
    pem = encrypt_private_key(key, passphrase)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_secret_file(target, pem)
    public_pem = load_pem_public(info.der)
    (out_dir / SIGNING_PUBLIC_KEY_FILE).write_bytes(public_pem)
    (out_dir / SIGNING_KEY_INFO_FILE).write_text(
        json.dumps(
            {"keyId": hex0x(info.key_id), "algorithm": info.algorithm.label, "publicKey": hex0x(info.der)},
            indent=2,
        )
        + "\n"
    )
    click.echo(f"key id {hex0x(info.key_id)} ({info.algorithm.label}) written to {out_dir}")


def load_pem_public(der: bytes) -> bytes:
    """A DER SubjectPublicKeyInfo as PEM."""
    public = serialization.load_der_public_key(der)
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read_public_key(path: Path) -> bytes:
    if path.is_dir():
        path = path / SIGNING_PUBLIC_KEY_FILE
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read public key {path}: {exc.strerror}") from None


@issuer_group.command("add-key")
@click.argument("public_key", type=click.Path(exists=True, path_type=Path))
@registry_option
@chain_options
@signer_options
def issuer_add_key(public_key: Path, registry: str | None, **options: Any) -> None:
    """Register PUBLIC_KEY (a keygen directory or a public key PEM/DER) for the signing issuer."""
    info = load_public_key(_read_public_key(public_key))
    chain = session(registry=registry, **options)
    receipt = chain.registry.add_key(info.key_id, int(info.algorithm), info.der)
    click.echo(f"key {hex0x(info.key_id)} ({info.algorithm.label}) added in block {receipt.block_number}")


@issuer_group.command("revoke-key")
@click.argument("key_id")
@registry_option
@chain_options
@signer_options
def issuer_revoke_key(key_id: str, registry: str | None, **options: Any) -> None:
    """Revoke one of the signing issuer's keys from the next block on."""
    chain = session(registry=registry, **options)
    receipt = chain.registry.revoke_key(bytes.fromhex(key_id.removeprefix("0x")))
    click.echo(f"key {key_id.lower()} revoked in block {receipt.block_number}")
