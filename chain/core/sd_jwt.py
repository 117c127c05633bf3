"""SD-JWT (RFC 9901): issuance, holder-side withholding and verification, without key binding.

The building block of ``finvault-receipt/2`` (:mod:`chain.core.secured`): a selectively disclosable
credential is an SD-JWT whose payload is a W3C VC 2.0 credential, signed by the issuer's registered
key with ``EdDSA`` (Ed25519) or ``RS256`` (RSA, 2048 bits or more). The issuer-signed JWT is what a
Merkle leaf commits to; :func:`verify_sd_jwt` returns its bytes beside the processed payload.

Choices, each fixed here so that the format can be frozen:

- ``typ`` is ``vc+sd-jwt``, the media type W3C "Securing Verifiable Credentials using JOSE and
  COSE" registers for a VC 2.0 credential secured with SD-JWT. ``dc+sd-jwt`` (IETF SD-JWT VC) is
  for a different data model (a flat claims set with ``vct``, no ``@context``); our payload is a VC
  2.0 document, so claiming ``dc+sd-jwt`` would send verifiers down the wrong validation rules.
  Verification requires the ``typ`` (explicit typing, RFC 9901 section 9.11).
- Disclosable claims are named by RFC 6901 JSON Pointers resolved against the payload: a pointer to
  an object member makes that member disclosable through the object's ``_sd`` array, a pointer to
  an array element makes that element disclosable through ``{"...": digest}`` in place. Pointers
  are resolved against the document, so ``/a/0`` is element 0 of an array and member ``"0"`` of an
  object, never both. A pointer under another disclosable pointer gives a recursive disclosure.
  For the holder, pointers address the payload as the SD-JWT in hand reconstructs it.
- ``@context``, ``type``, ``issuer``, ``validFrom``, ``validUntil`` and ``credentialStatus`` (top
  level, and everything under them) are never disclosable: a verifier must always see what the
  credential is, who issued it, when it is valid and where its status is.
- Decoy digests (RFC 9901 section 4.2.5) follow a :class:`DecoyPolicy`: by default every ``_sd``
  array and every array holding a disclosable element gets at least one decoy and is padded to a
  multiple of four entries, so a verifier learns the number of withheld claims only to within
  four. ``_sd`` arrays are sorted, decoys go into arrays at random positions.
- Salts are 128 random bits (base64url, 22 characters), as RFC 9901 recommends; decoys hash 32
  random bytes. All randomness comes in as ``random_bytes(n)``: nothing here reads the OS's.
- ``_sd_alg`` is always ``sha-256``.

Verification is strict and priced before it runs: the whole input is capped in length and number
of disclosures before any decoding, base64url must be unpadded and canonical, JSON must be strict
(no duplicate keys, NaN or oversized numbers), nesting is capped, every disclosure must be
referenced exactly once and every digest may appear only once. Each step is linear in the input.
Every failure is a :class:`SdJwtError` (a :class:`FinVaultError` and a :class:`ValueError`).
Key binding (SD-JWT+KB) is out of scope and refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from chain.core.canonical import MAX_SAFE_INTEGER, DocumentError, escape_token, loads_strict, unescape_token
from chain.core.encoding import b64url, from_b64url
from chain.core.errors import FinVaultError
from chain.core.signing import ed25519_verifies

TYP = "vc+sd-jwt"
SD_ALG = "sha-256"
ALGORITHMS = ("EdDSA", "RS256")
MIN_RSA_BITS = 2048
#: Top-level claims that are always shown (with everything under them).
ALWAYS_DISCLOSED = ("@context", "type", "issuer", "validFrom", "validUntil", "credentialStatus")
#: Claim names SD-JWT reserves; refused in issued payloads and as disclosed claim names.
RESERVED_NAMES = ("_sd", "...", "_sd_alg")
SALT_BYTES = 16
DECOY_BYTES = 32
#: Characters of a whole SD-JWT; checked before anything is decoded.
MAX_SD_JWT_CHARS = 1024 * 1024
MAX_DISCLOSURES = 4096
#: Nesting of the issuer's payload (issuance), and of the processed payload (verification).
MAX_DEPTH = 32
#: A SHA-256 digest in base64url: 43 characters.
DIGEST_CHARS = 43

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_COMPACT = re.compile(r"[A-Za-z0-9_\-.~]*")
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")
_BAD_ESCAPE = re.compile(r"~[^01]|~$")
#: ``json.dumps`` builds an encoder per call when given options; issuance encodes a few dozen values.
_DISCLOSURE_JSON = {
    ascii_only: json.JSONEncoder(ensure_ascii=ascii_only, allow_nan=False) for ascii_only in (False, True)
}
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class SdJwtError(FinVaultError, ValueError):
    """An SD-JWT that cannot be issued, presented or verified: the one error this module raises."""

    code = "sd_jwt_invalid"


class SdJwtTooLarge(SdJwtError):
    """Input over a size, count or nesting limit."""

    code = "sd_jwt_too_large"


class SdJwtSignatureInvalid(SdJwtError):
    """The issuer-signed JWT's signature does not verify under the given key and algorithm."""

    code = "sd_jwt_signature_invalid"


