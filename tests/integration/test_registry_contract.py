"""FinVaultRegistry on a real anvil chain: every function, event, access rule and revert path.

Events are decoded straight from the raw receipt logs with the artifact's ABI, and every field is
checked, including timestamps (against the mined block) and both running accumulators (recomputed
here from the inputs). Reverts are asserted by custom-error name and arguments, as the
``TxSender`` decodes them at gas estimation.

Anchor gas measured on anvil (solc 0.8.28, optimizer 10,000 runs, cancun), receipt gas_used; the
first anchor on a fresh registry costs the same as later ones (non-zero genesis accumulators):

- count 1, no manifestUri:              61,189 first, 61,177 later
- count 100,000, no manifestUri:        61,213 first, 61,201 later
- count 1, 100-character manifestUri:   63,962 first, 63,962 later

(Before the genesis accumulators, the first anchor cost 95,344: two zero-to-non-zero SSTOREs.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_hash.auto import keccak

from chain.contract import Artifact, ContractAbi
from chain.core import accumulators
from chain.core.merkle import MerkleTree, leaf_hash
from chain.core.signing import PublicKeyInfo, public_key_info
from chain.dev.devchain import DEV_CHAIN_ID
from chain.errors import TransactionFailed
from chain.keys import generate_private_key
from chain.registry import (
    RegistryReader,
    RegistryWriter,
    RevocationReason,
    deploy_registry,
    leaf_revocation_id,
)
from chain.rpc import RpcClient
from chain.tx import TxReceipt, TxSender
from tests.integration.conftest import Deployed

ZERO32 = bytes(32)
ZERO_ADDRESS = "0x" + "00" * 20
MAX_BATCH_COUNT = 2**24 - 1
ANCHOR_GAS_BUDGET = 80_000
VALID_REASONS = tuple(int(reason) for reason in RevocationReason)
INVALID_REASONS = (2, 6, 7, 8, 10, 12, 255)
REVOKE_KINDS = ("root", "leaf", "leaves")


# ------------------------------------------------------------------------------------ test data


def digest(label: str) -> bytes:
    """A document digest as the issuer computes it: SHA-256 of the document."""
    return hashlib.sha256(f"FinVault test document {label}".encode()).digest()


def make_tree(tag: str, size: int) -> MerkleTree:
    return MerkleTree([digest(f"{tag}/{i}") for i in range(size)])


def address_of(writer: RegistryWriter) -> str:
    return writer.sender.signer.address


def _normalize(value: Any) -> Any:
    """Addresses compare lower-case, whatever checksum casing a decoder returns."""
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return value.lower()
    return value


def genesis(chain_id: int, registry: str) -> tuple[bytes, bytes]:
    """Both accumulators right after deployment: keccak256(abi.encode(chainid, registry, 1 | 2))."""

    def seed(domain: int) -> bytes:
        return keccak(abi_encode(["uint256", "address", "uint256"], [chain_id, registry, domain]))

    return seed(1), seed(2)


def anchor_accumulator(prev: bytes, root: bytes, issuer: str, count: int, block: int) -> bytes:
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "address", "uint256", "uint256"], [prev, root, issuer, count, block]
        )
    )


def revocation_accumulator(
    prev: bytes, root: bytes, leaf: bytes, issuer: str, reason: int, block: int
) -> bytes:
    return keccak(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "address", "uint8", "uint256"],
            [prev, root, leaf, issuer, reason, block],
        )
    )


def revocation_event(
    root: bytes, leaf: bytes | None, issuer: str, reason: int, timestamp: int, accumulator: bytes
) -> dict[str, Any]:
    """The fields of RootRevoked (``leaf`` None) or LeafRevoked."""
    fields = {
        "root": root,
        "issuer": issuer,
        "reason": reason,
        "timestamp": timestamp,
        "accumulator": accumulator,
    }
    return fields if leaf is None else {"leaf": leaf, **fields}


@contextmanager
def reverts(error_name: str, **error_args: Any) -> Iterator[None]:
    """Expects a TransactionFailed carrying exactly this custom error and arguments."""
    with pytest.raises(TransactionFailed) as caught:
        yield
    assert caught.value.error_name == error_name, str(caught.value)
    assert {k: _normalize(v) for k, v in caught.value.error_args.items()} == {
        k: _normalize(v) for k, v in error_args.items()
    }


# --------------------------------------------------------------------------------- the harness


@dataclass
class World:
    """A deployed registry plus the helpers every test needs: event decoding, block timestamps."""

    rpc: RpcClient
    abi: ContractAbi
    deployed: Deployed
    _topics: dict[bytes, str] = field(init=False)

    def __post_init__(self) -> None:
        self._topics = {event.topic0: name for name, event in self.abi.events.items()}

    @property
    def owner(self) -> RegistryWriter:
        return self.deployed.owner

    @property
    def issuer(self) -> RegistryWriter:
        return self.deployed.issuer

    @property
    def other(self) -> RegistryWriter:
        return self.deployed.other_issuer

    @property
    def stranger(self) -> RegistryWriter:
        return self.deployed.stranger

    @property
    def reader(self) -> RegistryReader:
        return self.deployed.owner

    @property
    def genesis(self) -> tuple[bytes, bytes]:
        return genesis(DEV_CHAIN_ID, self.deployed.address)

    def decode_log(self, log: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        assert log["address"].lower() == self.deployed.address
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        name = self._topics[topics[0]]
        event = self.abi.events[name]
        assert len(topics) == 1 + len(event.indexed)
        fields = {
            key: _normalize(abi_decode([kind], topic)[0])
            for (key, kind), topic in zip(event.indexed, topics[1:], strict=True)
        }
        values = abi_decode([kind for _, kind in event.data], bytes.fromhex(log["data"][2:]))
        fields.update({key: _normalize(v) for (key, _), v in zip(event.data, values, strict=True)})
        return name, fields

    def events(self, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
        """All logs of ``receipt``, which must all be ``name`` events, decoded in log order."""
        decoded = [self.decode_log(log) for log in receipt.logs]
        assert [n for n, _ in decoded] == [name] * len(decoded)
        return [fields for _, fields in decoded]

    def only_event(self, receipt: TxReceipt, name: str) -> dict[str, Any]:
        (fields,) = self.events(receipt, name)
        return fields

    def timestamp(self, block_number: int) -> int:
        block = self.rpc.call("eth_getBlockByNumber", [hex(block_number), False])
        return int(block["timestamp"], 16)


@pytest.fixture
def bare(rpc: RpcClient, artifact: Artifact, registry: Deployed) -> World:
    """A fresh registry with no issuers."""
    return World(rpc, artifact.abi, registry)


@pytest.fixture
def world(bare: World) -> World:
    """A fresh registry with two active issuers (dev accounts 1 and 2)."""
    bare.owner.register_issuer(address_of(bare.issuer), "Issuer A", "https://a.example")
    bare.owner.register_issuer(address_of(bare.other), "Issuer B", "https://b.example")
    return bare


@pytest.fixture(scope="module")
def keys() -> dict[str, PublicKeyInfo]:
    return {kind: public_key_info(generate_private_key(kind)) for kind in ("ed25519", "rsa-2048")}


@pytest.fixture(scope="module")
def rsa_1024_der() -> bytes:
    """A weak key public_key_info refuses, built with cryptography directly."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - on purpose
    return private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def add_key(writer: RegistryWriter, info: PublicKeyInfo) -> TxReceipt:
    return writer.add_key(info.key_id, int(info.algorithm), info.der)


