"""Typed bindings for FinVaultRegistry: read-only views, and the transactions issuers and the owner send.

:class:`RegistryReader` is all a verification node or an auditor needs; it never signs anything.
:class:`RegistryWriter` adds transactions through a :class:`~chain.tx.TxSender`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chain.contract import Artifact, load_artifact
from chain.core.encoding import hex0x, to_bytes32
from chain.core.hashing import keccak256
from chain.core.revocation import RevocationReason as RevocationReason  # the transactions' codes
from chain.errors import ChainMismatch
from chain.rpc import RpcClient
from chain.tx import TxReceipt, TxSender

#: A block number, a tag ("latest"), or an EIP-1898 object (``{"blockHash": ..., "requireCanonical": true}``).
BlockId = int | str | dict[str, Any]


@dataclass(frozen=True)
class AnchorInfo:
    """``anchorOf(root)``: issuer, block, block time (Unix seconds), leaf count; zeros if never anchored."""

    issuer: str
    block_number: int
    timestamp: int
    count: int

    @property
    def exists(self) -> bool:
        """Whether the root was anchored (an unknown root reads as block 0)."""
        return self.block_number != 0


@dataclass(frozen=True)
class IssuerInfo:
    """``issuerOf(address)``: whether registered and active, the registration block, name and URI."""

    registered: bool
    active: bool
    registered_block: int
    name: str
    uri: str


@dataclass(frozen=True)
class KeyInfo:
    """``keyOf(keyId)``: owning issuer, algorithm code, block added, block revoked (0 while not revoked)."""

    issuer: str
    algorithm: int
    added_block: int
    revoked_block: int

    @property
    def exists(self) -> bool:
        """Whether the key was ever added (an unknown key reads as block 0)."""
        return self.added_block != 0


@dataclass(frozen=True)
class RevocationInfo:
    """``revocationOf(id)`` for a root or a :func:`leaf_revocation_id`: reason, block and block time."""

    revoked: bool
    reason: int
    block_number: int
    timestamp: int


def leaf_revocation_id(root: bytes, leaf: bytes) -> bytes:
    """Mirrors the contract's ``leafRevocationId``: keccak256(abi.encode(root, leaf))."""
    return keccak256(to_bytes32(root) + to_bytes32(leaf))


def _block_param(block: BlockId) -> str | dict[str, Any]:
    return hex(block) if isinstance(block, int) else block


