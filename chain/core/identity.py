"""Issuer identity that can be checked: a did:web document that names the issuer's on-chain account.

OpenAttestation binds a document store to a domain with a DNS TXT record; FinVault binds an issuer
to a domain with ``did:web``. The issuer publishes ``https://DOMAIN/.well-known/did.json`` (made by
``finvault issuer did-web``): its signing keys as Multikey verification methods, and its registry
account as ``alsoKnownAs: ["eip155:CHAINID:ADDRESS"]`` (a CAIP-10 account id) with the registry as a
service. A verifier that fetched the document judges it here, with no I/O: the domain vouches for
a receipt when its document names the account that anchored the receipt's batch on this chain.

Identity is advisory: it is reported beside a verdict's status and never changes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from chain.core.errors import FinVaultError

IdentityStatus = Literal["verified", "mismatch", "unreachable", "not_configured"]
DID_CONTEXTS = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]
REGISTRY_SERVICE = "FinVaultRegistry"


_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


def unquote(text: str) -> str:
    """did:web percent-decoding (a port's ``:`` is written ``%3A``), ASCII only."""
    return _PERCENT.sub(lambda match: chr(int(match.group(1), 16)), text)


class IdentityError(FinVaultError, ValueError):
    """A DID that is not a did:web this module can turn into a URL."""

    code = "identity_invalid"


def caip10(chain_id: int, address: str) -> str:
    """The CAIP-10 id of an account on an EVM chain: ``eip155:137:0xabc...``."""
    return f"eip155:{chain_id}:{address.lower()}"


def did_web_domain(did: str) -> str:
    """The host (and port) a ``did:web`` names: ``did:web:uni.example%3A8443:x`` -> ``uni.example:8443``."""
    if not did.startswith("did:web:") or len(did) == len("did:web:"):
        raise IdentityError(f"{did!r} is not a did:web")
    return unquote(did.removeprefix("did:web:").split(":")[0])


def did_web_url(did: str, *, scheme: str = "https") -> str:
    """Where a ``did:web``'s document lives (W3C did:web method: ``/.well-known/did.json`` for a
    bare domain, ``/PATH/did.json`` when the DID has path segments)."""
    domain = did_web_domain(did)
    if any(c in domain for c in "/?#@") or not domain:
        raise IdentityError(f"{did!r} names no plain host")
    path = [unquote(part) for part in did.removeprefix("did:web:").split(":")[1:]]
    return f"{scheme}://{domain}/" + ("/".join(path) if path else ".well-known") + "/did.json"


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