def anchor_tree(writer: RegistryWriter, tree: MerkleTree, uri: str = "") -> TxReceipt:
    return writer.anchor(tree.root, len(tree), uri)


def multiproof_leaves(tree: MerkleTree) -> list[bytes]:
    """Three leaves in the middle of the tree (or fewer for a tiny tree)."""
    return tree.leaves[1:4] if len(tree) > 3 else tree.leaves


def revoke(writer: RegistryWriter, kind: str, tree: MerkleTree, reason: int) -> TxReceipt:
    """Revokes the whole root, its first leaf, or a multiproof over three of its leaves."""
    if kind == "root":
        return writer.revoke_root(tree.root, reason)
    if kind == "leaf":
        leaf = tree.leaves[0]
        return writer.revoke_leaf(leaf, tree.root, tree.proof(leaf), reason)
    multi = tree.multiproof(multiproof_leaves(tree))
    return writer.revoke_leaves(multi.leaves, tree.root, multi.proof, multi.proof_flags, reason)


def revocation_ids(kind: str, tree: MerkleTree) -> list[bytes]:
    """What ``revoke(kind, tree)`` marks as revoked."""
    if kind == "root":
        return [tree.root]
    leaves = [tree.leaves[0]] if kind == "leaf" else list(tree.multiproof(multiproof_leaves(tree)).leaves)
    return [leaf_revocation_id(tree.root, leaf) for leaf in leaves]


# ------------------------------------------------------------------------ deployment and views


def test_initial_state_and_constants(bare: World) -> None:
    reader = bare.reader
    assert reader.call("ALG_ED25519") == (1,)
    assert reader.call("ALG_RSA_PKCS1V15_SHA256") == (2,)
    assert reader.call("MAX_BATCH_COUNT") == (MAX_BATCH_COUNT,)
    assert reader.call("REASON_ISSUED_IN_ERROR") == (int(RevocationReason.ISSUED_IN_ERROR),)
    assert reader.owner() == address_of(bare.owner)
    assert reader.pending_owner() == ZERO_ADDRESS
    assert reader.accumulators() == bare.genesis
    assert bare.genesis == accumulators.genesis_accumulators(DEV_CHAIN_ID, bare.deployed.address)
    assert len(set(bare.genesis)) == 2
    assert ZERO32 not in bare.genesis
    assert reader.counts() == (0, 0)
    assert reader.deployment_block() == bare.deployed.block
    assert reader.call("deploymentBlock") == (bare.deployed.block,)
    reader.check_deployment()


COVERED_EVENTS = {
    "IssuerRegistered",
    "IssuerStatusChanged",
    "KeyAdded",
    "KeyRevoked",
    "Anchored",
    "RootRevoked",
    "LeafRevoked",
    "OwnershipTransferStarted",
    "OwnershipTransferred",
}
COVERED_ERRORS = {
    *("ZeroAddress", "IssuerAlreadyRegistered", "IssuerNotRegistered", "IssuerInactive"),
    *("UnsupportedAlgorithm", "InvalidPublicKeyLength", "KeyIdMismatch", "KeyAlreadyExists"),
    *("KeyNotFound", "NotKeyOwner", "KeyAlreadyRevoked", "ZeroRoot", "ZeroCount", "BatchTooLarge"),
    *("RootAlreadyAnchored", "RootNotAnchored", "NotRootIssuer", "InvalidProof", "NoLeaves"),
    *("InvalidReason", "AlreadyRevoked", "OwnableUnauthorizedAccount", "OwnableInvalidOwner"),
    *("MerkleProofInvalidMultiproof", "SafeCastOverflowedUintDowncast", "Error", "Panic"),
}
COVERED_FUNCTIONS = {
    *("ALG_ED25519", "ALG_RSA_PKCS1V15_SHA256", "MAX_BATCH_COUNT", "REASON_ISSUED_IN_ERROR"),
    *("owner", "pendingOwner", "transferOwnership", "acceptOwnership", "renounceOwnership"),
    *("registerIssuer", "setIssuerActive", "issuerOf", "addKey", "revokeKey", "keyOf"),
    *("anchor", "anchorOf", "anchorCount", "accumulator", "deploymentBlock"),
    *("revokeRoot", "revokeLeaf", "revokeLeaves", "revocationOf", "revocationCount"),
    *("revocationAccumulator", "leafRevocationId", "isValid"),
}


def test_abi_surface_is_what_this_suite_covers(artifact: Artifact) -> None:
    """A new function, event or error in the contract needs tests here first."""
    abi = artifact.abi
    assert set(abi.events) == COVERED_EVENTS
    assert set(abi.functions) == COVERED_FUNCTIONS
    # SafeCastOverflowedUintDowncast needs block numbers past 2**32: not reachable on a test chain
    assert {error.name for error in abi.errors.values()} == COVERED_ERRORS


