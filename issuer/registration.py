"""``finvault issuer ...``: the registry side of being an issuer.

The owner registers issuers and sets whether they may anchor (``register``, ``status``); an issuer
creates its document-signing key (``keygen``: a passphrase-encrypted PKCS#8 file, its public key
and key id), re-encrypts an older key to current guidance (``reencrypt-key``), and registers or
revokes keys on-chain (``add-key``, ``revoke-key``). The passphrase comes from
``--passphrase-file``, ``FINVAULT_SIGNING_KEY_PASSPHRASE`` (the issuer settings) or a prompt, never
from the command line. Key folders are 0700 and key files 0600; a key or passphrase file others
can read is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chain.cli import chain_options, read_secret, registry_option, session, signer_options
from chain.core.encoding import hex0x
from chain.errors import ConfigError
from chain.service.files import private_dir, replace_secret_file, require_private, write_secret_file

if TYPE_CHECKING:  # the heavy packages load inside the commands that use them (finvault CMD --help)
    from chain.core.signing import PrivateKey
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
    from chain.service.settings import normalize_address

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
    from chain.service.settings import normalize_address

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
    from chain.core.signing import public_key_info
    from chain.keys import encrypt_private_key, generate_private_key

    target = out_dir / SIGNING_KEY_FILE
    if target.exists():
        raise ConfigError(f"{target} exists: refusing to overwrite a signing key")
    passphrase = signing_key_passphrase(passphrase_file, confirm=True)
    key = generate_private_key(algorithm)  # type: ignore[arg-type]  # click.Choice guarantees it
    info = public_key_info(key)
    pem = encrypt_private_key(key, passphrase)
    private_dir(out_dir)
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


def signing_key_passphrase(
    passphrase_file: Path | None, settings: IssuerSettings | None = None, *, confirm: bool = False
) -> str:
    """The signing key's passphrase: from ``passphrase_file``, the issuer settings, or a prompt."""
    from chain.service.settings import load_settings
    from issuer.settings import IssuerSettings

    stored = (settings or load_settings(IssuerSettings)).signing_key_passphrase
    secret = stored.get_secret_value() if stored else None
    return read_secret(
        "Signing key passphrase",
        passphrase_file,
        secret,
        file_option="--passphrase-file",
        env_name="FINVAULT_SIGNING_KEY_PASSPHRASE",
        confirm=confirm,
    )


def read_signing_key(key_dir: Path) -> bytes:
    """The encrypted signing key in ``key_dir``, refused if others on this machine can read it."""
    path = key_dir / SIGNING_KEY_FILE
    require_private(path, "signing key")
    return path.read_bytes()


def load_signing_key(key_dir: Path, passphrase: str) -> PrivateKey:
    """The document-signing key in ``key_dir``, with a warning on stderr if its encryption is
    below current guidance (naming the command that fixes it)."""
    from chain.keys import decrypt_private_key, key_protection

    pem = read_signing_key(key_dir)
    key = decrypt_private_key(pem, passphrase)
    protection = key_protection(pem)
    if not protection.meets_guidance:
        click.echo(
            f"warning: signing key {key_dir / SIGNING_KEY_FILE} is encrypted with "
            f"{protection.describe()}, below current guidance; re-encrypt it in place: "
            f"finvault issuer reencrypt-key --key-dir {key_dir}",
            err=True,
        )
    return key


@issuer_group.command("reencrypt-key")
@click.option("--key-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), required=True)
@click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def issuer_reencrypt_key(key_dir: Path, passphrase_file: Path | None) -> None:
    """Re-encrypt the signing key in KEY_DIR to current guidance, in place, with the same passphrase.

    The old file is kept as signing-key.pem.bak until the new one is written, synced and checked
    to hold the same key; a crash at any point leaves a key that opens.
    """
    from chain.core.signing import public_key_info
    from chain.keys import decrypt_private_key, encrypt_private_key, key_protection

    path = key_dir / SIGNING_KEY_FILE
    old = read_signing_key(key_dir)
    before = key_protection(old)
    passphrase = signing_key_passphrase(passphrase_file)
    key = decrypt_private_key(old, passphrase)
    new = encrypt_private_key(key, passphrase)
    if public_key_info(decrypt_private_key(new, passphrase)) != public_key_info(key):
        raise ConfigError("re-encryption did not round-trip; the key file is unchanged")
    backup = path.with_name(SIGNING_KEY_FILE + ".bak")
    replace_secret_file(backup, old)
    replace_secret_file(path, new)
    backup.unlink()
    click.echo(f"{path}: {before.describe()} -> {key_protection(new).describe()}")


def load_pem_public(der: bytes) -> bytes:
    """A DER SubjectPublicKeyInfo as PEM."""
    from cryptography.hazmat.primitives import serialization

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
    from chain.core.signing import load_public_key

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


@issuer_group.command("did-web")
@click.option(
    "--domain", required=True, help="Where did.json is published: https://DOMAIN/.well-known/did.json."
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="A keygen directory or public key file (repeatable); Ed25519 keys are listed as Multikeys.",
)
@click.option("--issuer", "issuer_address", required=True, help="The issuer's registry account (0x...).")
@click.option("--chain-id", type=int, required=True, help="The chain the registry is on (137: Polygon).")
@click.option("--registry", "registry_address", required=True, help="The FinVault registry contract.")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
def issuer_did_web(
    domain: str,
    keys: tuple[Path, ...],
    issuer_address: str,
    chain_id: int,
    registry_address: str,
    out: Path | None,
) -> None:
    """Write the did.json that binds DOMAIN to this issuer: its keys, and its on-chain account
    (alsoKnownAs eip155:CHAINID:ADDRESS). Issue with FINVAULT_ISSUER_DID_WEB_DOMAIN=DOMAIN, and a
    node reports receipts of this issuer with the verified domain."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from chain.core.data_integrity import multikey
    from chain.core.identity import did_web_document
    from chain.core.signing import KeyAlgorithm, load_public_key
    from chain.service.settings import normalize_address
    from issuer.settings import DOMAIN_PATTERN

    if not DOMAIN_PATTERN.fullmatch(domain):
        raise ConfigError(f"--domain {domain!r} must be a host name such as certificates.uni.example")
    multikeys = []
    for path in keys:
        info = load_public_key(_read_public_key(path))
        if info.algorithm is not KeyAlgorithm.ED25519:
            raise ConfigError(
                f"{path}: only Ed25519 keys have a Multikey form (RSA issuers: see docs/formats.md)"
            )
        public = serialization.load_der_public_key(info.der)
        assert isinstance(public, ed25519.Ed25519PublicKey)
        multikeys.append(multikey(public))
    document = did_web_document(
        domain,
        chain_id=chain_id,
        registry=normalize_address(registry_address),
        issuer=normalize_address(issuer_address),
        multikeys=multikeys,
    )
    text = json.dumps(document, indent=2) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text)
    click.echo(f"publish {out} at https://{domain.lower()}/.well-known/did.json ({document['id']})", err=True)
