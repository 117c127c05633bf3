"""Canonical JSON (RFC 8785) and the legacy document digest ``finvault-doc/1`` (frozen, read only).

``finvault-receipt/2`` needs only :func:`jcs`, :func:`loads_strict` and the document limits
(:func:`flatten`'s budget) from here. The rest is ``finvault-doc/1``, which /1 receipts carry and
verifiers still check; its known ambiguity (an array and an object with integer keys flatten
alike) is why /2 secures standard credentials instead (docs/formats.md).

A credential (a JSON object; W3C Verifiable Credentials 2.0 shape recommended) is flattened into
its leaf values, each addressed by an RFC 6901 JSON Pointer. Leaves are scalars, empty arrays and
empty objects. Each field gets a fresh 32-byte salt, and

    field hash = SHA-256(RFC8785([pointer, salt_hex, value]))
    digest     = SHA-256(RFC8785(sorted list of all field-hash hex strings))

where "all" covers disclosed fields and ``obfuscated`` ones. Hiding a field removes it and its salt
and moves its field hash to ``obfuscated``: the digest does not change (selective disclosure).

Pure: randomness comes in as a function, and nothing here reads files, clocks or the network.
RFC 8785 strings and integers are emitted by a fast path that the tests prove byte-identical to the
``rfc8785`` package; floats go through ``rfc8785`` itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

from chain.core.errors import FinVaultError

DOC_FORMAT = "finvault-doc/1"
SALT_BYTES = 32
#: Canonical bytes of all field preimages together; bounds memory and hashing work per document.
MAX_DOCUMENT_BYTES = 256 * 1024
MAX_DEPTH = 32
MAX_FIELDS = 4096
#: Characters of a JSON Pointer quoted in an error message.
MAX_SHOWN_POINTER = 120
#: RFC 8785 numbers are IEEE 754 doubles: integers beyond 2^53 - 1 would not round-trip.
MAX_SAFE_INTEGER = 2**53 - 1

JsonValue = Any

#: The C string encoder behind ``json.dumps(s, ensure_ascii=False)``: escapes exactly what
#: RFC 8785 escapes (quote, backslash, control characters, with lowercase \u00xx), 10x faster.
_json_string: Callable[[str], str] = json.encoder.encode_basestring


class DocumentError(FinVaultError, ValueError):
    """A credential that cannot be canonicalized, or an inconsistent disclosure."""

    code = "document_invalid"

    def __init__(self, message: str, *, pointer: str | None = None) -> None:
        if pointer is not None:  # printable even when the pointer holds a lone surrogate
            shown = pointer[:MAX_SHOWN_POINTER].encode("utf-8", "backslashreplace").decode() or "(document)"
            if len(pointer) > MAX_SHOWN_POINTER:  # a message is not a second copy of hostile input
                shown += f"... ({len(pointer):,} characters)"
            message = f"{shown}: {message}"
        super().__init__(message)
        self.pointer = pointer


class DocumentTooLarge(DocumentError):
    """Input over a size limit: too many bytes, or too many JSON values for the bytes."""

    code = "document_too_large"


class DisclosureMismatch(DocumentError):
    """The disclosed fields and the salts do not line up: a tampered or damaged document."""

    code = "disclosure_mismatch"


# -- strict JSON input -------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise DocumentError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)  # in C; a duplicate shows as a shorter dict, then the loop names it
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DocumentError(f"duplicate key {key!r}")
            seen.add(key)
    return result


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: A surrogate code point in text given as ``str`` (bytes cannot hold one: strict UTF-8 refuses it).
_SURROGATE = re.compile("[\ud800-\udfff]")


def _parse_int(literal: str) -> int:
    # Refuse before int() does the work: Python caps int parsing at 4,300 digits with a bare
    # ValueError, and nothing FinVault reads needs more than 2^53.
    if len(literal.lstrip("-")) > len(str(MAX_SAFE_INTEGER)):
        raise DocumentError(f"integer literal {literal[:24]}... is too large")
    return int(literal)


def _parse_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise DocumentError(f"number {literal[:24]} does not fit a double")
    return value


#: Built once: json.loads() with hooks builds a decoder (and its scanner) on every call. Sharing
#: one across threads is what json.loads() itself does; the scanner's key memo is only a cache.
_STRICT_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_constant=_reject_constant,
    parse_int=_parse_int,
    parse_float=_parse_float,
)


def json_values_bound(text: str) -> int:
    """At least the number of values (object keys included) that parsing ``text`` makes: every
    value but the first follows a ``,``, a ``:`` or an opening bracket (those inside strings
    only raise the bound). Counted in C at gigabytes a second, before any parsing: parsed, a
    dense ``[[],[],...]`` costs 50 bytes of memory per byte of input."""
    return 1 + sum(text.count(token) for token in (",", ":", "[", "{"))


def loads_strict(
    text: str | bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES, max_values: int | None = None
) -> Any:
    """Parses JSON: UTF-8 only; no duplicate keys, NaN/Infinity, overflowing numbers or oversized input.

    ``max_values`` bounds what parsing may build (see :func:`json_values_bound`), checked before
    parsing; input over either limit is :class:`DocumentTooLarge`.
    """
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise DocumentTooLarge(f"input is {len(text):,} bytes; the limit is {max_bytes:,}")
        try:
            text = text.decode("utf-8")  # strict: no UTF-16/32 sniffing, no encoded surrogates
        except UnicodeDecodeError as exc:
            raise DocumentError(f"input is not UTF-8 (byte {exc.start}: {exc.reason})") from None
    elif len(text) > max_bytes or (
        4 * len(text) > max_bytes and len(text.encode("utf-8", "replace")) > max_bytes
    ):
        raise DocumentTooLarge(f"input is over {max_bytes:,} bytes of UTF-8")
    elif not text.isascii() and _SURROGATE.search(text):
        raise DocumentError("text is not valid Unicode (lone surrogate)")
    if max_values is not None and json_values_bound(text) > max_values:
        raise DocumentTooLarge(f"input holds more than {max_values:,} JSON values; send less at once")
    try:
        if text.startswith("\ufeff"):  # what json.loads() says before it decodes
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = _STRICT_DECODER.decode(text)
        # "\ud800" is valid JSON text for an invalid Unicode string; only then pay for a check.
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except UnicodeEncodeError:
        raise DocumentError("text is not valid Unicode (lone surrogate escape)") from None
    except RecursionError:
        raise DocumentError("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise DocumentError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def parse_credential(text: str | bytes) -> dict[str, Any]:
    """A credential from JSON text: strict parsing, a top-level object, canonicalizable leaves."""
    credential = loads_strict(text)
    flatten(credential)
    return credential  # type: ignore[no-any-return]  # flatten() proved it is a dict


# -- whole documents ---------------------------------------------------------------------------


def _utf16(item: tuple[str, Any]) -> bytes:
    return item[0].encode("utf-16-be")


def _jcs_text(value: Any) -> str:
    if isinstance(value, str):
        return _json_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return int.__repr__(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join([_jcs_text(item) for item in value]) + "]"
    if isinstance(value, dict) and all(type(key) is str for key in value):
        # RFC 8785 orders keys by UTF-16 code units: code point order, unless a key leaves ASCII.
        ascii_keys = all(key.isascii() for key in value)
        items = sorted(value.items()) if ascii_keys else sorted(value.items(), key=_utf16)
        return "{" + ",".join([f"{_json_string(key)}:{_jcs_text(item)}" for key, item in items]) + "}"
    return rfc8785.dumps(value).decode()  # floats (ECMAScript formatting), and the package's errors


def jcs(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value: exactly ``rfc8785.dumps(value)`` (the tests hold them
    equal), with strings, integers and containers done by the C JSON encoder's string escaping."""
    text = _jcs_text(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise rfc8785.CanonicalizationError("input contains non-UTF-8 codepoints") from None


# -- flattening --------------------------------------------------------------------------------


def escape_token(token: str) -> str:
    """RFC 6901: ``~`` becomes ``~0`` and ``/`` becomes ``~1``."""
    if "~" not in token and "/" not in token:
        return token
    return token.replace("~", "~0").replace("/", "~1")


def unescape_token(token: str) -> str:
    """The inverse of :func:`escape_token` (``~1`` first, then ``~0``, as RFC 6901 requires)."""
    return token.replace("~1", "/").replace("~0", "~")


def _check_unicode(text: str, pointer: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DocumentError("text is not valid Unicode (lone surrogate)", pointer=pointer) from None


def _canonical_scalar(value: JsonValue, pointer: str) -> str:
    """RFC 8785 text of one leaf value."""
    if isinstance(value, str):
        if not value.isascii():
            _check_unicode(value, pointer)
        return _json_string(value)
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return str(value)
        raise DocumentError(f"integer {value} is outside ±(2^53 - 1), which RFC 8785 allows", pointer=pointer)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DocumentError(f"{value} is not a JSON number", pointer=pointer)
        return rfc8785.dumps(value).decode()
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    raise DocumentError(f"{type(value).__name__} is not a JSON value", pointer=pointer)


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Raises :class:`DocumentError` if ``value`` nests deeper than ``limit`` levels (counted as
    :func:`flatten` counts them), without recursion: what must hold before a recursive walk (JCS,
    say) meets a value that parsing built but the interpreter's stack cannot walk."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise DocumentError(f"nested deeper than {limit} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list | tuple):
            stack.extend((child, depth + 1) for child in node)


def flatten(credential: Any) -> list[tuple[str, str]]:
    """``[(pointer, canonical value text)]`` for every leaf, in document order.

    Bounded before the work, not after: at most :data:`MAX_FIELDS` leaves, :data:`MAX_DEPTH`
    levels, and :data:`MAX_DOCUMENT_BYTES` characters of pointers and values together, counted
    as each pointer is made. Every pointer repeats its ancestors' keys, so a long key above many
    leaves would otherwise be copied once per leaf (measured: a 0.5 MiB receipt, 1.9 GB of
    pointers). The issuer's own limit counts whole field preimages, which are longer, so no
    document it issued is refused here.
    """
    if not isinstance(credential, dict):
        raise DocumentError("a credential must be a JSON object")
    leaves: list[tuple[str, str]] = []
    budget = MAX_DOCUMENT_BYTES

    def walk(node: JsonValue, pointer: str, depth: int) -> None:
        nonlocal budget
        if depth > MAX_DEPTH:
            raise DocumentError(f"nested deeper than {MAX_DEPTH} levels", pointer=pointer)
        if isinstance(node, dict) and node:
            for key, child in node.items():
                if not isinstance(key, str):
                    raise DocumentError(f"object key {key!r:.40} is not a string", pointer=pointer)
                if not key.isascii():
                    _check_unicode(key, pointer)
                if len(pointer) + len(key) > budget:
                    raise _over_budget(pointer)
                walk(child, f"{pointer}/{escape_token(key)}", depth + 1)
        elif isinstance(node, list) and node:
            for index, child in enumerate(node):
                walk(child, f"{pointer}/{index}", depth + 1)
        else:
            text = _canonical_scalar(node, pointer)
            budget -= len(pointer) + len(text)
            if budget < 0:
                raise _over_budget(pointer)
            leaves.append((pointer, text))
            if len(leaves) > MAX_FIELDS:
                raise DocumentError(f"more than {MAX_FIELDS} fields")

    if credential:
        walk(credential, "", 0)
    return leaves


def _over_budget(pointer: str) -> DocumentError:
    return DocumentError(
        f"the document's pointers and values are over {MAX_DOCUMENT_BYTES:,} characters", pointer=pointer
    )


# -- hashing -----------------------------------------------------------------------------------


def field_preimage(pointer: str, salt_hex: str, value_text: str) -> bytes:
    """RFC 8785 of ``[pointer, salt, value]``; ``salt_hex`` is 0x-lowercase-hex (no escaping)."""
    return f'[{_json_string(pointer)},"{salt_hex}",{value_text}]'.encode()


def field_hash(pointer: str, salt_hex: str, value_text: str) -> str:
    """SHA-256 of :func:`field_preimage`, as ``0x``-lowercase-hex (the form digests sort and hash)."""
    return "0x" + hashlib.sha256(field_preimage(pointer, salt_hex, value_text)).hexdigest()


def document_digest(field_hashes: Iterable[str]) -> bytes:
    """SHA-256 of RFC 8785 of the sorted field-hash strings."""
    ordered = sorted(field_hashes)
    return hashlib.sha256(("[" + ",".join(f'"{h}"' for h in ordered) + "]").encode()).digest()


# Character classes spelled out, not \d: a Unicode digit must not pass for a hex digit.
_HEX32 = re.compile(rf"0x[0-9a-f]{{{2 * SALT_BYTES}}}")
_LOWER_HEX = re.compile(r"0x[0-9a-f]*")


def _is_hex32(value: Any) -> bool:
    return isinstance(value, str) and _HEX32.fullmatch(value) is not None


def _is_lower_hex(value: str) -> bool:
    return _LOWER_HEX.fullmatch(value) is not None


# -- salted documents and disclosure -----------------------------------------------------------


@dataclass(frozen=True)
class SaltedDocument:
    """A credential with its salts: what a receipt carries, and what the issuer signs the digest of."""

    credential: Mapping[str, Any]
    salts: Mapping[str, str]
    obfuscated: tuple[str, ...]
    digest: bytes

    def disclose(self, hide: Iterable[str]) -> SaltedDocument:
        """The same document with ``hide`` (leaf pointers or whole subtrees) removed.

        Array elements cannot be hidden one by one (the remaining indices would shift); hide the
        whole array, or fields inside an element.
        """
        hide = list(hide)
        leaves = dict(flatten(self.credential))
        hidden: set[str] = set()
        for target in hide:
            matched = {p for p in leaves if p == target or p.startswith(target + "/")}
            if not matched:
                raise DocumentError("no disclosed field at or under this pointer", pointer=target)
            hidden |= matched
        credential = _without(self.credential, "", hidden | set(hide))
        extra = [field_hash(p, self.salts[p], leaves[p]) for p in hidden]
        return SaltedDocument(
            credential=credential if isinstance(credential, dict) else {},
            salts={p: s for p, s in self.salts.items() if p not in hidden},
            obfuscated=tuple(sorted((*self.obfuscated, *extra))),
            digest=self.digest,
        )


_GONE = object()


def _without(node: JsonValue, pointer: str, hidden: set[str]) -> Any:
    """``node`` minus the ``hidden`` pointers (leaves or whole subtrees); containers left empty
    by hiding disappear too."""
    if pointer in hidden:
        return _GONE
    if isinstance(node, dict) and node:
        kept = {}
        for key, child in node.items():
            result = _without(child, f"{pointer}/{escape_token(key)}", hidden)
            if result is not _GONE:
                kept[key] = result
        return kept if kept or not pointer else _GONE
    if isinstance(node, list) and node:
        items = []
        for index, child in enumerate(node):
            result = _without(child, f"{pointer}/{index}", hidden)
            if result is _GONE:
                raise DocumentError(
                    "array elements cannot be hidden one by one; hide the whole array",
                    pointer=f"{pointer}/{index}",
                )
            items.append(result)
        return items
    return node


def salt_document(credential: Mapping[str, Any], random_bytes: Callable[[int], bytes]) -> SaltedDocument:
    """Salts every field of ``credential`` and computes its digest.

    ``random_bytes(n)`` must return ``n`` cryptographically random bytes (``os.urandom``).
    """
    leaves = flatten(credential)
    if not leaves:
        raise DocumentError("a credential needs at least one field")
    pool = random_bytes(SALT_BYTES * len(leaves))
    if len(pool) != SALT_BYTES * len(leaves):
        raise DocumentError("random source returned too few bytes")
    salts: dict[str, str] = {}
    hashes = []
    total = 0
    pool_hex = pool.hex()
    width = 2 * SALT_BYTES
    for i, (pointer, value_text) in enumerate(leaves):
        salt_hex = "0x" + pool_hex[i * width : (i + 1) * width]
        preimage = field_preimage(pointer, salt_hex, value_text)
        total += len(preimage)
        salts[pointer] = salt_hex
        hashes.append("0x" + hashlib.sha256(preimage).hexdigest())
    if total > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"canonical document is {total:,} bytes; the limit is {MAX_DOCUMENT_BYTES:,}")
    return SaltedDocument(credential=credential, salts=salts, obfuscated=(), digest=document_digest(hashes))


def recompute_digest(
    credential: Mapping[str, Any],
    salts: Mapping[str, str],
    obfuscated: Iterable[str],
    *,
    leaves: list[tuple[str, str]] | None = None,
) -> bytes:
    """The digest a (possibly partly hidden) document commits to (``leaves``: ``flatten(credential)``
    when the caller already has it).

    Every disclosed leaf must have exactly one salt and every salt a leaf: otherwise unsalted data
    could ride along unverified, which is a :class:`DocumentError`, not a mismatch.
    """
    if leaves is None:
        leaves = flatten(credential)
    pointers = {p for p, _ in leaves}
    for pointer in pointers - salts.keys():
        raise DisclosureMismatch("field has no salt", pointer=pointer)
    for pointer in salts.keys() - pointers:
        raise DisclosureMismatch("salt matches no disclosed field", pointer=pointer)
    hidden = list(obfuscated)
    for value in (*salts.values(), *hidden):
        if not _is_hex32(value):
            raise DocumentError(f"{value!r} is not a 0x-prefixed 32-byte lowercase hex string")
    hashes = [field_hash(p, salts[p], text) for p, text in leaves]
    if len(set(hashes) | set(hidden)) != len(hashes) + len(hidden):
        raise DisclosureMismatch("a field hash appears twice")
    if not hashes and not hidden:
        raise DocumentError("a document needs at least one field")
    return document_digest([*hashes, *hidden])