def test_unknown_records_read_as_zero(bare: World) -> None:
    reader = bare.reader
    unknown = digest("unknown")
    assert reader.call("anchorOf", unknown) == (ZERO_ADDRESS, 0, 0, 0)
    assert not reader.anchor_of(unknown).exists
    assert reader.call("revocationOf", unknown) == (False, 0, 0, 0)
    assert reader.call("keyOf", unknown) == (ZERO_ADDRESS, 0, 0, 0)
    assert not reader.key_of(unknown).exists
    assert reader.call("issuerOf", address_of(bare.stranger)) == (False, False, 0, "", "")


@pytest.mark.parametrize("seed", ["a", "b", "c"])
def test_leaf_revocation_id_matches_python(bare: World, seed: str) -> None:
    root, leaf = digest(f"root {seed}"), leaf_hash(digest(f"leaf {seed}"))
    expected = leaf_revocation_id(root, leaf)
    assert bare.reader.call("leafRevocationId", root, leaf) == (expected,)
    assert expected != leaf_revocation_id(leaf, root)


def test_constructor_refuses_zero_owner(sender: Callable[[int], TxSender], artifact: Artifact) -> None:
    with reverts("OwnableInvalidOwner", owner=ZERO_ADDRESS):
        deploy_registry(sender(0), owner=ZERO_ADDRESS, artifact=artifact)


def test_constructor_sets_given_owner(
    rpc: RpcClient, sender: Callable[[int], TxSender], artifact: Artifact
) -> None:
    owner = sender(3).signer.address
    receipt = deploy_registry(sender(0), owner=owner, artifact=artifact)
    assert receipt.contract_address is not None
    assert RegistryReader(rpc, receipt.contract_address, artifact).owner() == owner


# -------------------------------------------------------------------------------------- issuers


def test_register_issuer(bare: World) -> None:
    issuer = address_of(bare.issuer)
    name, uri = "Université de Genève — Diplômes", "https://unige.example/finvault"
    receipt = bare.owner.register_issuer(issuer, name, uri)
    assert bare.only_event(receipt, "IssuerRegistered") == {"issuer": issuer, "name": name, "uri": uri}
    info = bare.reader.issuer_of(issuer)
    assert (info.registered, info.active, info.registered_block, info.name, info.uri) == (
        True,
        True,
        receipt.block_number,
        name,
        uri,
    )


def test_set_issuer_active_suspends_and_reactivates(world: World) -> None:
    issuer = address_of(world.issuer)
    registered_block = world.reader.issuer_of(issuer).registered_block
    for active in (False, False, True, True):
        receipt = world.owner.set_issuer_active(issuer, active)
        assert world.only_event(receipt, "IssuerStatusChanged") == {"issuer": issuer, "active": active}
        info = world.reader.issuer_of(issuer)
        assert (info.registered, info.active, info.registered_block) == (True, active, registered_block)


ISSUER_ADMIN: dict[str, Callable[[World, RegistryWriter], TxReceipt]] = {
    "registerIssuer": lambda w, caller: caller.register_issuer(address_of(caller), "me", ""),
    "setIssuerActive": lambda w, caller: caller.set_issuer_active(address_of(w.issuer), False),
}


@pytest.mark.parametrize("action", ISSUER_ADMIN.values(), ids=ISSUER_ADMIN.keys())
@pytest.mark.parametrize("caller", ["issuer", "other", "stranger"])
def test_issuer_administration_is_owner_only(
    world: World, action: Callable[[World, RegistryWriter], TxReceipt], caller: str
) -> None:
    writer: RegistryWriter = getattr(world, caller)
    with reverts("OwnableUnauthorizedAccount", account=address_of(writer)):
        action(world, writer)


def test_register_zero_address(bare: World) -> None:
    with reverts("ZeroAddress"):
        bare.owner.register_issuer(ZERO_ADDRESS, "nobody", "")


def test_register_twice(world: World) -> None:
    issuer = address_of(world.issuer)
    with reverts("IssuerAlreadyRegistered", issuer=issuer):
        world.owner.register_issuer(issuer, "again", "")
    world.owner.set_issuer_active(issuer, False)  # a suspended issuer is still registered
    with reverts("IssuerAlreadyRegistered", issuer=issuer):
        world.owner.register_issuer(issuer, "again", "")


ISSUER_ACTIONS: dict[str, Callable[[World, RegistryWriter, dict[str, PublicKeyInfo]], TxReceipt]] = {
    "anchor": lambda w, caller, keys: caller.anchor(digest("unregistered root"), 1, ""),
    "addKey": lambda w, caller, keys: add_key(caller, keys["ed25519"]),
}


@pytest.mark.parametrize("action", ISSUER_ACTIONS.values(), ids=ISSUER_ACTIONS.keys())
def test_unregistered_caller_cannot_issue(world: World, action: Any, keys: dict[str, PublicKeyInfo]) -> None:
    with reverts("IssuerNotRegistered", issuer=address_of(world.stranger)):
        action(world, world.stranger, keys)


def test_set_active_on_unregistered(world: World) -> None:
    stranger = address_of(world.stranger)
    with reverts("IssuerNotRegistered", issuer=stranger):
        world.owner.set_issuer_active(stranger, True)


@pytest.mark.parametrize("action", ISSUER_ACTIONS.values(), ids=ISSUER_ACTIONS.keys())
def test_suspended_issuer_cannot_issue(world: World, action: Any, keys: dict[str, PublicKeyInfo]) -> None:
    issuer = address_of(world.issuer)
    world.owner.set_issuer_active(issuer, False)
    with reverts("IssuerInactive", issuer=issuer):
        action(world, world.issuer, keys)
    world.owner.set_issuer_active(issuer, True)
    action(world, world.issuer, keys)  # reactivated: works again


@pytest.mark.parametrize("kind", REVOKE_KINDS)
def test_suspended_issuer_can_still_revoke(world: World, kind: str, keys: dict[str, PublicKeyInfo]) -> None:
    tree = make_tree("suspended", 5)
    anchor_tree(world.issuer, tree)
    key = keys["ed25519"]
    add_key(world.issuer, key)
    world.owner.set_issuer_active(address_of(world.issuer), False)

    revoke(world.issuer, kind, tree, int(RevocationReason.CESSATION_OF_OPERATION))
    assert all(world.reader.revocation_of(rid).revoked for rid in revocation_ids(kind, tree))
    receipt = world.issuer.revoke_key(key.key_id)
    assert world.reader.key_of(key.key_id).revoked_block == receipt.block_number