class SdJwtNotDisclosable(SdJwtError):
    """A claim asked to be disclosable (or withheld) that cannot be: always shown, reserved, absent."""

    code = "sd_jwt_not_disclosable"


# -- encodings ---------------------------------------------------------------------------------


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url (:func:`chain.core.encoding.from_b64url`), as :class:`SdJwtError`."""
    try:
        return from_b64url(text)
    except ValueError as exc:
        raise SdJwtError(str(exc)) from None


def disclosure_digest(disclosure: str) -> str:
    """The base64url SHA-256 digest of a disclosure, over its base64url ASCII text (RFC 9901 4.2.3)."""
    return b64url(hashlib.sha256(disclosure.encode("ascii")).digest())


def encode_disclosure(salt: str, value: Any, name: str | None = None, *, ensure_ascii: bool = False) -> str:
    """A disclosure: base64url of the UTF-8 JSON array ``[salt, name, value]`` (``[salt, value]``
    for an array element), spelled as RFC 9901's examples are (``", "`` between elements, ``": "``
    in objects). ``ensure_ascii`` writes non-ASCII characters as ``\\uXXXX`` escapes, as some of
    the RFC's examples do; the digest covers whichever spelling was chosen."""
    if not isinstance(salt, str) or not (name is None or isinstance(name, str)):
        raise SdJwtError("a disclosure's salt and claim name are strings")
    array = [salt, value] if name is None else [salt, name, value]
    try:
        text = _DISCLOSURE_JSON[bool(ensure_ascii)].encode(array)
        return b64url(text.encode("utf-8"))
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise SdJwtError(f"claim value is not JSON: {type(exc).__name__}") from None


def _json_compact(value: Any) -> bytes:
    return _COMPACT_JSON.encode(value).encode("utf-8")


def _loads(text: str | bytes, what: str) -> Any:
    try:
        return loads_strict(text, max_bytes=MAX_SD_JWT_CHARS)
    except DocumentError as exc:
        raise SdJwtError(f"{what}: {exc.message}") from None


# -- JSON Pointers -----------------------------------------------------------------------------


def _tokens(pointer: str) -> list[str]:
    if not isinstance(pointer, str):
        raise SdJwtNotDisclosable("a JSON Pointer must be a string")
    if pointer == "":
        raise SdJwtNotDisclosable("the whole payload cannot be disclosable; name a claim")
    if not pointer.startswith("/"):
        raise SdJwtNotDisclosable(f"{pointer[:80]!r} is not a JSON Pointer (RFC 6901)")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if "~" in token and _BAD_ESCAPE.search(token):
            raise SdJwtNotDisclosable(f"{pointer[:80]!r} has an invalid ~ escape (RFC 6901)")
    return [unescape_token(token) for token in tokens]


def _resolve(document: Any, pointer: str) -> Any:
    """The member or element of ``document`` that ``pointer`` names (refused when there is none)."""
    node = document
    for token in _tokens(pointer):
        if isinstance(node, dict):
            if token not in node:
                raise SdJwtNotDisclosable(f"{pointer[:80]!r}: no such claim")
            node = node[token]
        elif isinstance(node, list):
            if not _ARRAY_INDEX.fullmatch(token) or int(token) >= len(node):
                raise SdJwtNotDisclosable(f"{pointer[:80]!r}: no such array element")
            node = node[int(token)]
        else:
            raise SdJwtNotDisclosable(f"{pointer[:80]!r}: no such claim")
    return node


def _always_disclosed(pointer: str) -> bool:
    first = unescape_token(pointer[1:].split("/")[0])
    return first in ALWAYS_DISCLOSED


