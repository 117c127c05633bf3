"""Hand decoding of FinVaultRegistry logs straight from ``eth_getLogs`` JSON.

The hot path of the indexer: no per-log web3.py or eth_abi calls, only fixed-offset slicing of
topics and data (every event has static fields plus at most two dynamic strings/bytes). Topic
hashes come from the committed ABI, and a test checks this decoder against eth_abi on every event.

Per-log Python work bounds the indexer's rate, so the loop keeps it small: LeafRevoked (the bulk of
a registry's events) is decoded inline and the other events by a builder picked by topic; the block
and transaction of the previous log are reused (logs arrive in chain order, hundreds to a
transaction), and topics that repeat (roots, issuers) become bytes once per batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from indexer.errors import DecodeError

ZERO32 = bytes(32)

# topic0 of each registry event: keccak256 of its signature, written out so that importing the
# decoder reads no file. tests/unit/test_indexer_decode.py checks each against the committed ABI.
#: IssuerRegistered(address,string,string)
T_ISSUER_REGISTERED = "0x2b062b4e0857383c98aacd16bcd2714030d81ad54eb91dd18856344424386651"
#: IssuerStatusChanged(address,bool)
T_ISSUER_STATUS = "0x97dbc7d4478cea4ca903e42088ac2881b4d2442bcd802fd6c9303959892df259"
#: KeyAdded(address,bytes32,uint8,bytes)
T_KEY_ADDED = "0x4cacc030c48fab59dc646e287e6f4a8c54b80a0fb32235ff16b58841ef8bb90f"
#: KeyRevoked(address,bytes32)
T_KEY_REVOKED = "0xa97703d8de1d538ac2ccf4453e57ec2aa4ab8b29c9a57f2a6e70a9d0e268f802"
#: Anchored(bytes32,address,uint256,uint256,bytes32,string)
T_ANCHORED = "0xa580ec8895618d5d614081a931ba36fe4776f35a973ac2554d393b3ad7b448b4"
#: RootRevoked(bytes32,address,uint8,uint256,bytes32)
T_ROOT_REVOKED = "0x60d2a376d86291cd3c76e71a2be1b63d9689b136a4bf933ebeefda2a319a11e9"
#: LeafRevoked(bytes32,bytes32,address,uint8,uint256,bytes32)
T_LEAF_REVOKED = "0x807023ee26e4a5157a037ecfb078cd9cf5cff69427e3382a369af515b8a5fbfb"
#: OwnershipTransferred(address,address)
T_OWNERSHIP_TRANSFERRED = "0x8be0079c531659141344cd1fd0a4f28419497f9722a3daafe3b4186f6b6457e0"
#: OwnershipTransferStarted(address,address)
T_OWNERSHIP_TRANSFER_STARTED = "0x38d16b8cac22d99fc7c124b9cd0de2d3fa1faef420bfe791d8c362d765e22700"
#: Emitted by the registry but not part of the mirror.
IGNORED_TOPICS = frozenset({T_OWNERSHIP_TRANSFERRED, T_OWNERSHIP_TRANSFER_STARTED})
MIRRORED_TOPICS = (
    T_ISSUER_REGISTERED,
    T_ISSUER_STATUS,
    T_KEY_ADDED,
    T_KEY_REVOKED,
    T_ANCHORED,
    T_ROOT_REVOKED,
    T_LEAF_REVOKED,
)


def _words(data: bytes, count: int) -> bytes:
    """``data``, checked to hold at least ``count`` head words."""
    if len(data) < 32 * count:
        raise DecodeError(f"data has {len(data)} bytes, word {len(data) // 32} is missing")
    return data


def _uint(data: bytes, index: int) -> int:
    return int.from_bytes(data[32 * index : 32 * index + 32], "big")


def _dynamic(data: bytes, head_index: int) -> bytes:
    offset = _uint(data, head_index)
    if offset % 32 or offset + 32 > len(data):
        raise DecodeError("dynamic field offset points outside the data")
    length = int.from_bytes(data[offset : offset + 32], "big")
    if offset + 32 + length > len(data):
        raise DecodeError("dynamic field runs past the end of the data")
    return data[offset + 32 : offset + 32 + length]


def _b32(topic: str) -> bytes:
    raw = bytes.fromhex(topic[2:])
    if len(raw) != 32 or topic[:2] != "0x":
        raise DecodeError(f"{topic!r} is not a 32-byte hex value")
    return raw


def _address(topic: str) -> bytes:
    word = _b32(topic)
    if any(word[:12]):
        raise DecodeError(f"{topic} is not an address topic")
    return word[12:]


class _Decoded(dict[str, bytes]):
    """Hex topic -> bytes, decoded on first sight: for values that repeat within a batch."""

    def __init__(self, decode: Callable[[str], bytes]) -> None:
        super().__init__()
        self._decode = decode

    def __missing__(self, topic: str) -> bytes:
        value = self[topic] = self._decode(topic)
        return value


@dataclass
class DecodedBatch:
    """Rows per table, plus the accumulator-bearing events in chain order."""

    issuers: list[dict[str, Any]] = field(default_factory=list)
    issuer_status: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    key_revocations: list[dict[str, Any]] = field(default_factory=list)
    anchors: list[dict[str, Any]] = field(default_factory=list)
    revocations: list[dict[str, Any]] = field(default_factory=list)
    blocks: dict[int, bytes] = field(default_factory=dict)  # number -> hash, for blocks with events
    events_per_block: dict[int, int] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """The rows decoded across every table: one per mirrored event."""
        return (
            len(self.issuers)
            + len(self.issuer_status)
            + len(self.keys)
            + len(self.key_revocations)
            + len(self.anchors)
            + len(self.revocations)
        )


class _Topics:
    """Per-batch caches of topics that repeat: roots and hashes, and issuer addresses."""

    def __init__(self) -> None:
        self.b32 = _Decoded(_b32)
        self.address = _Decoded(_address)


#: One row builder per mirrored event: (out, chain coordinates, topics, data bytes, caches).
_Builder = Callable[[DecodedBatch, dict[str, Any], list[str], bytes, _Topics], None]


def _root_revoked(out: DecodedBatch, row: dict[str, Any], topics: list[str], data: bytes, t: _Topics) -> None:
    _words(data, 3)
    row["leaf"] = ZERO32
    row["root"] = t.b32[topics[1]]
    row["issuer"] = t.address[topics[2]]
    row["reason"] = int.from_bytes(data[:32], "big")
    row["timestamp"] = int.from_bytes(data[32:64], "big")
    row["accumulator"] = data[64:96]
    out.revocations.append(row)


def _anchored(out: DecodedBatch, row: dict[str, Any], topics: list[str], data: bytes, t: _Topics) -> None:
    _words(data, 4)
    row["root"] = _b32(topics[1])
    row["issuer"] = t.address[topics[2]]
    row["count"] = int.from_bytes(data[:32], "big")
    row["timestamp"] = int.from_bytes(data[32:64], "big")
    row["accumulator"] = data[64:96]
    row["manifest_uri"] = _dynamic(data, 3).decode()
    out.anchors.append(row)


def _key_added(out: DecodedBatch, row: dict[str, Any], topics: list[str], data: bytes, t: _Topics) -> None:
    _words(data, 2)
    row["issuer"] = t.address[topics[1]]
    row["key_id"] = _b32(topics[2])
    row["algorithm"] = _uint(data, 0)
    row["public_key"] = _dynamic(data, 1)
    out.keys.append(row)


def _key_revoked(out: DecodedBatch, row: dict[str, Any], topics: list[str], data: bytes, t: _Topics) -> None:
    row["issuer"] = t.address[topics[1]]
    row["key_id"] = _b32(topics[2])
    out.key_revocations.append(row)


def _issuer_registered(
    out: DecodedBatch, row: dict[str, Any], topics: list[str], data: bytes, t: _Topics
) -> None:
    _words(data, 2)
    row["address"] = t.address[topics[1]]
    row["name"] = _dynamic(data, 0).decode()
    row["uri"] = _dynamic(data, 1).decode()
    out.issuers.append(row)


def _issuer_status(
    out: DecodedBatch, row: dict[str, Any], topics: list[str], data: bytes, t: _Topics
) -> None:
    _words(data, 1)
    row["address"] = t.address[topics[1]]
    row["active"] = _uint(data, 0) == 1
    out.issuer_status.append(row)


#: LeafRevoked, the bulk of a registry's events, is decoded inline in :func:`decode_logs`.
_BUILDERS: dict[str, _Builder] = {
    T_ROOT_REVOKED: _root_revoked,
    T_ANCHORED: _anchored,
    T_KEY_ADDED: _key_added,
    T_KEY_REVOKED: _key_revoked,
    T_ISSUER_REGISTERED: _issuer_registered,
    T_ISSUER_STATUS: _issuer_status,
}
_MIRRORED = frozenset(MIRRORED_TOPICS)
_NOT_SEEN = object()


def decode_logs(logs: Iterable[Mapping[str, Any]], registry: str) -> DecodedBatch:
    """Decodes raw logs (in chain order) of ``registry`` into mirror rows."""
    out = DecodedBatch()
    registry = registry.lower()
    topics_cache = _Topics()
    roots, addresses, revocations = topics_cache.b32, topics_cache.address, out.revocations
    fromhex, from_bytes = bytes.fromhex, int.from_bytes
    blocks, per_block = out.blocks, out.events_per_block
    seen_block: tuple[Any, Any] = (_NOT_SEEN, _NOT_SEEN)  # the previous log's (number, hash) strings
    seen_tx: Any = _NOT_SEEN
    number, block_hash, tx_hash = 0, ZERO32, ZERO32
    log: Any = None
    try:
        for log in logs:
            address = log["address"]
            if address != registry and str(address).lower() != registry:
                raise DecodeError(f"log from {address}, not the registry")
            if log.get("removed"):
                raise DecodeError("a removed log reached the decoder")
            topics = log["topics"]
            topic0 = topics[0] if topics else ""
            if topic0 not in _MIRRORED:
                if topic0 in IGNORED_TOPICS:
                    continue
                raise DecodeError(f"unknown event topic {topic0}")
            block = (log["blockNumber"], log["blockHash"])
            if block != seen_block:
                number, fresh = int(block[0], 16), _b32(block[1])
                block_hash = blocks.setdefault(number, fresh)  # one bytes object per block
                if block_hash != fresh:
                    raise DecodeError(f"two different hashes for block {number} in one response")
                seen_block = block
            per_block[number] = per_block.get(number, 0) + 1
            if log["transactionHash"] != seen_tx:
                seen_tx = log["transactionHash"]
                tx_hash = _b32(seen_tx)
            data = fromhex(log["data"][2:])
            if topic0 == T_LEAF_REVOKED:
                if len(data) < 96:
                    raise DecodeError(f"data has {len(data)} bytes, LeafRevoked needs 96")
                revocations.append(
                    {
                        "tx_hash": tx_hash,
                        "log_index": int(log["logIndex"], 16),
                        "block_number": number,
                        "block_hash": block_hash,
                        "leaf": _b32(topics[1]),
                        "root": roots[topics[2]],
                        "issuer": addresses[topics[3]],
                        "reason": from_bytes(data[:32], "big"),
                        "timestamp": from_bytes(data[32:64], "big"),
                        "accumulator": data[64:96],
                    }
                )
                continue
            row = {
                "tx_hash": tx_hash,
                "log_index": int(log["logIndex"], 16),
                "block_number": number,
                "block_hash": block_hash,
            }
            _BUILDERS[topic0](out, row, topics, data, topics_cache)
    except DecodeError:
        raise
    except (KeyError, IndexError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        where = f"{log.get('transactionHash')}#{log.get('logIndex')}" if isinstance(log, Mapping) else "?"
        raise DecodeError(f"malformed log {where}: {type(exc).__name__}: {exc}") from None
    return out