# ----------------------------------------------------------------------------------------- keys


@pytest.mark.parametrize("kind", ["ed25519", "rsa-2048"])
def test_add_and_revoke_key(world: World, keys: dict[str, PublicKeyInfo], kind: str) -> None:
    info, issuer = keys[kind], address_of(world.issuer)
    added = add_key(world.issuer, info)
    assert world.only_event(added, "KeyAdded") == {
        "issuer": issuer,
        "keyId": info.key_id,
        "algorithm": int(info.algorithm),
        "publicKey": info.der,
    }
    assert world.reader.call("keyOf", info.key_id) == (issuer, int(info.algorithm), added.block_number, 0)

    revoked = world.issuer.revoke_key(info.key_id)
    assert world.only_event(revoked, "KeyRevoked") == {"issuer": issuer, "keyId": info.key_id}
    key = world.reader.key_of(info.key_id)
    assert (key.issuer, key.algorithm, key.added_block, key.revoked_block) == (
        issuer,
        int(info.algorithm),
        added.block_number,
        revoked.block_number,
    )


@pytest.mark.parametrize(("algorithm", "length"), [(2, 294), (2, 2048)])
def test_rsa_length_bounds_accepted(world: World, algorithm: int, length: int) -> None:
    blob = bytes([0x30]) * length  # the contract checks lengths only; the keyId must still match
    receipt = world.issuer.add_key(keccak(blob), algorithm, blob)
    assert world.only_event(receipt, "KeyAdded")["publicKey"] == blob


def _spki(keys: dict[str, PublicKeyInfo], rsa_1024_der: bytes, which: str) -> bytes:
    sources = {"ed25519": keys["ed25519"].der, "rsa-2048": keys["rsa-2048"].der, "rsa-1024": rsa_1024_der}
    if which in sources:
        return sources[which]
    return bytes([0x30]) * int(which)  # a synthetic blob of that length


@pytest.mark.parametrize(
    ("algorithm", "which", "length"),
    [
        (1, "43", 43),
        (1, "45", 45),
        (1, "rsa-2048", 294),
        (2, "ed25519", 44),
        (2, "rsa-1024", 162),
        (2, "293", 293),
        (2, "2049", 2049),
    ],
)
def test_invalid_public_key_length(
    world: World,
    keys: dict[str, PublicKeyInfo],
    rsa_1024_der: bytes,
    algorithm: int,
    which: str,
    length: int,
) -> None:
    der = _spki(keys, rsa_1024_der, which)
    assert len(der) == length
    with reverts("InvalidPublicKeyLength", algorithm=algorithm, length=length):
        world.issuer.add_key(keccak(der), algorithm, der)


@pytest.mark.parametrize("algorithm", [0, 3, 255])
def test_unsupported_algorithm(world: World, keys: dict[str, PublicKeyInfo], algorithm: int) -> None:
    info = keys["ed25519"]
    with reverts("UnsupportedAlgorithm", algorithm=algorithm):
        world.issuer.add_key(info.key_id, algorithm, info.der)


@pytest.mark.parametrize("kind", ["ed25519", "rsa-2048"])
def test_key_id_mismatch(world: World, keys: dict[str, PublicKeyInfo], kind: str) -> None:
    info, wrong = keys[kind], keccak(b"not the key")
    with reverts("KeyIdMismatch", keyId=wrong, computed=info.key_id):
        world.issuer.add_key(wrong, int(info.algorithm), info.der)


@pytest.mark.parametrize(
    ("first", "second", "revoke_between"),
    [("issuer", "issuer", False), ("issuer", "other", False), ("issuer", "issuer", True)],
    ids=["same-issuer", "other-issuer", "after-revocation"],
)
def test_key_already_exists(
    world: World, keys: dict[str, PublicKeyInfo], first: str, second: str, revoke_between: bool
) -> None:
    info = keys["ed25519"]
    add_key(getattr(world, first), info)
    if revoke_between:
        getattr(world, first).revoke_key(info.key_id)
    with reverts("KeyAlreadyExists", keyId=info.key_id):
        add_key(getattr(world, second), info)


def test_revoke_key_errors(world: World, keys: dict[str, PublicKeyInfo]) -> None:
    info = keys["rsa-2048"]
    with reverts("KeyNotFound", keyId=info.key_id):
        world.issuer.revoke_key(info.key_id)
    add_key(world.issuer, info)
    for intruder in (world.other, world.stranger, world.owner):
        with reverts("NotKeyOwner", keyId=info.key_id, caller=address_of(intruder)):
            intruder.revoke_key(info.key_id)
    world.issuer.revoke_key(info.key_id)
    with reverts("KeyAlreadyRevoked", keyId=info.key_id):
        world.issuer.revoke_key(info.key_id)


# -------------------------------------------------------------------------------------- anchors


def test_anchor(world: World) -> None:
    tree, issuer, uri = make_tree("anchor", 6), address_of(world.issuer), "ipfs://bafy-manifest"
    receipt = anchor_tree(world.issuer, tree, uri)
    timestamp = world.timestamp(receipt.block_number)
    expected_acc = anchor_accumulator(world.genesis[0], tree.root, issuer, 6, receipt.block_number)
    assert world.only_event(receipt, "Anchored") == {
        "root": tree.root,
        "issuer": issuer,
        "count": 6,
        "timestamp": timestamp,
        "accumulator": expected_acc,
        "manifestUri": uri,
    }
    assert world.reader.call("anchorOf", tree.root) == (issuer, receipt.block_number, timestamp, 6)
    assert world.reader.anchor_of(tree.root).exists
    assert world.reader.accumulators() == (expected_acc, world.genesis[1])
    assert world.reader.counts() == (1, 0)


def test_anchor_accepts_max_batch_count(world: World) -> None:
    root = digest("max batch")
    world.issuer.anchor(root, MAX_BATCH_COUNT)
    assert world.reader.anchor_of(root).count == MAX_BATCH_COUNT


