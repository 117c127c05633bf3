"""Issuer identity that can be checked: a did:web document that names the issuer's on-chain account.

OpenAttestation binds a document store to a domain with a DNS TXT record; FinVault binds an issuer
to a domain with ``did:web``. The issuer publishes ``https://DOMAIN/.well-known/did.json`` (made by
``finvault issuer did-web``): its signing keys as Multikey verification methods, and its registry
account as ``alsoKnownAs: ["eip155:CHAINID:ADDRESS"]`` (a CAIP-10 account id) with the registry as a
service. A verifier that fetched the document judges it here, with no I/O: the domain vouches for
a receipt when its document names the account that anchored the receipt's batch on this chain.

Which URL a DID may name is decided here too (:func:`parse_did_web`), and which addresses a fetch
may reach (:func:`forbidden_address`): a DID comes from an untrusted receipt, so it may only name
the URL forms the did:web method allows, never an arbitrary path or query on an arbitrary host.

Identity is advisory: it is reported beside a verdict's status and never changes it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import idna

from chain.core.errors import FinVaultError

#: ``refused``: the DID names a URL form or an address this verifier will not fetch (see
#: :func:`parse_did_web` and :func:`forbidden_address`); retrying will not help.
IdentityStatus = Literal["verified", "mismatch", "unreachable", "refused", "not_configured"]
DID_CONTEXTS = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
REGISTRY_SERVICE = "FinVaultRegistry"
#: Longer DIDs are refused before any parsing (a did:web names a host and a short path).
MAX_DID_LENGTH = 1024

#: DID syntax (W3C DID Core): a method-specific id is idchars (ALPHA DIGIT . - _ and %XX) and colons.
_SEGMENT = re.compile(r"(?:[A-Za-z0-9._-]|%[0-9A-Fa-f]{2})+")
#: The domain part: a host (raw Unicode allowed, then IDNA), and a port as %3A only.
_DOMAIN = re.compile(r"(?P<host>[^%:]+)(?:%3[Aa](?P<port>[0-9]{1,5}))?")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
#: Decoded path characters that would let a DID pick another path, a query or a fragment.
_FORBIDDEN_IN_SEGMENT = frozenset("/?#%\\")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

#: IANA special-purpose ranges (RFC 6890 registries) judged here by name, because ``ipaddress``
#: versions disagree on them: Python 3.11.7 calls 192.0.0.8 global, and 3fff::1 (RFC 9637
#: documentation) global; later versions fixed some, in patch releases. Listed ranges are refused
#: whole, on every version, with the same kind. IANA marks a few small parts globally reachable
#: (192.0.0.9-10 anycast, 2001:1::1-2, 2001:3::/32 AMT, 2001:4:112::/48 AS112, 2001:20::/28
#: ORCHIDv2, 2001:30::/28 drone ids): none of them is where a web server hosts a did.json, so
#: being exact would only widen what an untrusted receipt can make the verifier connect to.
SPECIAL_PURPOSE_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("100.64.0.0/10"), "shared"),  # RFC 6598 carrier-grade NAT
    (ipaddress.ip_network("192.0.0.0/24"), "ietf_protocol"),  # RFC 6890
    (ipaddress.ip_network("198.18.0.0/15"), "benchmarking"),  # RFC 2544
    (ipaddress.ip_network("2001::/23"), "ietf_protocol"),  # RFC 2928
    (ipaddress.ip_network("64:ff9b:1::/48"), "translation"),  # RFC 8215 local-use IPv4/IPv6
    (ipaddress.ip_network("3fff::/20"), "documentation"),  # RFC 9637
    (ipaddress.ip_network("5f00::/16"), "segment_routing"),  # RFC 9602 SRv6 SIDs
)


class IdentityError(FinVaultError, ValueError):
    """A DID that is not a did:web this module can turn into a URL."""

    code = "identity_invalid"


@dataclass(frozen=True)
class DidWebLocation:
    """Where a ``did:web`` document lives, in the forms a person and a client need."""

    did: str
    #: The host as fetched: ASCII, lowercase, IDNA A-labels (``xn--…``) for non-ASCII names.
    host: str
    port: int | None
    #: Path segments, percent-decoded (UTF-8); empty for ``/.well-known/did.json``.
    path: tuple[str, ...]

    @property
    def domain(self) -> str:
        """Host and port as fetched: ``uni.example`` or ``uni.example:8443`` (ASCII)."""
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def unicode_host(self) -> str | None:
        """The host's Unicode form when it has one (an IDN), else None: shown beside the ASCII form
        so a look-alike (Cyrillic U+0435 for Latin ``e``) cannot pass for the name it imitates."""
        if not any(label.startswith("xn--") for label in self.host.split(".")):
            return None
        try:
            return str(idna.decode(self.host))
        except idna.IDNAError:
            return None

    @property
    def location(self) -> str:
        """The document's full location, host and path, ASCII: ``uni.example/issuers/42``."""
        return self.domain + "".join("/" + _quote(part) for part in self.path)

    @property
    def unicode_location(self) -> str | None:
        """:attr:`location` with the host in Unicode, when it is an IDN; else None."""
        unicode_host = self.unicode_host
        if unicode_host is None:
            return None
        port = "" if self.port is None else f":{self.port}"
        return unicode_host + port + "".join("/" + _quote(part) for part in self.path)

    @property
    def url(self) -> str:
        """The one URL the did:web method gives: ``https://HOST[:PORT]/(PATH|.well-known)/did.json``."""
        path = "/".join(_quote(part) for part in self.path) if self.path else ".well-known"
        return f"https://{self.domain}/{path}/did.json"


