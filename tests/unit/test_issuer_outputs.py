"""Receipt files, QR codes and manifests: safe names, atomic writes, decodable content."""

from __future__ import annotations

import io
import json
from pathlib import Path

import png  # type: ignore[import-untyped]
import pytest
import qrcode  # type: ignore[import-untyped]

from chain.core.encoding import hex0x
from chain.core.receipt import parse_receipt
from chain.qr import QR_BOX_SIZE, QR_MASK, qr_png
from issuer import outputs
from issuer.outputs import (
    MANIFEST_FORMAT,
    manifest,
    receipt_stem,
    write_atomic,
    write_manifest,
    write_receipt_text,
)
from tests.factories import make_batch

LINK = "https://verify.example/v/0x" + "ab" * 32


@pytest.mark.parametrize("certificate_id", ["cert-0001", "A.B_c-9", "x" * 100])
def test_safe_ids_are_their_own_file_names(certificate_id: str) -> None:
    assert receipt_stem(certificate_id) == certificate_id


@pytest.mark.parametrize(
    ("certificate_id", "prefix"),
    [
        ("a/b", "a_b-"),
        ("../../etc/passwd", "_.._etc_passwd-"),
        (".hidden", "hidden-"),
        ("Zoë Ångström", "Zo___ngstr_m-"),
        ("///", "___-"),
        ("..", "certificate-"),
        ("x" * 101, "x" * 100 + "-"),
    ],
)
def test_unsafe_ids_are_sanitized_with_a_hash(certificate_id: str, prefix: str) -> None:
    stem = receipt_stem(certificate_id)
    assert stem.startswith(prefix)
    assert len(stem) == len(prefix) + 12
    assert "/" not in stem
    assert not stem.startswith(".")


def test_ids_that_sanitize_alike_get_different_names() -> None:
    names = {receipt_stem(i) for i in ["a/b", "a:b", "a b", "a_b", "a\\b"]}
    assert len(names) == 5


def test_write_atomic_replaces_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "receipt.json"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]  # fails half-way through
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["receipt.json"]


def pixels(data: bytes) -> list[list[int]]:
    width, height, rows, _ = png.Reader(file=io.BytesIO(data)).read()
    grid = [list(row) for row in rows]
    assert (width, height) == (len(grid[0]), len(grid))
    return grid


def test_qr_png_encodes_the_link() -> None:
    data = qr_png(LINK)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    expected = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, mask_pattern=QR_MASK
    )
    expected.add_data(LINK)
    expected.make(fit=True)
    modules = expected.get_matrix()  # True = dark, quiet zone included
    grid = pixels(data)
    assert len(grid) == len(modules) * QR_BOX_SIZE
    sampled = [
        [grid[y * QR_BOX_SIZE][x * QR_BOX_SIZE] == 0 for x in range(len(modules))]
        for y in range(len(modules))
    ]
    assert sampled == modules


def test_write_receipt_text_with_and_without_qr_code(tmp_path: Path) -> None:
    batch = make_batch(2, seed="outputs")
    receipt = batch.receipt(0, tx_hash=hex0x(bytes(32)), block_number=7).model_copy(update={"link": LINK})
    path, png_path = write_receipt_text(tmp_path, "cert/1", receipt.to_json(), LINK)
    assert path.name == f"{receipt_stem('cert/1')}.json"
    assert parse_receipt(path.read_bytes()) == receipt
    assert png_path == path.with_suffix(".png")
    assert png_path.read_bytes() == qr_png(LINK)

    assert write_receipt_text(tmp_path, "cert-2", receipt.to_json(), None) == [tmp_path / "cert-2.json"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [png_path.name]


def test_manifest_holds_the_leaves_in_tree_order(tmp_path: Path) -> None:
    tree = make_batch(5, seed="manifest").tree
    content = manifest(tree)
    assert content == {
        "format": MANIFEST_FORMAT,
        "root": hex0x(tree.root),
        "count": 5,
        "leaves": [hex0x(leaf) for leaf in tree.leaves],
    }
    path = write_manifest(tmp_path, tree)
    assert path == tmp_path / outputs.MANIFEST_DIR / f"{hex0x(tree.root)}.json"
    assert json.loads(path.read_text()) == content