# -- issuance ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecoyPolicy:
    """How many decoy digests go beside the real ones (RFC 9901 sections 4.2.5 and 10.4).

    Only a container that holds a disclosable claim gets decoys: each ``_sd`` array, and each array
    holding a disclosable element, gets at least ``minimum`` decoys and then more until its entries
    number a multiple of ``multiple_of``. ``DecoyPolicy(0, 1)`` adds none.
    """

    minimum: int = 1
    multiple_of: int = 4

    def __post_init__(self) -> None:
        if not (0 <= self.minimum <= 64 and 1 <= self.multiple_of <= 64):
            raise SdJwtError("a decoy policy needs 0 <= minimum <= 64 and 1 <= multiple_of <= 64")

    def count(self, entries: int) -> int:
        """The decoys to add to a container of ``entries`` entries (digests or array elements)."""
        total = entries + self.minimum
        return self.minimum + (-total % self.multiple_of)


NO_DECOYS = DecoyPolicy(0, 1)
DEFAULT_DECOYS = DecoyPolicy()


@dataclass(frozen=True)
class JwsSigner:
    """A signing function and the JWS ``alg`` it implements (``EdDSA`` or ``RS256``), for keys
    held elsewhere (an HSM, a KMS): ``sign`` receives the JWS signing input and returns the raw
    signature (64 bytes for EdDSA, the modulus length for RS256)."""

    alg: str
    sign: Callable[[bytes], bytes]


Signer = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | JwsSigner


def _as_jws_signer(signer: Signer) -> JwsSigner:
    if isinstance(signer, ed25519.Ed25519PrivateKey):
        return JwsSigner("EdDSA", signer.sign)
    if isinstance(signer, rsa.RSAPrivateKey):
        if signer.key_size < MIN_RSA_BITS:
            raise SdJwtError(f"RSA keys need {MIN_RSA_BITS}+ bits; this one has {signer.key_size}")
        key = signer
        return JwsSigner("RS256", lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256()))
    if isinstance(signer, JwsSigner):
        if signer.alg not in ALGORITHMS:
            raise SdJwtError(f"unsupported JWS algorithm {signer.alg!r}; use one of {ALGORITHMS}")
        return signer
    raise SdJwtError("the signer must be an Ed25519 or RSA private key, or a JwsSigner")


@dataclass(frozen=True)
class IssuedSdJwt:
    """An issued SD-JWT: the issuer-signed JWT and every disclosure (the holder gets them all)."""

    jwt: str
    disclosures: tuple[str, ...]

    @property
    def compact(self) -> str:
        """The SD-JWT compact serialization ``<JWT>~<D1>~...~<Dn>~`` (no key binding)."""
        return "~".join((self.jwt, *self.disclosures, ""))


def _where(path: list[str]) -> str:
    """The JSON Pointer of ``path`` (tokens), cut and made printable for an error message."""
    pointer = "".join(f"/{escape_token(token)}" for token in path) or "(payload)"
    shown = pointer[:80].encode("utf-8", "backslashreplace").decode()
    return shown if len(pointer) <= 80 else f"{shown}... ({len(pointer):,} characters)"


def _check_text(text: str, path: list[str]) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise SdJwtError(f"{_where(path)}: text is not valid Unicode (lone surrogate)") from None


def _check_input(value: Any, path: list[str], depth: int) -> int:
    """Refuses what is not plain JSON, or what SD-JWT reserves, before any salt is drawn; returns
    how many values ``value`` holds, itself included. ``path`` (the tokens down to ``value``) only
    names the place in an error: no pointer is built while all is well."""
    kind = type(value)
    if kind is str:
        _check_text(value, path)
        return 1
    if kind is dict:
        if depth >= MAX_DEPTH and value:  # its members would lie deeper than MAX_DEPTH
            raise SdJwtTooLarge(f"payload nested deeper than {MAX_DEPTH} levels")
        count = 1
        for key, item in value.items():
            if type(key) is not str:
                raise SdJwtError(f"{_where(path)}: object keys must be strings")
            _check_text(key, path)
            if key in RESERVED_NAMES:
                raise SdJwtNotDisclosable(f"{_where(path)}: the claim name {key!r} is reserved by SD-JWT")
            path.append(key)
            count += _check_input(item, path, depth + 1)
            path.pop()
        return count
    if kind is list:
        if depth >= MAX_DEPTH and value:
            raise SdJwtTooLarge(f"payload nested deeper than {MAX_DEPTH} levels")
        count = 1
        for index, item in enumerate(value):
            path.append(str(index))
            count += _check_input(item, path, depth + 1)
            path.pop()
        return count
    if value is None or kind is bool:
        return 1
    if kind is int:
        # JavaScript verifiers read numbers as doubles: beyond 2^53 a value would silently change.
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise SdJwtError(f"{_where(path)}: integer {value} is beyond 2^53 - 1")
        return 1
    if kind is float:
        if not math.isfinite(value):
            raise SdJwtError(f"{_where(path)}: NaN and infinities are not JSON")
        return 1
    raise SdJwtError(f"{_where(path)}: {kind.__name__} is not a JSON value")