def _quote(segment: str) -> str:
    """Percent-encodes everything outside RFC 3986's unreserved characters (UTF-8)."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in segment.encode("utf-8"))


def _host(raw: str, did: str) -> str:
    """The ASCII (A-label) form of a did:web host, or IdentityError."""
    if raw.isascii():
        host = raw.lower()
    else:
        try:  # strict IDNA 2008, no UTS 46 mapping: full-width U+FF45 is refused, not read as "e"
            host = idna.encode(raw).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise IdentityError(f"{did!r}: {raw!r} is not a valid international host name") from None
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise IdentityError(f"{did!r}: {host!r} is not a valid host name")
    if any(label.startswith("xn--") for label in labels):
        try:  # an A-label must decode: "xn--" followed by junk names no host
            idna.decode(host)
        except (idna.IDNAError, UnicodeError):
            raise IdentityError(f"{did!r}: {host!r} is not a valid international host name") from None
    return host


def _segment(raw: str, did: str) -> str:
    """One path segment, percent-decoded, or IdentityError when it could escape its place."""
    if not _SEGMENT.fullmatch(raw):
        raise IdentityError(f"{did!r}: path segment {raw[:40]!r} has characters a DID may not carry")
    try:
        decoded = bytes(
            int(part[1:3], 16) if part.startswith("%") else ord(part)
            for part in re.findall(r"%[0-9A-Fa-f]{2}|.", raw)
        ).decode("utf-8")
    except UnicodeDecodeError:
        raise IdentityError(f"{did!r}: path segment {raw[:40]!r} is not UTF-8") from None
    if decoded in (".", "..") or any(
        c in _FORBIDDEN_IN_SEGMENT or ord(c) < 0x20 or c == "\x7f" for c in decoded
    ):
        raise IdentityError(f"{did!r}: path segment {raw[:40]!r} encodes a path, query or fragment delimiter")
    return decoded


def parse_did_web(did: str) -> DidWebLocation:
    """Where ``did``'s document lives, if ``did`` is a did:web in a form the method allows.

    Refused (IdentityError): anything but ``did:web:HOST[%3APORT][:SEGMENT]*``; a host that is not
    a valid host name (or IDN); percent-encoding in the domain part other than the port's ``%3A``;
    path segments that decode to ``/``, ``?``, ``#``, ``%``, ``\\``, control characters, ``.`` or
    ``..`` (each would let the DID choose another path, a query or a fragment).
    """
    if not isinstance(did, str) or not did.startswith("did:web:") or len(did) > MAX_DID_LENGTH:
        raise IdentityError(f"{str(did)[:80]!r} is not a did:web")
    domain, *segments = did.removeprefix("did:web:").split(":")
    match = _DOMAIN.fullmatch(domain)
    if match is None:
        raise IdentityError(f"{did!r}: the domain part may percent-encode only its port (%3A)")
    port = None
    if match.group("port") is not None:
        port = int(match.group("port"))
        if not 0 < port < 65_536 or match.group("port").startswith("0"):
            raise IdentityError(f"{did!r}: {match.group('port')!r} is not a port")
    host = _host(match.group("host"), did)
    return DidWebLocation(did, host, port, tuple(_segment(raw, did) for raw in segments))


def forbidden_address(address: str) -> str | None:
    """Why a fetch may not connect to ``address`` (loopback, private, link-local, reserved, a
    :data:`SPECIAL_PURPOSE_NETWORKS` range, ...), or None when it is a public unicast address.
    IPv4 carried in IPv6 is judged as IPv4."""
    ip = ipaddress.ip_address(address.split("%")[0])  # an IPv6 scope ("fe80::1%eth0") is no escape
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return forbidden_address(str(ip.ipv4_mapped))
        if ip.sixtofour is not None or ip.teredo is not None:
            return "tunnel"  # an IPv4 address inside 6to4/Teredo: judged unreachable by design
    for network, kind in SPECIAL_PURPOSE_NETWORKS:
        if ip.version == network.version and ip in network:
            return kind
    kinds = ("loopback", "link_local", "multicast", "unspecified", "reserved", "site_local", "private")
    for kind in kinds:
        if getattr(ip, f"is_{kind}", False):
            return kind
    return None if ip.is_global else "not_global"


def caip10(chain_id: int, address: str) -> str:
    """The CAIP-10 id of an account on an EVM chain: ``eip155:137:0xabc...``."""
    return f"eip155:{chain_id}:{address.lower()}"


def did_web_document(
    domain: str, *, chain_id: int, registry: str, issuer: str, multikeys: Sequence[str]
) -> dict[str, Any]:
    """The ``did.json`` an issuer publishes at ``https://DOMAIN/.well-known/did.json``."""
    did = f"did:web:{domain.lower().replace(':', '%3A')}"
    methods = [
        {"id": f"{did}#{key}", "type": "Multikey", "controller": did, "publicKeyMultibase": key}
        for key in dict.fromkeys(multikeys)
    ]
    return {
        "@context": DID_CONTEXTS,
        "id": did,
        "alsoKnownAs": [caip10(chain_id, issuer)],
        "verificationMethod": methods,
        "assertionMethod": [method["id"] for method in methods],
        "service": [
            {
                "id": f"{did}#finvault-registry",
                "type": REGISTRY_SERVICE,
                "serviceEndpoint": caip10(chain_id, registry),
            }
        ],
    }


def judge(document: Any, did: str, *, chain_id: int, issuer: str) -> IdentityStatus:
    """``verified`` when the fetched ``document`` is ``did``'s and names ``issuer`` on ``chain_id``
    as one of its identities; ``mismatch`` otherwise."""
    if not isinstance(document, Mapping) or document.get("id") != did:
        return "mismatch"
    names = document.get("alsoKnownAs")
    if not isinstance(names, list):
        return "mismatch"
    wanted = caip10(chain_id, issuer)
    return (
        "verified" if any(isinstance(name, str) and name.lower() == wanted for name in names) else "mismatch"
    )