class RegistryReader:
    """Read-only access to a deployed registry through ``eth_call``."""

    def __init__(self, rpc: RpcClient, address: str, artifact: Artifact | None = None) -> None:
        self.rpc = rpc
        self.address = address.lower()
        self.artifact = artifact or load_artifact()
        self.abi = self.artifact.abi

    def call(self, name: str, *args: Any, block: BlockId = "latest") -> tuple[Any, ...]:
        """View ``name`` at ``block``, decoded; an answer that does not decode is :class:`ChainMismatch`."""
        data = self.abi.encode_call(name, *args)
        result = self.rpc.call("eth_call", [{"to": self.address, "data": hex0x(data)}, _block_param(block)])
        return self._decoded(name, result)

    def views(self, names: Sequence[str], block: BlockId = "latest") -> list[tuple[Any, ...]]:
        """Argument-less views ``names``, all read at one block in one JSON-RPC batch."""
        param = _block_param(self._pinned(block))
        calls = [
            ("eth_call", [{"to": self.address, "data": hex0x(self.abi.encode_call(n))}, param]) for n in names
        ]
        return [
            self._decoded(name, result) for name, result in zip(names, self.rpc.batch(calls), strict=True)
        ]

    def _decoded(self, name: str, result: Any) -> tuple[Any, ...]:
        try:
            return self.abi.decode_result(name, bytes.fromhex(str(result)[2:]))
        except ValueError:
            raise ChainMismatch(
                f"{name}() at {self.address} returned no valid answer: not a FinVaultRegistry?"
            ) from None

    def check_deployment(self) -> None:
        """Refuses an address whose runtime code is not this artifact's FinVaultRegistry."""
        code = self.rpc.get_code(self.address)
        if not code:
            raise ChainMismatch(f"no contract at registry address {self.address}")
        if keccak256(code) != self.artifact.deployed_code_hash:
            raise ChainMismatch(
                f"the code at {self.address} is not the FinVaultRegistry this build expects "
                f"(code hash {hex0x(keccak256(code))})"
            )

    def anchor_of(self, root: bytes, block: BlockId = "latest") -> AnchorInfo:
        """The anchor of ``root``, issuer lowercase (zeros if never anchored)."""
        issuer, number, timestamp, count = self.call("anchorOf", to_bytes32(root), block=block)
        return AnchorInfo(issuer.lower(), number, timestamp, count)

    def revocation_of(self, revocation_id: bytes, block: BlockId = "latest") -> RevocationInfo:
        """The revocation under ``revocation_id``: a root, or :func:`leaf_revocation_id` of a leaf."""
        return RevocationInfo(*self.call("revocationOf", to_bytes32(revocation_id), block=block))

    def issuer_of(self, issuer: str, block: BlockId = "latest") -> IssuerInfo:
        """The registry's record of ``issuer`` (``registered`` is False when it has none)."""
        return IssuerInfo(*self.call("issuerOf", issuer, block=block))

    def key_of(self, key_id: bytes, block: BlockId = "latest") -> KeyInfo:
        """The registry's record of ``key_id``; the public key itself is only in its ``KeyAdded`` event."""
        issuer, algorithm, added, revoked = self.call("keyOf", to_bytes32(key_id), block=block)
        return KeyInfo(issuer.lower(), algorithm, added, revoked)

    def _pinned(self, block: BlockId) -> BlockId:
        """A concrete block number, so that several calls read one consistent state."""
        return self.rpc.block_number() if block == "latest" else block

    def accumulators(self, block: BlockId = "latest") -> tuple[bytes, bytes]:
        """``(accumulator, revocationAccumulator)``, both read at the same block."""
        (anchors,), (revocations,) = self.views(("accumulator", "revocationAccumulator"), block)
        return anchors, revocations

    def counts(self, block: BlockId = "latest") -> tuple[int, int]:
        """``(anchorCount, revocationCount)``, both read at the same block."""
        (anchors,), (revocations,) = self.views(("anchorCount", "revocationCount"), block)
        return anchors, revocations

    def totals(self, block: BlockId = "latest") -> tuple[bytes, bytes, int, int]:
        """``(accumulator, revocationAccumulator, anchorCount, revocationCount)`` at one block, in
        one round trip: what a mirror of the registry must agree with."""
        names = ("accumulator", "revocationAccumulator", "anchorCount", "revocationCount")
        (anchor_acc,), (revocation_acc,), (anchors,), (revocations,) = self.views(names, block)
        return anchor_acc, revocation_acc, anchors, revocations

    def deployment_block(self) -> int:
        """The block the registry was deployed in: where a mirror starts following events."""
        return int(self.call("deploymentBlock")[0])

    def is_valid(self, leaf: bytes, root: bytes, proof: Sequence[bytes], block: BlockId = "latest") -> bool:
        """The contract's ``isValid``: anchored by an active issuer, nothing revoked, proof good.

        It knows nothing of signatures, keys or finality: :func:`chain.core.verify.verify` decides those.
        """
        proof32 = [to_bytes32(p) for p in proof]
        return bool(self.call("isValid", to_bytes32(leaf), to_bytes32(root), proof32, block=block)[0])

    def owner(self) -> str:
        """The registry owner's address, lowercase."""
        return str(self.call("owner")[0]).lower()

    def pending_owner(self) -> str:
        """The address an ownership transfer waits on to accept (the zero address if none)."""
        return str(self.call("pendingOwner")[0]).lower()