def check_payload(payload: Any) -> int:
    """Raises :class:`SdJwtError` unless ``payload`` is a JSON object an SD-JWT can carry: plain
    JSON, integers within 2^53 - 1, no claim name SD-JWT reserves, at most 32 levels; returns how
    many values it holds (object members, array elements and the payload itself)."""
    if not isinstance(payload, Mapping):
        raise SdJwtError("the payload must be a JSON object")
    return _check_input(dict(payload), [], 0)


class _Issuer:
    def __init__(
        self, disclosable: set[str], random_bytes: Callable[[int], bytes], decoys: DecoyPolicy
    ) -> None:
        self.disclosable = disclosable
        self.random_bytes = random_bytes
        self.decoys = decoys
        self.disclosures: list[str] = []
        #: Disclosable pointers the walk met: all of them, unless one names nothing.
        self.met = 0

    def _random(self, count: int) -> bytes:
        data = self.random_bytes(count)
        if not isinstance(data, bytes) or len(data) != count:
            raise SdJwtError(f"random_bytes({count}) must return {count} bytes")
        return data

    def _disclose(self, value: Any, name: str | None) -> str:
        disclosure = encode_disclosure(b64url(self._random(SALT_BYTES)), value, name)
        self.disclosures.append(disclosure)
        return disclosure_digest(disclosure)

    def _decoy(self) -> str:
        return b64url(hashlib.sha256(self._random(DECOY_BYTES)).digest())

    def encode(self, value: Any, pointer: str) -> Any:
        """``value`` with its disclosable descendants replaced by digests (children first, so a
        disclosable parent's disclosure carries its children's digests: recursive disclosure)."""
        if isinstance(value, dict):
            shown: dict[str, Any] = {}
            digests: list[str] = []
            for key, item in value.items():
                child = f"{pointer}/{escape_token(key)}"
                encoded = self.encode(item, child)
                if child in self.disclosable:
                    self.met += 1
                    digests.append(self._disclose(encoded, key))
                else:
                    shown[key] = encoded
            if digests:
                digests.extend(self._decoy() for _ in range(self.decoys.count(len(digests))))
                shown["_sd"] = sorted(digests)  # the order must not betray the claims' order
            return shown
        if isinstance(value, list):
            elements: list[Any] = []
            hiding = False
            for index, item in enumerate(value):
                child = f"{pointer}/{index}"
                encoded = self.encode(item, child)
                if child in self.disclosable:
                    self.met += 1
                    hiding = True
                    elements.append({"...": self._disclose(encoded, None)})
                else:
                    elements.append(encoded)
            if hiding:
                for _ in range(self.decoys.count(len(elements))):
                    position = int.from_bytes(self._random(4), "big") % (len(elements) + 1)
                    elements.insert(position, {"...": self._decoy()})
            return elements
        return value


def issue_sd_jwt(
    payload: Mapping[str, Any],
    disclosable: Iterable[str],
    *,
    signer: Signer,
    random_bytes: Callable[[int], bytes],
    decoys: DecoyPolicy = DEFAULT_DECOYS,
    kid: str | None = None,
) -> IssuedSdJwt:
    """Issues an SD-JWT over ``payload`` (a JSON object: a VC 2.0 credential for FinVault) in which
    each claim named by a JSON Pointer in ``disclosable`` can be withheld by the holder.

    Refuses (:class:`SdJwtNotDisclosable`) a pointer to nothing, to the payload itself, or to or
    under an always-shown claim (:data:`ALWAYS_DISCLOSED`), and refuses a payload that uses a
    claim name SD-JWT reserves (``_sd``, ``...``, ``_sd_alg``) anywhere. ``kid`` goes into the
    JWS header (FinVault names the key by its on-chain key id).
    """
    if not isinstance(payload, Mapping):
        raise SdJwtError("the payload must be a JSON object")
    document = dict(payload)
    _check_input(document, [], 0)
    listed = [disclosable] if isinstance(disclosable, str) else list(disclosable)
    if not all(isinstance(pointer, str) for pointer in listed):
        raise SdJwtNotDisclosable("disclosable claims are named by JSON Pointers (strings)")
    wanted = set(listed)
    for pointer in sorted(wanted):
        if pointer[:1] == "/" and _always_disclosed(pointer):
            raise SdJwtNotDisclosable(f"{pointer[:80]!r} is always shown: {', '.join(ALWAYS_DISCLOSED)}")
    jws = _as_jws_signer(signer)
    issuer = _Issuer(wanted, random_bytes, decoys)
    body = issuer.encode(document, "")
    if issuer.met != len(wanted):  # a pointer names nothing here: say which, and why
        for pointer in sorted(wanted):
            _resolve(document, pointer)
        raise SdJwtNotDisclosable("a disclosable pointer names no claim")  # pragma: no cover
    body["_sd_alg"] = SD_ALG
    header = {"alg": jws.alg, "typ": TYP} if kid is None else {"alg": jws.alg, "typ": TYP, "kid": kid}
    signing_input = f"{b64url(_json_compact(header))}.{b64url(_json_compact(body))}"
    signature = jws.sign(signing_input.encode("ascii"))
    if not isinstance(signature, bytes):
        raise SdJwtError("the signer must return bytes")
    issued = IssuedSdJwt(f"{signing_input}.{b64url(signature)}", tuple(issuer.disclosures))
    # Issue nothing that our own verifier would refuse for its size.
    if len(issued.compact) > MAX_SD_JWT_CHARS or len(issued.disclosures) > MAX_DISCLOSURES:
        raise SdJwtTooLarge("the SD-JWT would exceed the verifier's limits")
    return issued


