"""``finvault disclose`` and ``finvault qr``: a holder shares a receipt, withholding the claims they
choose, or as the QR code of its verification link.

The smaller receipt verifies VALID at any node, like the original:

- ``finvault-receipt/2`` with an SD-JWT: the withheld claims' disclosures (and every disclosure
  nested in them) are dropped (:func:`chain.core.sd_jwt.withhold`); the issuer-signed JWT, and so
  the leaf, the proof and the anchor, are unchanged. A Data Integrity credential's proof covers the
  whole credential: nothing can be withheld from it.
- ``finvault-receipt/1`` (legacy): each withheld field's hash moves to ``obfuscated``
  (:mod:`chain.core.disclosure`); the digest, signature, proof and anchor are unchanged.

Bad input is one line and exit 2, and nothing is written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chain.errors import ConfigError
from chain.service.files import replace_secret_file

if TYPE_CHECKING:  # pydantic loads when a command runs, not for its --help
    from chain.core.receipt import AnyReceipt, Receipt, ReceiptV2


def _read_receipt(path: Path) -> AnyReceipt:
    """The receipt in ``path``; a file that cannot be read or parsed is a one-line ConfigError."""
    from chain.core.receipt import ReceiptError, parse_receipt

    try:
        return parse_receipt(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except ReceiptError as exc:
        raise ConfigError(f"{path} is not a finvault receipt: {exc.message}") from None


def _write(text: str, out: Path | None, summary: str) -> None:
    """``text`` to stdout, or privately to ``out`` (a receipt holds personal data) with ``summary``."""
    if out is None:
        sys.stdout.write(text)
        return
    replace_secret_file(out, text.encode("utf-8"))
    click.echo(f"{out}: {summary}", err=True)


def _shown_value(value: Any) -> str:
    """A claim's value on one line: scalars as JSON, containers by their size."""
    import json

    if isinstance(value, dict):
        return f"{{{len(value)} members}}"
    if isinstance(value, list):
        return f"[{len(value)} elements]"
    return json.dumps(value, ensure_ascii=False)


def _disclose_v2(
    path: Path,
    receipt: ReceiptV2,
    hidden: tuple[str, ...],
    shown: tuple[str, ...],
    listing: bool,
    out: Path | None,
) -> None:
    """``finvault disclose`` of a /2 receipt: its SD-JWT's disclosures dropped by pointer."""
    from chain.core.receipt import build_receipt_v2
    from chain.core.sd_jwt import SdJwtError, disclosed_claims, parse_sd_jwt, show_only, withhold

    if not isinstance(receipt.credential, str):
        raise ConfigError(
            f"{path} carries a Data Integrity credential: its proof covers the whole credential, so no "
            "claim can be withheld from it (share it whole)"
        )
    try:
        if listing:
            for pointer, value in disclosed_claims(receipt.credential).items():
                click.echo(f"{pointer}  {_shown_value(value)}")
            return
        smaller = (
            withhold(receipt.credential, pointers=hidden) if hidden else show_only(receipt.credential, shown)
        )
    except SdJwtError as exc:
        raise ConfigError(exc.message) from None
    result = build_receipt_v2(
        smaller,
        path=list(receipt.proof.path),
        root=receipt.proof.root,
        chain_id=receipt.anchor.chain_id,
        registry=receipt.anchor.registry,
        issuer=receipt.anchor.issuer,
    )
    before, after = len(parse_sd_jwt(receipt.credential).disclosures), len(parse_sd_jwt(smaller).disclosures)
    _write(result.to_json(), out, f"{before - after} claims withheld ({after} still disclosed)")


def _disclose_v1(
    receipt: Receipt, hidden: tuple[str, ...], shown: tuple[str, ...], listing: bool, out: Path | None
) -> None:
    """``finvault disclose`` of a legacy /1 receipt: withheld fields' hashes move to ``obfuscated``."""
    from chain.core.canonical import DocumentError, flatten
    from chain.core.disclosure import show_only, withhold, withholdable
    from chain.core.receipt import build_receipt

    if listing:
        leaves = dict(flatten(receipt.credential))
        for pointer in withholdable(receipt.credential):
            click.echo(f"{pointer}  {leaves[pointer]}" if pointer in leaves else pointer)
        if receipt.obfuscated:
            click.echo(f"({len(receipt.obfuscated)} fields already withheld)", err=True)
        return
    try:
        document = withhold(receipt.document, hidden) if hidden else show_only(receipt.document, shown)
    except DocumentError as exc:
        raise ConfigError(exc.message) from None
    smaller = build_receipt(
        document, signature=receipt.signature, proof=receipt.proof, anchor=receipt.anchor, link=receipt.link
    )
    withheld = len(smaller.obfuscated) - len(receipt.obfuscated)
    _write(smaller.to_json(), out, f"{withheld} more fields withheld ({len(smaller.obfuscated)} in all)")


