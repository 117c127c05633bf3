"""``finvault disclose`` and ``finvault qr``: a holder shares a receipt, withholding the fields they
choose, or as the QR code of its verification link.

The smaller receipt verifies VALID at any node, like the original: the digest, signature, proof
and anchor are unchanged, and each withheld field's hash moves to ``obfuscated``
(:mod:`chain.core.disclosure`). Bad input is one line and exit 2, and nothing is written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from chain.errors import ConfigError
from chain.service.files import replace_secret_file

if TYPE_CHECKING:  # pydantic loads when a command runs, not for its --help
    from chain.core.receipt import Receipt


def _read_receipt(path: Path) -> Receipt:
    """The receipt in ``path``; a file that cannot be read or parsed is a one-line ConfigError."""
    from chain.core.receipt import ReceiptError, parse_receipt

    try:
        return parse_receipt(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except ReceiptError as exc:
        raise ConfigError(f"{path} is not a finvault receipt: {exc.message}") from None


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
    """Withhold fields of RECEIPT; the smaller receipt still verifies.

    Fields are RFC 6901 pointers, e.g. /credentialSubject/grade; withholding an object withholds
    everything in it, and one element of an array cannot be withheld alone."""
    from chain.core.canonical import DocumentError, flatten
    from chain.core.disclosure import show_only, withhold, withholdable
    from chain.core.receipt import build_receipt

    if sum((bool(hidden), bool(shown), listing)) != 1:
        raise ConfigError("give --hide POINTER..., --show POINTER... or --list (one of the three)")
    receipt = _read_receipt(receipt_path)
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
    text = smaller.to_json()
    if out is None:
        sys.stdout.write(text)
        return
    replace_secret_file(out, text.encode("utf-8"))  # private: a receipt holds personal data
    withheld = len(smaller.obfuscated) - len(receipt.obfuscated)
    click.echo(f"{out}: {withheld} more fields withheld ({len(smaller.obfuscated)} in all)", err=True)


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
def qr_command(receipt_paths: tuple[Path, ...], out_dir: Path | None) -> None:
    """Write the QR code PNG of each RECEIPT's verification link.

    The issuer writes receipts with their link (node URL + leaf); the QR code is rendered here when
    someone wants one, rather than for every certificate at issuance. Bad input is one line and
    exit 2, and nothing is written for that receipt or any after it. The PNG is
    RECEIPT's name with .png, beside it or in --out."""
    from chain.qr import qr_png
    from chain.service.files import private_dir

    folder = private_dir(out_dir) if out_dir is not None else None
    for path in receipt_paths:
        receipt = _read_receipt(path)
        if receipt.link is None:
            raise ConfigError(f"{path} carries no verification link (issued without --node-url)")
        target = (folder or path.parent) / f"{path.stem}.png"
        replace_secret_file(target, qr_png(receipt.link))  # the link names the holder's leaf
        click.echo(str(target))