@pytest.mark.parametrize(
    ("root", "count", "error", "args"),
    [
        (ZERO32, 1, "ZeroRoot", {}),
        (digest("zero count"), 0, "ZeroCount", {}),
        (digest("too large"), 2**24, "BatchTooLarge", {"count": 2**24, "max": MAX_BATCH_COUNT}),
        (digest("way too large"), 2**256 - 1, "BatchTooLarge", {"count": 2**256 - 1, "max": MAX_BATCH_COUNT}),
    ],
    ids=["zero-root", "zero-count", "2**24", "uint256-max"],
)
def test_anchor_rejects_bad_input(
    world: World, root: bytes, count: int, error: str, args: dict[str, Any]
) -> None:
    with reverts(error, **args):
        world.issuer.anchor(root, count)
    assert world.reader.counts() == (0, 0)


@pytest.mark.parametrize("second", ["issuer", "other"])
def test_root_already_anchored(world: World, second: str) -> None:
    tree = make_tree("twice", 3)
    first = anchor_tree(world.issuer, tree)
    with reverts("RootAlreadyAnchored", root=tree.root):
        getattr(world, second).anchor(tree.root, 99, "elsewhere")
    anchor = world.reader.anchor_of(tree.root)
    assert (anchor.issuer, anchor.block_number, anchor.count) == (
        address_of(world.issuer),
        first.block_number,
        3,
    )


MANIFEST_URI_100 = "https://manifests.finvault.example/" + "m" * 65


@pytest.mark.parametrize(
    ("count", "uri"),
    [(1, ""), (100_000, ""), (1, MANIFEST_URI_100)],
    ids=["count-1", "count-100000", "uri-100-chars"],
)
def test_anchor_gas_budget(world: World, count: int, uri: str) -> None:
    assert len(uri) in (0, 100)
    first = world.issuer.anchor(digest(f"gas first {count} {uri}"), count, uri)
    later = world.other.anchor(digest(f"gas later {count} {uri}"), count, uri)
    print(
        f"\nanchor gas (count={count:,}, manifestUri={len(uri)} chars): "
        f"first on the registry {first.gas_used:,}, later {later.gas_used:,}"
    )
    assert first.gas_used <= ANCHOR_GAS_BUDGET
    assert later.gas_used <= ANCHOR_GAS_BUDGET
    # non-zero genesis accumulators: the first anchor pays no zero-to-non-zero SSTORE (17,100 each)
    assert abs(first.gas_used - later.gas_used) < 1_000


# ---------------------------------------------------------------------------------- revocations


def test_revoke_root(world: World) -> None:
    tree, issuer = make_tree("revoke root", 4), address_of(world.issuer)
    anchored = anchor_tree(world.issuer, tree)
    reason = int(RevocationReason.KEY_COMPROMISE)
    receipt = world.issuer.revoke_root(tree.root, reason)
    timestamp = world.timestamp(receipt.block_number)
    expected_acc = revocation_accumulator(
        world.genesis[1], tree.root, ZERO32, issuer, reason, receipt.block_number
    )
    assert world.only_event(receipt, "RootRevoked") == revocation_event(
        tree.root, None, issuer, reason, timestamp, expected_acc
    )
    assert world.reader.call("revocationOf", tree.root) == (True, reason, receipt.block_number, timestamp)
    assert world.reader.accumulators()[1] == expected_acc
    assert world.reader.counts() == (1, 1)
    assert world.reader.anchor_of(tree.root).block_number == anchored.block_number  # the anchor stays
    leaf = tree.leaves[2]
    assert not world.reader.is_valid(leaf, tree.root, tree.proof(leaf))


def test_revoke_leaf(world: World) -> None:
    tree, issuer = make_tree("revoke leaf", 5), address_of(world.issuer)
    anchor_tree(world.issuer, tree)
    leaf, reason = tree.leaves[3], int(RevocationReason.SUPERSEDED)
    receipt = world.issuer.revoke_leaf(leaf, tree.root, tree.proof(leaf), reason)
    timestamp = world.timestamp(receipt.block_number)
    expected_acc = revocation_accumulator(
        world.genesis[1], tree.root, leaf, issuer, reason, receipt.block_number
    )
    assert world.only_event(receipt, "LeafRevoked") == revocation_event(
        tree.root, leaf, issuer, reason, timestamp, expected_acc
    )
    rid = leaf_revocation_id(tree.root, leaf)
    assert world.reader.call("revocationOf", rid) == (True, reason, receipt.block_number, timestamp)
    assert world.reader.call("revocationOf", tree.root) == (False, 0, 0, 0)
    assert world.reader.call("revocationOf", leaf) == (False, 0, 0, 0)  # keyed by (root, leaf), not leaf
    assert not world.reader.is_valid(leaf, tree.root, tree.proof(leaf))
    others = [other for other in tree.leaves if other != leaf]
    assert all(world.reader.is_valid(other, tree.root, tree.proof(other)) for other in others)


def test_revoke_leaves_multiproof(world: World) -> None:
    tree, issuer = make_tree("multi", 7), address_of(world.issuer)
    anchor_tree(world.issuer, tree)
    chosen = [tree.leaves[5], tree.leaves[0], tree.leaves[3]]
    multi = tree.multiproof(chosen)
    assert sorted(multi.leaves) == sorted(chosen)
    reason = int(RevocationReason.ISSUED_IN_ERROR)
    receipt = world.issuer.revoke_leaves(multi.leaves, tree.root, multi.proof, multi.proof_flags, reason)
    timestamp = world.timestamp(receipt.block_number)

    events = world.events(receipt, "LeafRevoked")
    assert [event["leaf"] for event in events] == list(multi.leaves)
    acc = world.genesis[1]
    for event, leaf in zip(events, multi.leaves, strict=True):
        acc = revocation_accumulator(acc, tree.root, leaf, issuer, reason, receipt.block_number)
        assert event == revocation_event(tree.root, leaf, issuer, reason, timestamp, acc)
        assert world.reader.revocation_of(leaf_revocation_id(tree.root, leaf)).revoked
    assert world.reader.accumulators()[1] == acc
    assert world.reader.counts() == (1, 3)
    untouched = [leaf for leaf in tree.leaves if leaf not in chosen]
    assert all(world.reader.is_valid(leaf, tree.root, tree.proof(leaf)) for leaf in untouched)


