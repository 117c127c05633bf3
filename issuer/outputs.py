"""Files the issuer hands out: receipts, their QR codes and public batch manifests.

- ``<stem>.json``: the certificate's ``finvault-receipt/1`` receipt;
- ``<stem>.png``: a QR code of the receipt's verification link (when it has one);
- ``manifests/<root>.json``: the batch's public manifest, ``finvault-manifest/1``::

      {"format": "finvault-manifest/1", "root": "0x…", "count": 3, "leaves": ["0x…", …]}

  with the leaf hashes in tree order (ascending). It holds hashes only, no personal data, so it
  can be published; whoever has it can rebuild the tree and every proof.

``<stem>`` is the certificate id when that is a safe file name (letters, digits, ``.``, ``_``,
``-``; no leading dot; at most 100 characters). Any other id is sanitized and given a suffix from
its SHA-256, so two ids never share a file. Every file is written to a temporary name in the same
directory and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path

import qrcode  # type: ignore[import-untyped]  # qrcode ships no type information
from qrcode.image.pure import PyPNGImage  # type: ignore[import-untyped]

from chain.core.encoding import hex0x
from chain.core.merkle import MerkleTree
from chain.core.receipt import Receipt
from chain.service.files import private_dir

MANIFEST_FORMAT = "finvault-manifest/1"
MANIFEST_DIR = "manifests"
MAX_STEM_LENGTH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: Pixels per QR module; with the standard 4-module quiet zone a link fits in about 250x250 px.
QR_BOX_SIZE = 5


def receipt_stem(certificate_id: str) -> str:
    """The file name (without extension) for a certificate's receipt and QR code."""
    if (
        len(certificate_id) <= MAX_STEM_LENGTH
        and not _UNSAFE.search(certificate_id)
        and not certificate_id.startswith(".")
    ):
        return certificate_id
    safe = _UNSAFE.sub("_", certificate_id).lstrip(".")[:MAX_STEM_LENGTH] or "certificate"
    return f"{safe}-{hashlib.sha256(certificate_id.encode()).hexdigest()[:12]}"


def write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a private (0600) temporary file and a rename; the
    caller syncs (:func:`chain.service.files.sync_files`) before it counts on the file."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def qr_png(text: str) -> bytes:
    """A QR code of ``text`` as PNG (pure Python through pypng; medium error correction)."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        box_size=QR_BOX_SIZE,
        border=4,
        image_factory=PyPNGImage,
    )
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image().save(buffer)
    return buffer.getvalue()


def write_receipt(
    out_dir: Path, certificate_id: str, receipt: Receipt, *, qr_code: bool = True
) -> list[Path]:
    """Writes a receipt (and the QR code of its link), 0600; returns the paths written, receipt first."""
    stem = receipt_stem(certificate_id)
    paths = [out_dir / f"{stem}.json"]
    write_atomic(paths[0], receipt.to_json().encode())
    if qr_code and receipt.link:
        paths.append(out_dir / f"{stem}.png")
        write_atomic(paths[1], qr_png(receipt.link))
    return paths


def manifest(tree: MerkleTree) -> dict[str, object]:
    """The public manifest of a batch: its root and leaf hashes in tree order."""
    leaves = [hex0x(leaf) for leaf in tree.leaves]
    return {"format": MANIFEST_FORMAT, "root": hex0x(tree.root), "count": len(leaves), "leaves": leaves}


def write_manifest(out_dir: Path, tree: MerkleTree) -> Path:
    """Writes ``manifests/<root>.json`` under ``out_dir``; returns its path."""
    directory = private_dir(out_dir / MANIFEST_DIR)
    path = directory / f"{hex0x(tree.root)}.json"
    write_atomic(path, (json.dumps(manifest(tree), indent=2) + "\n").encode())
    return path
