"""Builders shared by tests: real documents, real signatures, real trees; no fakes of our own code."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from chain.core.canonical import SaltedDocument, salt_document
from chain.core.encoding import hex0x
from chain.core.issuance import batch_receipts, secure_credential, sign_document
from chain.core.merkle import MerkleTree
from chain.core.receipt import Anchor, Receipt, ReceiptV2, build_receipt_v2
from chain.core.secured import SD_JWT, SecuredCredential, Securing, secure_data_integrity, secure_sd_jwt
from chain.core.signing import PrivateKey, PublicKeyInfo, public_key_info
from chain.core.verify import AnchorFact, ChainHead, EventRef, IssuerFact, KeyFact, RevocationFact
from chain.keys import generate_private_key

CHAIN_ID = 31337
REGISTRY = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
ISSUER = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
#: When the test credentials' Data Integrity proofs say they were made.
ISSUED_AT = "2026-06-30T00:00:00Z"


def deterministic_bytes(seed: str) -> Callable[[int], bytes]:
    """A reproducible stand-in for os.urandom: SHA-256 in counter mode."""
    counter = itertools.count()

    def read(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{seed}/{next(counter)}".encode()).digest()
        return out[:n]

    return read


def credential(name: str = "Ada Lovelace", **extra: Any) -> dict[str, Any]:
    """A W3C Verifiable Credentials 2.0 shaped degree certificate."""
    return {
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "type": ["VerifiableCredential", "DegreeCredential"],
        "issuer": {"id": "did:web:uni.example", "name": "Example University"},
        "validFrom": "2026-06-30T00:00:00Z",
        "credentialSubject": {
            "name": name,
            "degree": {"type": "MasterDegree", "name": "MSc Computer Science"},
            "grade": "A",
            "credits": 120,
        },
        **extra,
    }


@dataclass
class Batch:
    """Documents signed with one key and batched into one tree, with receipts once anchored."""

    key: PrivateKey
    documents: list[SaltedDocument]
    tree: MerkleTree

    @property
    def key_info(self) -> PublicKeyInfo:
        return public_key_info(self.key)

    def receipt(
        self,
        index: int,
        *,
        tx_hash: str,
        block_number: int,
        chain_id: int = CHAIN_ID,
        registry: str = REGISTRY,
        issuer: str = ISSUER,
    ) -> Receipt:
        anchor = Anchor(
            chainId=chain_id, registry=registry, issuer=issuer, txHash=tx_hash, blockNumber=block_number
        )
        signed = sign_document(self.documents[index], self.key)
        return next(batch_receipts(self.tree, [signed], anchor))


def make_batch(
    size: int = 3, *, kind: str = "ed25519", key: PrivateKey | None = None, seed: str = "batch"
) -> Batch:
    """``size`` credentials issued as the issuer service issues them: secured with a Data Integrity
    proof when the key is Ed25519 (:func:`chain.core.issuance.secure_credential`), then salted."""
    key = key or generate_private_key(kind)  # type: ignore[arg-type]
    documents = [
        salt_document(
            secure_credential(credential(f"Student {i}"), key, created=ISSUED_AT),
            deterministic_bytes(f"{seed}/{i}"),
        )
        for i in range(size)
    ]
    return Batch(key, documents, MerkleTree([d.digest for d in documents]))


@dataclass
class SecuredBatch:
    """finvault-receipt/2 credentials secured with one key and batched into one tree."""

    key: PrivateKey
    secured: list[SecuredCredential]
    tree: MerkleTree

    @property
    def key_info(self) -> PublicKeyInfo:
        return public_key_info(self.key)

    def receipt(
        self, index: int, *, chain_id: int = CHAIN_ID, registry: str = REGISTRY, issuer: str = ISSUER
    ) -> ReceiptV2:
        item = self.secured[index]
        return build_receipt_v2(
            item.value,
            path=[hex0x(p) for p in self.tree.proof(item.leaf)],
            root=hex0x(self.tree.root),
            chain_id=chain_id,
            registry=registry,
            issuer=issuer,
        )


def secure(
    document: dict[str, Any],
    key: PrivateKey,
    securing: Securing = SD_JWT,
    *,
    seed: str = "secure",
    disclosable: list[str] | None = None,
) -> SecuredCredential:
    """``document`` secured as the issuer service secures it, reproducibly."""
    if securing == SD_JWT:
        return secure_sd_jwt(document, key, random_bytes=deterministic_bytes(seed), disclosable=disclosable)
    return secure_data_integrity(document, key, created=ISSUED_AT)  # type: ignore[arg-type]


def make_secured_batch(
    size: int = 3,
    *,
    kind: str = "ed25519",
    securing: Securing = SD_JWT,
    key: PrivateKey | None = None,
    seed: str = "batch",
) -> SecuredBatch:
    """``size`` degree credentials secured for finvault-receipt/2 and batched into one tree."""
    key = key or generate_private_key(kind)  # type: ignore[arg-type]
    secured = [secure(credential(f"Student {i}"), key, securing, seed=f"{seed}/{i}") for i in range(size)]
    return SecuredBatch(key, secured, MerkleTree([s.digest for s in secured]))


def event(block: int, log_index: int = 0) -> EventRef:
    return EventRef(
        tx_hash=hex0x(hashlib.sha256(f"tx{block}/{log_index}".encode()).digest()),
        block_number=block,
        block_hash=hex0x(hashlib.sha256(f"block{block}".encode()).digest()),
        log_index=log_index,
    )


@dataclass
class StaticFacts:
    """ChainFacts from plain dictionaries: the facts a test decides the chain holds."""

    chain_id: int = CHAIN_ID
    registry: str = REGISTRY
    anchors: dict[bytes, AnchorFact] = field(default_factory=dict)
    revocations: dict[tuple[bytes, bytes | None], RevocationFact] = field(default_factory=dict)
    issuers: dict[str, IssuerFact] = field(default_factory=dict)
    keys: dict[bytes, KeyFact] = field(default_factory=dict)
    chain_head: ChainHead = field(default_factory=lambda: ChainHead(200, 130))

    def anchor(self, root: bytes) -> AnchorFact | None:
        return self.anchors.get(root)

    def revocation(self, root: bytes, leaf: bytes | None) -> RevocationFact | None:
        return self.revocations.get((root, leaf))

    def issuer(self, address: str) -> IssuerFact | None:
        return self.issuers.get(address)

    def key(self, key_id: bytes) -> KeyFact | None:
        return self.keys.get(key_id)

    def head(self) -> ChainHead:
        return self.chain_head

    def with_head(self, number: int, finalized: int | None) -> StaticFacts:
        return replace(self, chain_head=ChainHead(number, finalized))


def anchored_facts(
    tree: MerkleTree, key: PrivateKey, *, block: int = 100, key_added: int = 50, issuer: str = ISSUER
) -> StaticFacts:
    """Facts where ``tree`` is anchored in ``block`` by an active issuer with ``key`` live."""
    info = public_key_info(key)
    return StaticFacts(
        anchors={tree.root: AnchorFact(tree.root, issuer, len(tree.leaves), 1_780_000_000, event(block))},
        issuers={issuer: IssuerFact(issuer, "Example University", "https://uni.example", True)},
        keys={info.key_id: KeyFact(info.key_id, issuer, info.algorithm, info.der, key_added, None)},
    )


def anchored_v2(
    batch: SecuredBatch, *, block: int = 100, key_added: int = 50, issuer: str = ISSUER
) -> tuple[StaticFacts, list[ReceiptV2]]:
    """Facts where the /2 ``batch`` is anchored in ``block``, and its receipts."""
    facts = anchored_facts(batch.tree, batch.key, block=block, key_added=key_added, issuer=issuer)
    return facts, [batch.receipt(i, issuer=issuer) for i in range(len(batch.secured))]


def anchored(
    batch: Batch, *, block: int = 100, key_added: int = 50, issuer: str = ISSUER
) -> tuple[StaticFacts, Iterator[Receipt]]:
    """Facts where the legacy /1 ``batch`` is anchored in ``block`` by an active issuer with a live key."""
    facts = anchored_facts(batch.tree, batch.key, block=block, key_added=key_added, issuer=issuer)
    anchor_event = event(block)
    receipts = (
        batch.receipt(i, tx_hash=anchor_event.tx_hash, block_number=block, issuer=issuer)
        for i in range(len(batch.documents))
    )
    return facts, receipts