def test_single_leaf_tree(world: World) -> None:
    tree = MerkleTree([digest("alone")])
    (leaf,) = tree.leaves
    assert tree.root == leaf == leaf_hash(digest("alone"))
    assert tree.proof(leaf) == []
    anchor_tree(world.issuer, tree)
    assert world.reader.is_valid(leaf, tree.root, [])
    receipt = world.issuer.revoke_leaf(leaf, tree.root, [], 0)
    assert world.only_event(receipt, "LeafRevoked")["leaf"] == leaf
    assert world.reader.revocation_of(leaf_revocation_id(tree.root, leaf)).revoked
    assert not world.reader.revocation_of(tree.root).revoked
    assert not world.reader.is_valid(leaf, tree.root, [])


@pytest.mark.parametrize("reason", VALID_REASONS)
def test_valid_reasons_accepted(world: World, reason: int) -> None:
    for kind in REVOKE_KINDS:
        tree = make_tree(f"reason {reason} {kind}", 4)
        anchor_tree(world.issuer, tree)
        revoke(world.issuer, kind, tree, reason)
        for rid in revocation_ids(kind, tree):
            assert world.reader.revocation_of(rid).reason == reason


@pytest.mark.parametrize("kind", REVOKE_KINDS)
@pytest.mark.parametrize("reason", INVALID_REASONS)
def test_invalid_reason(world: World, kind: str, reason: int) -> None:
    tree = make_tree("bad reason", 4)
    anchor_tree(world.issuer, tree)
    with reverts("InvalidReason", reason=reason):
        revoke(world.issuer, kind, tree, reason)


@pytest.mark.parametrize("kind", REVOKE_KINDS)
def test_revoke_unanchored_root(world: World, kind: str) -> None:
    tree = make_tree("never anchored", 4)
    with reverts("RootNotAnchored", root=tree.root):
        revoke(world.issuer, kind, tree, 0)


@pytest.mark.parametrize("kind", REVOKE_KINDS)
@pytest.mark.parametrize("intruder", ["other", "stranger", "owner"])
def test_only_root_issuer_revokes(world: World, kind: str, intruder: str) -> None:
    tree = make_tree("not yours", 4)
    anchor_tree(world.issuer, tree)
    caller: RegistryWriter = getattr(world, intruder)
    with reverts("NotRootIssuer", root=tree.root, caller=address_of(caller)):
        revoke(caller, kind, tree, 0)


def test_revoke_leaves_needs_leaves(world: World) -> None:
    tree = make_tree("no leaves", 4)
    anchor_tree(world.issuer, tree)
    # an empty multiproof [root] would verify in OpenZeppelin; NoLeaves comes first, even before
    # the root and caller checks
    for caller, root in ((world.issuer, tree.root), (world.stranger, tree.root), (world.issuer, ZERO32)):
        with reverts("NoLeaves"):
            caller.revoke_leaves([], root, [root], [], 0)


LeafForgery = Callable[[MerkleTree, MerkleTree], tuple[bytes, list[bytes]]]

LEAF_FORGERIES: dict[str, LeafForgery] = {
    "wrong-sibling": lambda t, _: (t.leaves[2], [digest("forged"), *t.proof(t.leaves[2])[1:]]),
    "leaf-of-other-tree": lambda _, o: (o.leaves[0], o.proof(o.leaves[0])),
    "proof-of-other-leaf": lambda t, _: (t.leaves[0], t.proof(t.leaves[1])),
    "raw-digest-not-leaf": lambda t, _: (digest("forge/0"), t.proof_for_digest(digest("forge/0"))),
    "truncated": lambda t, _: (t.leaves[0], t.proof(t.leaves[0])[:-1]),
    "empty": lambda t, _: (t.leaves[0], []),
}


@pytest.mark.parametrize("forge", LEAF_FORGERIES.values(), ids=LEAF_FORGERIES.keys())
def test_revoke_leaf_invalid_proof(world: World, forge: LeafForgery) -> None:
    tree, elsewhere = make_tree("forge", 6), make_tree("elsewhere", 6)
    anchor_tree(world.issuer, tree)
    leaf, proof = forge(tree, elsewhere)
    assert not world.reader.is_valid(leaf, tree.root, proof)
    with reverts("InvalidProof", root=tree.root):
        world.issuer.revoke_leaf(leaf, tree.root, proof, 0)


def _flip(flags: tuple[bool, ...], index: int) -> list[bool]:
    return [not flag if i == index else flag for i, flag in enumerate(flags)]


def _swap_first_differing(flags: tuple[bool, ...]) -> list[bool]:
    """Keeps the number of proof elements each flag consumes, so the multiproof stays well-formed."""
    i = next(i for i in range(len(flags) - 1) if flags[i] != flags[i + 1])
    swapped = list(flags)
    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    return swapped


MultiForgery = Callable[[tuple[bytes, ...], tuple[bytes, ...], tuple[bool, ...]], tuple[Any, ...]]

MULTI_FORGERIES: list[Any] = [
    pytest.param(lambda lv, p, f: (lv, p, _swap_first_differing(f)), id="swapped-flags"),
    pytest.param(lambda lv, p, f: (lv, [digest("forged"), *p[1:]], f), id="wrong-proof-node"),
    pytest.param(lambda lv, p, f: ((lv[0], lv[1], leaf_hash(digest("x"))), p, f), id="foreign-leaf"),
    pytest.param(lambda lv, p, f: ((lv[1], lv[0], lv[2]), p, f), id="leaves-out-of-order"),
    pytest.param(lambda lv, p, f: (lv, p, _flip(f, 0)), id="flipped-flag-0"),
    pytest.param(lambda lv, p, f: (lv, p, _flip(f, 1)), id="flipped-flag-1"),
    pytest.param(lambda lv, p, f: (lv, p[:-1], f), id="missing-proof-node"),
]


@pytest.mark.parametrize("forge", MULTI_FORGERIES)
def test_revoke_leaves_invalid_multiproof(world: World, forge: MultiForgery) -> None:
    tree = make_tree("multi forge", 7)
    anchor_tree(world.issuer, tree)
    multi = tree.multiproof(tree.leaves[1:4])
    leaves, proof, flags = forge(multi.leaves, multi.proof, multi.proof_flags)
    with reverts("InvalidProof", root=tree.root):
        world.issuer.revoke_leaves(leaves, tree.root, proof, flags, 0)


