"""The verification link of a leaf, and legacy ``finvault-receipt/1`` assembly (pure).

:func:`verification_link` is what a QR code carries for any receipt. The rest builds /1 receipts
(salted documents, FinVault's own digest signature, one Merkle tree over the digests) as the
issuer did before /2: the issuer no longer calls it; the tests and ``bench/node.py --receipt-format
1`` use it to hold verifiers to the legacy format they still accept. New issuance is
:mod:`chain.core.secured`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from chain.core.canonical import SaltedDocument
from chain.core.data_integrity import add_proof, did_key
from chain.core.encoding import hex0x
from chain.core.merkle import MerkleTree, leaf_hash
from chain.core.receipt import Anchor, Proof, Receipt, Signature, build_receipt
from chain.core.signing import PrivateKey, public_key_info, sign_digest


@dataclass(frozen=True)
class SignedDocument:
    """A salted document with the issuer's signature over its digest, ready to go into a batch."""

    document: SaltedDocument
    signature: Signature

    @property
    def leaf(self) -> bytes:
        """The document's Merkle leaf hash (keccak256 twice over its digest)."""
        return leaf_hash(self.document.digest)


def sign_document(document: SaltedDocument, key: PrivateKey) -> SignedDocument:
    """Signs the document's digest with ``key``; the signature names the key by its on-chain key id."""
    info = public_key_info(key)
    signature = Signature(
        keyId=hex0x(info.key_id),
        algorithm=info.algorithm.label,  # type: ignore[arg-type]  # KeyAlgorithm.label is one of the two
        value=base64.b64encode(sign_digest(key, document.digest)).decode(),
    )
    return SignedDocument(document, signature)


def secure_credential(
    credential: Mapping[str, Any], key: PrivateKey, *, created: str, controller: str | None = None
) -> dict[str, Any]:
    """The credential a FinVault Ed25519 issuer issues: its ``issuer`` set to the key's controller
    (``did:key`` of the key by default, or e.g. ``did:web:DOMAIN``; an issuer object keeps its other
    fields), secured with an ``eddsa-jcs-2022`` Data Integrity proof, so that standard Verifiable
    Credentials tooling can check it. RSA keys have no such cryptosuite: the credential is returned
    as it is."""
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        return dict(credential)
    controller = controller or did_key(key.public_key())
    issuer = credential.get("issuer")
    named = {**issuer, "id": controller} if isinstance(issuer, Mapping) else controller
    return add_proof({**credential, "issuer": named}, key, controller=controller, created=created)


def verification_link(node_url: str, leaf: bytes) -> str:
    """The short link a QR code carries: the node's page for this leaf."""
    return f"{node_url.rstrip('/')}/v/{hex0x(leaf)}"


def batch_receipts(
    tree: MerkleTree, signed: Sequence[SignedDocument], anchor: Anchor, node_url: str | None = None
) -> Iterator[Receipt]:
    """One receipt per document of an anchored batch, in the order given."""
    root = hex0x(tree.root)
    for item in signed:
        leaf = item.leaf
        yield build_receipt(
            item.document,
            signature=item.signature,
            proof=Proof(leaf=hex0x(leaf), path=[hex0x(p) for p in tree.proof(leaf)], root=root),
            anchor=anchor,
            link=verification_link(node_url, leaf) if node_url else None,
        )