@click.command("disclose")
@click.argument("receipt_path", metavar="RECEIPT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--hide", "hidden", multiple=True, metavar="POINTER", help="Withhold this field or subtree.")
@click.option("--show", "shown", multiple=True, metavar="POINTER", help="Withhold everything but these.")
@click.option("--list", "listing", is_flag=True, help="Print the pointers that can be withheld.")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
def disclose(
    receipt_path: Path, hidden: tuple[str, ...], shown: tuple[str, ...], listing: bool, out: Path | None
) -> None:
    """Withhold claims of RECEIPT; the smaller receipt still verifies.

    Claims are RFC 6901 pointers, e.g. /credentialSubject/grade; withholding one withholds
    everything in it. In a finvault-receipt/2 SD-JWT, --list names every claim the issuer made
    disclosable, down to single array elements (/credentialSubject/courses/1); a Data Integrity
    credential cannot be disclosed in part. In a legacy finvault-receipt/1, one element of an
    array cannot be withheld alone."""
    from chain.core.receipt import ReceiptV2

    if sum((bool(hidden), bool(shown), listing)) != 1:
        raise ConfigError("give --hide POINTER..., --show POINTER... or --list (one of the three)")
    receipt = _read_receipt(receipt_path)
    if isinstance(receipt, ReceiptV2):
        _disclose_v2(receipt_path, receipt, hidden, shown, listing, out)
    else:
        _disclose_v1(receipt, hidden, shown, listing, out)


def _leaf_v2(path: Path, receipt: ReceiptV2) -> bytes:
    """The Merkle leaf of a /2 receipt, recomputed from what the issuer signed."""
    from chain.core.canonical import DocumentError
    from chain.core.sd_jwt import SdJwtError
    from chain.core.secured import leaf_of

    try:
        return leaf_of(receipt.credential)
    except (SdJwtError, DocumentError) as exc:
        raise ConfigError(f"{path}: its credential cannot be read: {exc.message}") from None


def _verification_link(path: Path, receipt: AnyReceipt, node_url: str | None) -> str:
    """The link a receipt's QR code carries: ``node_url`` + ``/v/`` + the leaf, or a legacy
    receipt's own ``link`` when no ``node_url`` is given."""
    from chain.core.issuance import verification_link
    from chain.core.receipt import ReceiptV2

    if isinstance(receipt, ReceiptV2):
        if node_url is None:
            raise ConfigError(
                f"{path} is a finvault-receipt/2, which carries no link: pass --node-url URL (the "
                "verification node the link should open)"
            )
        return verification_link(node_url, _leaf_v2(path, receipt))
    if node_url is not None:
        return verification_link(node_url, bytes.fromhex(receipt.proof.leaf[2:]))
    if receipt.link is None:
        raise ConfigError(
            f"{path} carries no verification link (issued without --node-url): pass --node-url URL"
        )
    return receipt.link


@click.command("qr")
@click.argument(
    "receipt_paths",
    metavar="RECEIPT...",
    nargs=-1,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the PNGs into this folder (default: beside each receipt).",
)
@click.option(
    "--node-url",
    help="Verification node the link opens (node URL + /v/ + leaf). Needed for finvault-receipt/2, "
    "which carries no link; overrides a legacy receipt's own link.",
)
def qr_command(receipt_paths: tuple[Path, ...], out_dir: Path | None, node_url: str | None) -> None:
    """Write the QR code PNG of each RECEIPT's verification link.

    A finvault-receipt/2 carries no link: it is --node-url + /v/ + the receipt's leaf, recomputed
    from its credential. A legacy finvault-receipt/1 carries the link the issuer wrote (node URL +
    leaf). The QR code is rendered here when someone wants one, rather than for every certificate
    at issuance. Bad input is one line and exit 2, and nothing is written for that receipt or any
    after it. The PNG is RECEIPT's name with .png, beside it or in --out."""
    from chain.qr import qr_png
    from chain.service.files import private_dir
    from chain.service.settings import is_http_url

    if node_url is not None and not is_http_url(node_url):
        raise ConfigError(f"--node-url must be an http(s) URL, not {node_url[:60]!r}")
    folder = private_dir(out_dir) if out_dir is not None else None
    for path in receipt_paths:
        link = _verification_link(path, _read_receipt(path), node_url)
        target = (folder or path.parent) / f"{path.stem}.png"
        replace_secret_file(target, qr_png(link))  # the link names the holder's leaf
        click.echo(str(target))