def test_already_revoked(world: World) -> None:
    tree = make_tree("twice revoked", 7)
    anchor_tree(world.issuer, tree)
    world.issuer.revoke_root(tree.root, 0)
    with reverts("AlreadyRevoked", revocationId=tree.root):
        world.issuer.revoke_root(tree.root, 1)

    leaf = tree.leaves[2]
    world.issuer.revoke_leaf(leaf, tree.root, tree.proof(leaf), 0)
    with reverts("AlreadyRevoked", revocationId=leaf_revocation_id(tree.root, leaf)):
        world.issuer.revoke_leaf(leaf, tree.root, tree.proof(leaf), 4)

    multi = tree.multiproof(tree.leaves[1:4])  # contains the revoked leaf, not first in order
    assert leaf in multi.leaves
    assert multi.leaves[0] != leaf
    before = world.reader.accumulators(), world.reader.counts()
    with reverts("AlreadyRevoked", revocationId=leaf_revocation_id(tree.root, leaf)):
        world.issuer.revoke_leaves(multi.leaves, tree.root, multi.proof, multi.proof_flags, 0)
    assert (world.reader.accumulators(), world.reader.counts()) == before  # all or nothing
    fresh = [other for other in multi.leaves if other != leaf]
    assert not any(world.reader.revocation_of(leaf_revocation_id(tree.root, f)).revoked for f in fresh)


def test_root_and_leaf_revocations_are_independent(world: World) -> None:
    tree = make_tree("independent", 4)
    anchor_tree(world.issuer, tree)
    leaf = tree.leaves[1]
    world.issuer.revoke_leaf(leaf, tree.root, tree.proof(leaf), 1)
    world.issuer.revoke_root(tree.root, 5)
    assert world.reader.revocation_of(tree.root).reason == 5
    assert world.reader.revocation_of(leaf_revocation_id(tree.root, leaf)).reason == 1
    assert world.reader.counts() == (1, 2)


def test_cross_issuer_same_leaf(world: World) -> None:
    shared = digest("shared document")
    tree_a = MerkleTree([shared, digest("a/1"), digest("a/2")])
    tree_b = MerkleTree([digest("b/0"), shared, digest("b/2"), digest("b/3")])
    leaf = leaf_hash(shared)
    assert leaf in tree_a.leaves
    assert leaf in tree_b.leaves
    assert tree_a.root != tree_b.root
    anchor_tree(world.issuer, tree_a)
    anchor_tree(world.other, tree_b)

    with reverts("NotRootIssuer", root=tree_a.root, caller=address_of(world.other)):
        world.other.revoke_leaf(leaf, tree_a.root, tree_a.proof(leaf), 1)
    world.other.revoke_leaf(leaf, tree_b.root, tree_b.proof(leaf), 1)

    assert world.reader.revocation_of(leaf_revocation_id(tree_b.root, leaf)).revoked
    assert world.reader.call("revocationOf", leaf_revocation_id(tree_a.root, leaf)) == (False, 0, 0, 0)
    assert world.reader.is_valid(leaf, tree_a.root, tree_a.proof(leaf))
    assert not world.reader.is_valid(leaf, tree_b.root, tree_b.proof(leaf))


# ------------------------------------------------------------------------------------- isValid


def _no_change(w: World, t: MerkleTree) -> None:
    return None


def _revoke_leaf_at(index: int) -> Callable[[World, MerkleTree], TxReceipt]:
    def change(w: World, t: MerkleTree) -> TxReceipt:
        return w.issuer.revoke_leaf(t.leaves[index], t.root, t.proof(t.leaves[index]), 0)

    return change


CHECKED_LEAF = 2  # isValid is asked about tree.leaves[2]

IS_VALID_CASES: list[Any] = [
    pytest.param(_no_change, None, True, id="valid"),
    pytest.param(lambda w, t: w.issuer.revoke_root(t.root, 0), None, False, id="root-revoked"),
    pytest.param(_revoke_leaf_at(CHECKED_LEAF), None, False, id="leaf-revoked"),
    pytest.param(_revoke_leaf_at(CHECKED_LEAF + 1), None, True, id="other-leaf-revoked"),
    pytest.param(
        lambda w, t: w.owner.set_issuer_active(address_of(w.issuer), False),
        None,
        False,
        id="issuer-suspended",
    ),
    pytest.param(
        lambda w, t: w.owner.set_issuer_active(address_of(w.other), False), None, True, id="other-suspended"
    ),
    pytest.param(_no_change, [digest("bad")], False, id="bad-proof"),
    pytest.param(_no_change, [], False, id="empty-proof"),
]


@pytest.mark.parametrize(("change", "proof", "expected"), IS_VALID_CASES)
def test_is_valid(
    world: World, change: Callable[[World, MerkleTree], object], proof: list[bytes] | None, expected: bool
) -> None:
    tree = make_tree("valid", 6)
    anchor_tree(world.issuer, tree)
    leaf = tree.leaves[CHECKED_LEAF]
    assert world.reader.is_valid(leaf, tree.root, tree.proof(leaf))
    change(world, tree)
    assert world.reader.is_valid(leaf, tree.root, tree.proof(leaf) if proof is None else proof) is expected


def test_is_valid_unknown_root_and_reactivation(world: World) -> None:
    tree = make_tree("valid later", 3)
    leaf = tree.leaves[0]
    assert not world.reader.is_valid(leaf, tree.root, tree.proof(leaf))
    anchor_tree(world.issuer, tree)
    issuer = address_of(world.issuer)
    world.owner.set_issuer_active(issuer, False)
    assert not world.reader.is_valid(leaf, tree.root, tree.proof(leaf))
    world.owner.set_issuer_active(issuer, True)
    assert world.reader.is_valid(leaf, tree.root, tree.proof(leaf))


# -------------------------------------------------------------------------------- accumulators


