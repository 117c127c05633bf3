"""ChainFacts read straight from a JSON-RPC endpoint: what ``finvault verify --rpc`` trusts.

Current state comes from the registry's views (one ``eth_call`` each); the evidence a verdict
carries (tx hash, block hash, log index) and the full public keys come from the event logs, found
with topic filters at the block the views name. Nothing here depends on a local mirror.
"""

from __future__ import annotations

from typing import Any

from chain.core.encoding import hex0x
from chain.core.signing import KeyAlgorithm
from chain.core.verify import AnchorFact, ChainHead, EventRef, IssuerFact, KeyFact, RevocationFact
from chain.errors import ChainMismatch, RpcError
from chain.registry import RegistryReader, leaf_revocation_id
from chain.rpc import hex_quantity


class RpcFacts:
    """Implements :class:`chain.core.verify.ChainFacts` over one registry through an RPC endpoint."""

    def __init__(self, reader: RegistryReader, chain_id: int) -> None:
        self.reader = reader
        self._chain_id = chain_id

    @property
    def chain_id(self) -> int:
        """The configured chain id (the caller checks that the endpoint serves it)."""
        return self._chain_id

    @property
    def registry(self) -> str:
        """The registry's address, lowercase."""
        return self.reader.address

    def _log(self, event: str, block: int, *topics: bytes) -> tuple[EventRef, dict[str, Any]]:
        topic0 = self.reader.abi.events[event].topic0
        logs = self.reader.rpc.call(
            "eth_getLogs",
            [
                {
                    "address": self.reader.address,
                    "fromBlock": hex(block),
                    "toBlock": hex(block),
                    "topics": [hex0x(topic0), *(hex0x(t) for t in topics)],
                }
            ],
        )
        if not logs:
            raise ChainMismatch(f"the registry reports a {event} in block {block} but no such log exists")
        log = logs[-1]
        decoded = self.reader.abi.decode_event(log)
        assert decoded is not None  # the topic filter guarantees the event type
        ref = EventRef(
            log["transactionHash"], int(log["blockNumber"], 16), log["blockHash"], int(log["logIndex"], 16)
        )
        return ref, decoded[1]

    def anchor(self, root: bytes) -> AnchorFact | None:
        """``anchorOf(root)``, with its ``Anchored`` log as evidence; None if never anchored."""
        info = self.reader.anchor_of(root)
        if not info.exists:
            return None
        ref, _ = self._log("Anchored", info.block_number, root)
        return AnchorFact(root, info.issuer, info.count, info.timestamp, ref)

    def revocation(self, root: bytes, leaf: bytes | None) -> RevocationFact | None:
        """The revocation of ``leaf`` in ``root`` (of the root if ``leaf`` is None), with its log; or None."""
        info = self.reader.revocation_of(root if leaf is None else leaf_revocation_id(root, leaf))
        if not info.revoked:
            return None
        if leaf is None:
            ref, _ = self._log("RootRevoked", info.block_number, root)
        else:
            ref, _ = self._log("LeafRevoked", info.block_number, leaf, root)
        return RevocationFact(info.reason, info.timestamp, ref)

    def issuer(self, address: str) -> IssuerFact | None:
        """The issuer's current record from ``issuerOf``; None if it was never registered."""
        info = self.reader.issuer_of(address)
        if not info.registered:
            return None
        return IssuerFact(address.lower(), info.name, info.uri, info.active)

    def key(self, key_id: bytes) -> KeyFact | None:
        """``keyOf(key_id)``, with the full public key from its ``KeyAdded`` log; None if unknown."""
        info = self.reader.key_of(key_id)
        if not info.exists:
            return None
        _, event = self._log("KeyAdded", info.added_block, bytes(12) + bytes.fromhex(info.issuer[2:]), key_id)
        return KeyFact(
            key_id,
            info.issuer,
            KeyAlgorithm(info.algorithm),
            bytes(event["publicKey"]),
            info.added_block,
            info.revoked_block or None,
        )

    def head(self) -> ChainHead:
        """The latest block, and the ``finalized`` one where the endpoint knows the tag."""
        number = self.reader.rpc.block_number()
        try:
            finalized = self.reader.rpc.call("eth_getBlockByNumber", ["finalized", False])
        except RpcError:  # endpoints without the tag: finality falls back to depth alone
            finalized = None
        if not finalized:
            return ChainHead(number, None)
        if not isinstance(finalized, dict):
            raise RpcError(f"eth_getBlockByNumber(finalized): not a block: {finalized!r:.60}")
        return ChainHead(number, hex_quantity("eth_getBlockByNumber", finalized.get("number")))