# -- parsing and processing --------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedSdJwt:
    """An SD-JWT split and decoded, its signature not yet checked."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes
    issuer_signed_jwt: str
    disclosures: tuple[str, ...]


def parse_sd_jwt(sd_jwt: str | bytes) -> ParsedSdJwt:
    """Splits and decodes an SD-JWT in compact form, strictly, after checking its size."""
    if isinstance(sd_jwt, bytes):
        if len(sd_jwt) > MAX_SD_JWT_CHARS:
            raise SdJwtTooLarge(f"SD-JWT over {MAX_SD_JWT_CHARS:,} characters")
        try:
            sd_jwt = sd_jwt.decode("ascii")
        except UnicodeDecodeError:
            raise SdJwtError("an SD-JWT is ASCII") from None
    if not isinstance(sd_jwt, str):
        raise SdJwtError("an SD-JWT is a string")
    if len(sd_jwt) > MAX_SD_JWT_CHARS:
        raise SdJwtTooLarge(f"SD-JWT over {MAX_SD_JWT_CHARS:,} characters")
    if sd_jwt.count("~") > MAX_DISCLOSURES + 1:
        raise SdJwtTooLarge(f"more than {MAX_DISCLOSURES:,} disclosures")
    if not _COMPACT.fullmatch(sd_jwt):
        raise SdJwtError("an SD-JWT holds only base64url characters, '.' and '~'")
    parts = sd_jwt.split("~")
    if len(parts) < 2:
        raise SdJwtError("not an SD-JWT: no '~' after the issuer-signed JWT")
    if parts[-1] != "":
        raise SdJwtError("key binding (SD-JWT+KB) is not supported; an SD-JWT ends with '~'")
    jwt, disclosures = parts[0], tuple(parts[1:-1])
    if any(not disclosure for disclosure in disclosures):
        raise SdJwtError("empty disclosure ('~~')")
    if len(set(disclosures)) != len(disclosures):
        raise SdJwtError("the same disclosure appears twice")
    segments = jwt.split(".")
    if len(segments) != 3:
        raise SdJwtError("the issuer-signed JWT is not a compact JWS (three segments)")
    header = _loads(b64url_decode(segments[0]), "JWS header")
    payload = _loads(b64url_decode(segments[1]), "JWT payload")
    signature = b64url_decode(segments[2])
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise SdJwtError("the JWS header and the JWT payload must be JSON objects")
    return ParsedSdJwt(
        header, payload, f"{segments[0]}.{segments[1]}".encode("ascii"), signature, jwt, disclosures
    )


@dataclass(frozen=True)
class _Decoded:
    index: int
    name: str | None
    value: Any


def _decode_disclosure(disclosure: str, index: int) -> _Decoded:
    content = _loads(b64url_decode(disclosure), f"disclosure {index + 1}")
    if not isinstance(content, list) or len(content) not in (2, 3) or not isinstance(content[0], str):
        raise SdJwtError(f"disclosure {index + 1} is not [salt, name, value] or [salt, value]")
    if len(content) == 2:
        return _Decoded(index, None, content[1])
    name = content[1]
    if not isinstance(name, str):
        raise SdJwtError(f"disclosure {index + 1}: the claim name must be a string")
    if name in RESERVED_NAMES:
        raise SdJwtError(f"disclosure {index + 1}: the claim name {name!r} is reserved")
    return _Decoded(index, name, content[2])


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and len(value) == DIGEST_CHARS and bool(_B64URL.fullmatch(value))


#: Where a node sits in the processed payload: ``(parent, token)``, None for the payload itself. A
#: child shares its parent's location instead of copying a pointer string, so locating every node
#: costs O(1) each: a pointer string per node would repeat its ancestors' keys, quadratic in a
#: payload of long keys above many nodes (0.4 MiB took 0.85 s and 190 MB before this).
_Location = tuple[Any, str | int] | None


def _pointer(location: _Location) -> str:
    """The RFC 6901 JSON Pointer of ``location`` (at most :data:`MAX_DEPTH` steps up)."""
    tokens: list[str] = []
    while location is not None:
        location, token = location
        tokens.append(escape_token(token) if isinstance(token, str) else str(token))
    return "".join(f"/{token}" for token in reversed(tokens))


def _top_claim(location: _Location) -> str | int | None:
    """The top-level claim a location lies under (None for the payload itself)."""
    top: str | int | None = None
    while location is not None:
        location, top = location
    return top


class _Processor:
    """RFC 9901 section 7.1 step 3, recording for each disclosure where it landed and its parent."""

    def __init__(self, disclosures: Sequence[str]) -> None:
        self.by_digest: dict[str, _Decoded] = {}
        for index, disclosure in enumerate(disclosures):
            if not isinstance(disclosure, str):
                raise SdJwtError(f"disclosure {index + 1} is not a string")
            decoded = _decode_disclosure(disclosure, index)  # first: it proves the text is base64url
            digest = disclosure_digest(disclosure)
            if digest in self.by_digest:
                raise SdJwtError("the same disclosure appears twice")
            self.by_digest[digest] = decoded
        self.seen: set[str] = set()
        self.location_of: dict[int, _Location] = {}
        self.parent_of: dict[int, int | None] = {}

    @property
    def pointer_of(self) -> dict[int, str]:
        """Each disclosure's JSON Pointer into the processed payload (rendered now: holder tools)."""
        return {index: _pointer(location) for index, location in self.location_of.items()}

    def _claim(self, digest: Any, parent: int | None) -> _Decoded | None:
        if not _is_digest(digest):
            raise SdJwtError("a digest must be a base64url SHA-256 value (43 characters)")
        if digest in self.seen:
            raise SdJwtError("the same digest appears twice")
        self.seen.add(digest)
        found = self.by_digest.get(digest)
        if found is not None:
            self.parent_of[found.index] = parent
        return found

    def value(self, node: Any, location: _Location, depth: int, parent: int | None) -> Any:
        if depth > MAX_DEPTH:
            raise SdJwtTooLarge(f"payload nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            if "..." in node:
                raise SdJwtError("an array-element digest ('...') outside an array")
            out: dict[str, Any] = {}
            for key, item in node.items():
                if key != "_sd":
                    out[key] = self.value(item, (location, key), depth + 1, parent)
            digests = node.get("_sd", [])
            if not isinstance(digests, list):
                raise SdJwtError("'_sd' must be an array of digests")
            for digest in digests:
                found = self._claim(digest, parent)
                if found is None:
                    continue  # a decoy, or a claim the holder withheld
                if found.name is None:
                    raise SdJwtError(f"disclosure {found.index + 1} is an array element, found in '_sd'")
                if found.name in out:
                    raise SdJwtError(f"disclosure {found.index + 1} repeats the claim {found.name!r}")
                child = (location, found.name)
                self.location_of[found.index] = child
                out[found.name] = self.value(found.value, child, depth + 1, found.index)
            return out
        if isinstance(node, list):
            elements: list[Any] = []
            for item in node:
                if isinstance(item, dict) and "..." in item:
                    if len(item) != 1:
                        raise SdJwtError("an array-element digest object has other keys than '...'")
                    found = self._claim(item["..."], parent)
                    if found is None:
                        continue  # RFC 9901 7.1 step 3.4: undisclosed elements are removed
                    if found.name is not None:
                        raise SdJwtError(
                            f"disclosure {found.index + 1} is an object claim, found in an array"
                        )
                    element = (location, len(elements))
                    self.location_of[found.index] = element
                    elements.append(self.value(found.value, element, depth + 1, found.index))
                else:
                    elements.append(self.value(item, (location, len(elements)), depth + 1, parent))
            return elements
        return node

    def run(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        if "_sd_alg" in payload and payload["_sd_alg"] != SD_ALG:
            raise SdJwtError(f"unsupported _sd_alg; only {SD_ALG} is accepted")
        body = {key: item for key, item in payload.items() if key != "_sd_alg"}
        result: dict[str, Any] = self.value(body, None, 0, None)
        if len(self.location_of) != len(self.by_digest):
            raise SdJwtError("a disclosure is not referenced by the issuer-signed JWT")
        return result


def process_disclosures(payload: Mapping[str, Any], disclosures: Sequence[str]) -> dict[str, Any]:
    """The processed SD-JWT payload (RFC 9901 section 7.1 steps 3-5): each disclosure's claim put
    in place of its digest, undisclosed array elements, ``_sd`` and ``_sd_alg`` removed. Refuses
    duplicate digests or disclosures, unreferenced disclosures, reserved or colliding claim names.
    The signature is not this function's business: see :func:`verify_sd_jwt`."""
    if not isinstance(payload, Mapping) or isinstance(disclosures, str):
        raise SdJwtError("a payload (JSON object) and a sequence of disclosures are needed")
    if len(disclosures) > MAX_DISCLOSURES:
        raise SdJwtTooLarge(f"more than {MAX_DISCLOSURES:,} disclosures")
    return _Processor(disclosures).run(payload)


def process_credential(parsed: ParsedSdJwt) -> dict[str, Any]:
    """:func:`process_disclosures` for an SD-JWT whose payload is a VC: also refuses an always-shown
    claim (:data:`ALWAYS_DISCLOSED`) that is selectively disclosable, or holds a digest, which no
    FinVault issuer makes and which would let a holder withhold it or part of it (a ``validFrom``
    in the future, a ``type``). A withheld top-level claim cannot be told from a decoy: what stays
    open is an issuer that made one of these disclosable, withheld by the holder (docs/formats.md)."""
    if len(parsed.disclosures) > MAX_DISCLOSURES:
        raise SdJwtTooLarge(f"more than {MAX_DISCLOSURES:,} disclosures")
    for name in ALWAYS_DISCLOSED:
        if name in parsed.payload and _holds_digest(parsed.payload[name]):
            raise SdJwtNotDisclosable(f"{name!r} holds selectively disclosable parts, but is always shown")
    processor = _Processor(parsed.disclosures)
    payload = processor.run(parsed.payload)
    for location in processor.location_of.values():
        if _top_claim(location) in ALWAYS_DISCLOSED:
            pointer = _pointer(location)
            raise SdJwtNotDisclosable(
                f"{pointer[:80]!r} is selectively disclosable, but must always be shown"
            )
    return payload


def _holds_digest(value: Any) -> bool:
    """Whether ``value`` (of a signed payload, nesting already bounded by parsing) has an ``_sd``
    member or a ``{"...": digest}`` element anywhere."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "_sd" in node or "..." in node:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedSdJwt:
    """What a verified SD-JWT says: the processed payload, and the exact issuer-signed JWT."""

    payload: dict[str, Any]
    header: dict[str, Any]
    #: The ASCII bytes of ``<header>.<payload>.<signature>``: what a Merkle leaf commits to.
    issuer_signed_jwt: bytes
    disclosures: tuple[str, ...]


PublicKey = ed25519.Ed25519PublicKey | rsa.RSAPublicKey


def verify_jws(parsed: ParsedSdJwt, public_key: PublicKey, expected_alg: str) -> None:
    """Checks the issuer-signed JWT's header (``alg`` as expected, ``typ`` ``vc+sd-jwt``, no
    ``crit``) and its signature under ``public_key``; raises :class:`SdJwtError` otherwise."""
    if expected_alg not in ALGORITHMS:
        raise SdJwtError(f"unsupported JWS algorithm {expected_alg!r}; use one of {ALGORITHMS}")
    if parsed.header.get("alg") != expected_alg:
        raise SdJwtSignatureInvalid(f"the JWS algorithm is not the expected {expected_alg}")
    if parsed.header.get("typ") != TYP:
        raise SdJwtError(f"the JWS typ must be {TYP!r}")
    if "crit" in parsed.header:
        raise SdJwtError("critical JWS header extensions are not supported")
    if expected_alg == "EdDSA":
        if not isinstance(public_key, ed25519.Ed25519PublicKey):
            raise SdJwtError("EdDSA needs an Ed25519 public key")
        verified = ed25519_verifies(public_key, parsed.signature, parsed.signing_input)
    else:
        if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < MIN_RSA_BITS:
            raise SdJwtError(f"RS256 needs an RSA public key of {MIN_RSA_BITS}+ bits")
        try:
            public_key.verify(parsed.signature, parsed.signing_input, padding.PKCS1v15(), hashes.SHA256())
            verified = True
        except InvalidSignature:
            verified = False
    if not verified:
        raise SdJwtSignatureInvalid("the issuer-signed JWT's signature does not verify")


def verify_sd_jwt(sd_jwt: str | bytes, public_key: PublicKey, *, expected_alg: str) -> VerifiedSdJwt:
    """Verifies an SD-JWT (compact form, no key binding) against the issuer's public key and the
    algorithm the key is registered for, and returns the processed payload with the issuer-signed
    JWT. Validity claims (``validFrom``, ``validUntil``, status) are left to the caller, which
    judges them at a time it supplies. Every failure is a :class:`SdJwtError`."""
    parsed = parse_sd_jwt(sd_jwt)
    verify_jws(parsed, public_key, expected_alg)
    payload = process_disclosures(parsed.payload, parsed.disclosures)
    return VerifiedSdJwt(payload, parsed.header, parsed.issuer_signed_jwt.encode("ascii"), parsed.disclosures)


# -- the holder --------------------------------------------------------------------------------


def withhold(sd_jwt: str, *, pointers: Iterable[str] = (), disclosures: Iterable[str] = ()) -> str:
    """The SD-JWT without the disclosures of the claims named by ``pointers`` (JSON Pointers into
    the payload this SD-JWT reconstructs) or given as ``disclosures``, and without every disclosure
    nested inside a withheld one (RFC 9901 section 7.2: it would be unreferenced, and refused).
    The signature is not checked here: a holder checks it once, on receipt, with
    :func:`verify_sd_jwt`."""
    parsed = parse_sd_jwt(sd_jwt)
    processor = _Processor(parsed.disclosures)
    processor.run(parsed.payload)
    index_of_pointer = {pointer: index for index, pointer in processor.pointer_of.items()}
    index_of_disclosure = {disclosure: index for index, disclosure in enumerate(parsed.disclosures)}
    dropped: set[int] = set()
    for pointer in [pointers] if isinstance(pointers, str) else pointers:
        if not isinstance(pointer, str) or pointer not in index_of_pointer:
            raise SdJwtNotDisclosable(f"{str(pointer)[:80]!r} names no selectively disclosed claim here")
        dropped.add(index_of_pointer[pointer])
    for disclosure in [disclosures] if isinstance(disclosures, str) else disclosures:
        if not isinstance(disclosure, str) or disclosure not in index_of_disclosure:
            raise SdJwtNotDisclosable("that disclosure is not in this SD-JWT")
        dropped.add(index_of_disclosure[disclosure])

    def withheld(index: int) -> bool:
        # Walk up the parents: each disclosure has exactly one (digests are unique), so this ends.
        current: int | None = index
        while current is not None:
            if current in dropped:
                return True
            current = processor.parent_of[current]
        return False

    kept = [disclosure for index, disclosure in enumerate(parsed.disclosures) if not withheld(index)]
    return "~".join((parsed.issuer_signed_jwt, *kept, ""))


def disclosed_claims(sd_jwt: str) -> dict[str, Any]:
    """The claims this SD-JWT discloses, by JSON Pointer into the payload it reconstructs, each with
    its value there (parents before their children): what a holder may withhold from it. The
    signature is not checked."""
    parsed = parse_sd_jwt(sd_jwt)
    processor = _Processor(parsed.disclosures)
    payload = processor.run(parsed.payload)
    return {pointer: _resolve(payload, pointer) for pointer in processor.pointer_of.values()}


def show_only(sd_jwt: str, shown: Iterable[str]) -> str:
    """The SD-JWT withholding every disclosed claim but ``shown`` (JSON Pointers into the payload it
    reconstructs), what lies under them and the claims that contain them. Each pointer must name
    something in that payload; naming an always-shown claim keeps nothing more."""
    shown = [shown] if isinstance(shown, str) else list(dict.fromkeys(shown))
    if not shown:
        raise SdJwtNotDisclosable("name at least one claim to show")
    parsed = parse_sd_jwt(sd_jwt)
    payload = process_disclosures(parsed.payload, parsed.disclosures)
    for pointer in shown:
        _resolve(payload, pointer)

    def kept(pointer: str) -> bool:
        return any(pointer == s or pointer.startswith(s + "/") or s.startswith(pointer + "/") for s in shown)

    return withhold(sd_jwt, pointers=[pointer for pointer in disclosed_claims(sd_jwt) if not kept(pointer)])