class RegistryWriter(RegistryReader):
    """Sends the registry's transactions from one account."""

    def __init__(self, sender: TxSender, address: str, artifact: Artifact | None = None) -> None:
        super().__init__(sender.rpc, address, artifact)
        self.sender = sender

    def transact(self, name: str, *args: Any) -> TxReceipt:
        """Sends ``name(*args)`` and waits for confirmations; a revert raises with its decoded error."""
        return self.sender.transact(self.address, self.abi.encode_call(name, *args))

    def register_issuer(self, issuer: str, name: str, uri: str) -> TxReceipt:
        """Registers ``issuer``, active from the start (owner only)."""
        return self.transact("registerIssuer", issuer, name, uri)

    def set_issuer_active(self, issuer: str, active: bool) -> TxReceipt:
        """Activates or suspends ``issuer`` (owner only); a suspended issuer can still revoke."""
        return self.transact("setIssuerActive", issuer, active)

    def add_key(self, key_id: bytes, algorithm: int, public_key_der: bytes) -> TxReceipt:
        """Registers a signing key for this account (an active issuer); ``key_id`` is keccak256 of the DER."""
        return self.transact("addKey", to_bytes32(key_id), algorithm, public_key_der)

    def revoke_key(self, key_id: bytes) -> TxReceipt:
        """Revokes one of this account's keys from this block on."""
        return self.transact("revokeKey", to_bytes32(key_id))

    def anchor(self, root: bytes, count: int, manifest_uri: str = "") -> TxReceipt:
        """Anchors a batch root over ``count`` certificates (active issuers only; a root only once)."""
        return self.transact("anchor", to_bytes32(root), count, manifest_uri)

    def revoke_root(self, root: bytes, reason: int) -> TxReceipt:
        """Revokes a whole batch this account anchored; ``reason`` is a :class:`RevocationReason`."""
        return self.transact("revokeRoot", to_bytes32(root), reason)

    def revoke_leaf(self, leaf: bytes, root: bytes, proof: Sequence[bytes], reason: int) -> TxReceipt:
        """Revokes one certificate, with the proof that ``leaf`` is in ``root`` (anchored by this account)."""
        return self.transact(
            "revokeLeaf", to_bytes32(leaf), to_bytes32(root), [to_bytes32(p) for p in proof], reason
        )

    def revoke_leaves(
        self,
        leaves: Sequence[bytes],
        root: bytes,
        proof: Sequence[bytes],
        proof_flags: Sequence[bool],
        reason: int,
    ) -> TxReceipt:
        """Revokes several certificates of one batch in one transaction, with an OpenZeppelin multiproof.

        ``leaves``, ``proof`` and ``proof_flags`` are those of :class:`~chain.core.merkle.MultiProof`.
        """
        return self.transact(
            "revokeLeaves",
            [to_bytes32(leaf) for leaf in leaves],
            to_bytes32(root),
            [to_bytes32(p) for p in proof],
            list(proof_flags),
            reason,
        )

    def transfer_ownership(self, new_owner: str) -> TxReceipt:
        """Offers ownership to ``new_owner`` (owner only); it passes when they :meth:`accept_ownership`."""
        return self.transact("transferOwnership", new_owner)

    def accept_ownership(self) -> TxReceipt:
        """Takes the ownership offered to this account."""
        return self.transact("acceptOwnership")


def deploy_registry(
    sender: TxSender, owner: str | None = None, artifact: Artifact | None = None
) -> TxReceipt:
    """Deploys FinVaultRegistry owned by ``owner`` (the sender by default)."""
    artifact = artifact or load_artifact()
    init_code = artifact.bytecode + artifact.abi.encode_constructor(owner or sender.signer.address)
    receipt = sender.transact(None, init_code)
    if receipt.contract_address is None:
        raise ChainMismatch(f"deployment {receipt.tx_hash} produced no contract address")
    return receipt
