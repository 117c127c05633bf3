"""Hand decoding of FinVaultRegistry logs straight from ``eth_getLogs`` JSON.

The hot path of the indexer: no per-log web3.py or eth_abi calls, only fixed-offset slicing of
topics and data (every event has static fields plus at most two dynamic strings/bytes). Topic
hashes come from the committed ABI, and a test checks this decoder against eth_abi on every event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from chain.contract import ContractAbi, load_artifact

_ABI: ContractAbi = load_artifact().abi
ZERO32 = bytes(32)


def _topic(name: str) -> str:
    return "0x" + _ABI.events[name].topic0.hex()


T_ISSUER_REGISTERED = _topic("IssuerRegistered")
T_ISSUER_STATUS = _topic("IssuerStatusChanged")
T_KEY_ADDED = _topic("KeyAdded")
T_KEY_REVOKED = _topic("KeyRevoked")
T_ANCHORED = _topic("Anchored")
T_ROOT_REVOKED = _topic("RootRevoked")
T_LEAF_REVOKED = _topic("LeafRevoked")
#: Emitted by the registry but not part of the mirror.
IGNORED_TOPICS = frozenset({_topic("OwnershipTransferred"), _topic("OwnershipTransferStarted")})
MIRRORED_TOPICS = (
    T_ISSUER_REGISTERED,
    T_ISSUER_STATUS,
    T_KEY_ADDED,
    T_KEY_REVOKED,
    T_ANCHORED,
    T_ROOT_REVOKED,
    T_LEAF_REVOKED,
)


class DecodeError(ValueError):
    pass


def _word_bytes(data: bytes, index: int) -> bytes:
    if 32 * index + 32 > len(data):
        raise DecodeError(f"data has {len(data)} bytes, word {index} is missing")
    return data[32 * index : 32 * index + 32]


def _word(data: bytes, index: int) -> int:
    return int.from_bytes(_word_bytes(data, index), "big")


def _dynamic(data: bytes, head_index: int) -> bytes:
    offset = _word(data, head_index)
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
    #: Block and transaction hashes repeat across logs: decode each hex string once.
    hashes: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def count(self) -> int:
        return (
            len(self.issuers)
            + len(self.issuer_status)
            + len(self.keys)
            + len(self.key_revocations)
            + len(self.anchors)
            + len(self.revocations)
        )


def decode_logs(logs: Iterable[Mapping[str, Any]], registry: str) -> DecodedBatch:
    """Decodes raw logs (in chain order) of ``registry`` into mirror rows."""
    out = DecodedBatch()
    registry = registry.lower()
    for log in logs:
        try:
            _decode_one(log, registry, out)
        except DecodeError:
            raise
        except (KeyError, IndexError, ValueError, TypeError, AttributeError, UnicodeDecodeError) as exc:
            where = f"{log.get('transactionHash')}#{log.get('logIndex')}" if isinstance(log, Mapping) else "?"
            raise DecodeError(f"malformed log {where}: {type(exc).__name__}: {exc}") from None
    return out


def _decode_one(log: Mapping[str, Any], registry: str, out: DecodedBatch) -> None:
    if str(log["address"]).lower() != registry:
        raise DecodeError(f"log from {log['address']}, not the registry")
    if log.get("removed"):
        raise DecodeError("a removed log reached the decoder")
    topics = log["topics"]
    topic0 = topics[0] if topics else ""
    if topic0 in IGNORED_TOPICS:
        return
    number = int(log["blockNumber"], 16)
    block_hash = out.hashes.get(log["blockHash"]) or out.hashes.setdefault(
        log["blockHash"], _b32(log["blockHash"])
    )
    known = out.blocks.setdefault(number, block_hash)
    if known != block_hash:
        raise DecodeError(f"two different hashes for block {number} in one response")
    out.events_per_block[number] = out.events_per_block.get(number, 0) + 1
    tx = log["transactionHash"]
    ref = {
        "tx_hash": out.hashes.get(tx) or out.hashes.setdefault(tx, _b32(tx)),
        "log_index": int(log["logIndex"], 16),
        "block_number": number,
        "block_hash": block_hash,
    }
    data = bytes.fromhex(log["data"][2:])
    if topic0 == T_ANCHORED:
        out.anchors.append(
            {
                **ref,
                "root": _b32(topics[1]),
                "issuer": _address(topics[2]),
                "count": _word(data, 0),
                "timestamp": _word(data, 1),
                "accumulator": _word_bytes(data, 2),
                "manifest_uri": _dynamic(data, 3).decode(),
            }
        )
    elif topic0 in (T_LEAF_REVOKED, T_ROOT_REVOKED):
        leaf_revoked = topic0 == T_LEAF_REVOKED
        out.revocations.append(
            {
                **ref,
                "leaf": _b32(topics[1]) if leaf_revoked else ZERO32,
                "root": _b32(topics[2] if leaf_revoked else topics[1]),
                "issuer": _address(topics[3] if leaf_revoked else topics[2]),
                "reason": _word(data, 0),
                "timestamp": _word(data, 1),
                "accumulator": _word_bytes(data, 2),
            }
        )
    elif topic0 == T_KEY_ADDED:
        out.keys.append(
            {
                **ref,
                "issuer": _address(topics[1]),
                "key_id": _b32(topics[2]),
                "algorithm": _word(data, 0),
                "public_key": _dynamic(data, 1),
            }
        )
    elif topic0 == T_KEY_REVOKED:
        out.key_revocations.append({**ref, "issuer": _address(topics[1]), "key_id": _b32(topics[2])})
    elif topic0 == T_ISSUER_REGISTERED:
        out.issuers.append(
            {
                **ref,
                "address": _address(topics[1]),
                "name": _dynamic(data, 0).decode(),
                "uri": _dynamic(data, 1).decode(),
            }
        )
    elif topic0 == T_ISSUER_STATUS:
        out.issuer_status.append({**ref, "address": _address(topics[1]), "active": _word(data, 0) == 1})
    else:
        raise DecodeError(f"unknown event topic {topic0}")
