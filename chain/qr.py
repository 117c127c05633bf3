"""QR codes of receipt links as PNG: what the issuer may write beside a receipt, and what
``finvault qr`` renders from a receipt later.

The module matrix comes from ``qrcode`` (medium error correction, byte mode) with one fixed mask
pattern: every mask gives a valid, decodable code, and choosing the "best" of eight by the
standard's penalty score was 80% of the cost. The PNG (1-bit greyscale) is written here with zlib:
pypng's pure-Python writer was most of the rest. About 2-3 ms a code here, against 14 ms before.
"""

from __future__ import annotations

import struct
import zlib

import qrcode  # type: ignore[import-untyped]  # qrcode ships no type information

#: Pixels per QR module; with the standard 4-module quiet zone a link fits in about 250x250 px.
QR_BOX_SIZE = 5
QR_BORDER = 4
#: The mask pattern every code uses (ISO/IEC 18004 masks 0-7 all decode alike).
QR_MASK = 0
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def qr_matrix(text: str) -> list[list[bool]]:
    """The QR code of ``text``, quiet zone included: rows of modules, True for dark."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=QR_BORDER, mask_pattern=QR_MASK
    )
    code.add_data(text)
    code.make(fit=True)
    return code.get_matrix()  # type: ignore[no-any-return]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def qr_png(text: str) -> bytes:
    """A QR code of ``text`` as a 1-bit greyscale PNG, :data:`QR_BOX_SIZE` pixels per module."""
    matrix = qr_matrix(text)
    width = len(matrix) * QR_BOX_SIZE
    padded = -width % 8
    rows = []
    for modules in matrix:
        bits = "".join(("0" if dark else "1") * QR_BOX_SIZE for dark in modules) + "0" * padded
        row = b"\x00" + int(bits, 2).to_bytes((width + padded) // 8, "big")  # filter type 0
        rows.append(row * QR_BOX_SIZE)
    header = struct.pack(">IIBBBBB", width, width, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
        + _chunk(b"IEND", b"")
    )
