"""Files the issuer hands out: receipts, their QR codes and public batch manifests.

- ``<stem>.json``: the certificate's ``finvault-receipt/2`` receipt;
- ``<stem>.png``: a QR code of its verification link, the node's page for its leaf (when the issuer
  is configured with a node URL and QR codes);
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
import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chain.core.encoding import hex0x
from chain.core.merkle import MerkleTree
from chain.core.receipt import RECEIPT_FORMAT
from chain.qr import qr_png
from chain.service.files import private_dir

MANIFEST_FORMAT = "finvault-manifest/1"
MANIFEST_DIR = "manifests"
MAX_STEM_LENGTH = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: The C string encoder of ``json.dumps(..., ensure_ascii=False)``.
_json_string: Callable[[str], str] = json.encoder.encode_basestring


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
    """Writes ``data`` to ``path`` through a private (0600) temporary file beside it (named by this
    process and thread) and a rename; the caller syncs
    (:func:`chain.service.files.sync_files`) before it counts on the file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def dumps_indented(value: Any, indent: str = "") -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)``, byte for byte, for JSON data (string
    keys): the standard library drops to pure-Python encoding whenever ``indent`` is set, and this
    is what every receipt file costs."""
    if isinstance(value, str):
        return _json_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return json.dumps(value)
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{_json_string(key)}: {dumps_indented(item, inner)}" for key, item in value.items()]
    elif isinstance(value, list | tuple):
        if not value:
            return "[]"
        items = [inner + dumps_indented(item, inner) for item in value]
    else:
        raise TypeError(f"{type(value).__name__} is not JSON data")
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return opening + "\n" + ",\n".join(items) + "\n" + indent + closing


def receipt_text(
    *, credential: str | dict[str, Any], path: Sequence[str], root: str, anchor: dict[str, Any]
) -> str:
    """The text :meth:`ReceiptV2.to_json` gives for these parts, without building the model:
    ``credential`` is the SD-JWT or the credential with its proof, ``anchor`` the anchor's JSON
    object (``chainId``, ``registry``, ``issuer``). The tests hold the two equal.

    Spelled out rather than walked: every receipt file costs this (a third less than
    :func:`dumps_indented` over the whole receipt)."""
    shown = _json_string(credential) if isinstance(credential, str) else dumps_indented(credential, "  ")
    steps = "[\n" + ",\n".join(f"      {_json_string(step)}" for step in path) + "\n    ]" if path else "[]"
    return (
        f'{{\n  "format": {_json_string(RECEIPT_FORMAT)},\n  "credential": {shown},\n'
        f'  "proof": {{\n    "path": {steps},\n    "root": {_json_string(root)}\n  }},\n'
        f'  "anchor": {dumps_indented(anchor, "  ")}\n}}\n'
    )


def write_receipt_text(out_dir: Path, certificate_id: str, text: str, qr_link: str | None) -> list[Path]:
    """Writes a receipt's text (and a QR code of ``qr_link``, if given), 0600; returns the paths
    written, receipt first."""
    stem = receipt_stem(certificate_id)
    paths = [out_dir / f"{stem}.json"]
    write_atomic(paths[0], text.encode())
    if qr_link:
        paths.append(out_dir / f"{stem}.png")
        write_atomic(paths[1], qr_png(qr_link))
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