@dataclass
class Mirror:
    """Both running accumulators and counters, recomputed off-chain from what was sent."""

    world: World
    anchor_acc: bytes = field(init=False)
    revocation_acc: bytes = field(init=False)
    anchors: int = 0
    revocations: int = 0

    def __post_init__(self) -> None:
        self.anchor_acc, self.revocation_acc = self.world.genesis

    def anchor(self, writer: RegistryWriter, root: bytes, count: int, uri: str = "") -> None:
        receipt, issuer = writer.anchor(root, count, uri), address_of(writer)
        block = receipt.block_number
        folded = anchor_accumulator(self.anchor_acc, root, issuer, count, block)
        assert folded == accumulators.fold_anchor(self.anchor_acc, root, issuer, count, block)
        self.anchor_acc, self.anchors = folded, self.anchors + 1
        assert self.world.only_event(receipt, "Anchored") == {
            "root": root,
            "issuer": issuer,
            "count": count,
            "timestamp": self.world.timestamp(block),
            "accumulator": self.anchor_acc,
            "manifestUri": uri,
        }
        self._check(receipt)

    def revoke_root(self, writer: RegistryWriter, root: bytes, reason: int) -> None:
        receipt = writer.revoke_root(root, reason)
        self._revoked(receipt, address_of(writer), root, [None], reason)

    def revoke_leaves(
        self, writer: RegistryWriter, tree: MerkleTree, leaves: list[bytes], reason: int
    ) -> None:
        """One leaf goes through revokeLeaf, several through revokeLeaves with a multiproof."""
        if len(leaves) == 1:
            receipt = writer.revoke_leaf(leaves[0], tree.root, tree.proof(leaves[0]), reason)
        else:
            multi = tree.multiproof(leaves)
            leaves = list(multi.leaves)  # the order the contract revokes (and emits) them in
            receipt = writer.revoke_leaves(multi.leaves, tree.root, multi.proof, multi.proof_flags, reason)
        self._revoked(receipt, address_of(writer), tree.root, list(leaves), reason)

    def _revoked(
        self, receipt: TxReceipt, issuer: str, root: bytes, leaves: list[bytes | None], reason: int
    ) -> None:
        """``leaves`` is ``[None]`` for a root revocation."""
        block = receipt.block_number
        timestamp = self.world.timestamp(block)
        name = "RootRevoked" if leaves == [None] else "LeafRevoked"
        for event, leaf in zip(self.world.events(receipt, name), leaves, strict=True):
            leaf32 = ZERO32 if leaf is None else leaf
            folded = revocation_accumulator(self.revocation_acc, root, leaf32, issuer, reason, block)
            assert folded == accumulators.fold_revocation(
                self.revocation_acc, root, leaf32, issuer, reason, block
            )
            self.revocation_acc, self.revocations = folded, self.revocations + 1
            assert event == revocation_event(root, leaf, issuer, reason, timestamp, folded)
        self._check(receipt)

    def _check(self, receipt: TxReceipt) -> None:
        reader, at = self.world.reader, receipt.block_number
        assert reader.accumulators(block=at) == (self.anchor_acc, self.revocation_acc)
        assert reader.counts(block=at) == (self.anchors, self.revocations)


def test_accumulators_over_a_history(world: World) -> None:
    mirror = Mirror(world)
    seven, single, pair = make_tree("acc 7", 7), make_tree("acc 1", 1), make_tree("acc 2", 2)
    mirror.anchor(world.issuer, seven.root, 7)
    mirror.anchor(world.other, pair.root, 100)
    mirror.anchor(world.issuer, single.root, 1)
    mirror.revoke_root(world.other, pair.root, 4)
    mirror.anchor(world.other, digest("acc big"), MAX_BATCH_COUNT)
    mirror.revoke_leaves(world.issuer, seven, [seven.leaves[0]], 0)
    mirror.revoke_leaves(world.issuer, single, [single.root], 9)
    mirror.revoke_leaves(world.issuer, seven, [seven.leaves[6], seven.leaves[2], seven.leaves[4]], 11)
    mirror.anchor(world.issuer, digest("acc last"), 3, MANIFEST_URI_100)

    assert world.reader.accumulators() == (mirror.anchor_acc, mirror.revocation_acc)
    assert world.reader.counts() == (mirror.anchors, mirror.revocations) == (5, 6)


# ------------------------------------------------------------------------------ Ownable2Step


def test_two_step_ownership_transfer(world: World) -> None:
    old, new = world.owner, world.stranger
    receipt = old.transfer_ownership(address_of(new))
    assert world.only_event(receipt, "OwnershipTransferStarted") == {
        "previousOwner": address_of(old),
        "newOwner": address_of(new),
    }
    assert world.reader.pending_owner() == address_of(new)
    assert world.reader.owner() == address_of(old)
    old.register_issuer(world.deployed.as_account(4).sender.signer.address, "still owner", "")

    for intruder in (world.issuer, old):
        with reverts("OwnableUnauthorizedAccount", account=address_of(intruder)):
            intruder.accept_ownership()

    receipt = new.accept_ownership()
    assert world.only_event(receipt, "OwnershipTransferred") == {
        "previousOwner": address_of(old),
        "newOwner": address_of(new),
    }
    assert (world.reader.owner(), world.reader.pending_owner()) == (address_of(new), ZERO_ADDRESS)

    newcomer = world.deployed.as_account(5).sender.signer.address
    with reverts("OwnableUnauthorizedAccount", account=address_of(old)):
        old.register_issuer(newcomer, "old owner", "")
    receipt = new.register_issuer(newcomer, "new owner", "")
    assert world.only_event(receipt, "IssuerRegistered")["issuer"] == newcomer


def test_transfer_ownership_owner_only_and_cancellable(world: World) -> None:
    with reverts("OwnableUnauthorizedAccount", account=address_of(world.stranger)):
        world.stranger.transfer_ownership(address_of(world.stranger))
    world.owner.transfer_ownership(address_of(world.stranger))
    world.owner.transfer_ownership(ZERO_ADDRESS)  # cancels the pending transfer
    assert world.reader.pending_owner() == ZERO_ADDRESS
    with reverts("OwnableUnauthorizedAccount", account=address_of(world.stranger)):
        world.stranger.accept_ownership()
    assert world.reader.owner() == address_of(world.owner)


def test_renounce_ownership(world: World) -> None:
    with reverts("OwnableUnauthorizedAccount", account=address_of(world.issuer)):
        world.issuer.transact("renounceOwnership")
    receipt = world.owner.transact("renounceOwnership")
    assert world.only_event(receipt, "OwnershipTransferred") == {
        "previousOwner": address_of(world.owner),
        "newOwner": ZERO_ADDRESS,
    }
    assert world.reader.owner() == ZERO_ADDRESS
    with reverts("OwnableUnauthorizedAccount", account=address_of(world.owner)):
        world.owner.set_issuer_active(address_of(world.issuer), False)
    world.issuer.anchor(digest("ownerless"), 1)  # issuers keep working without an owner
