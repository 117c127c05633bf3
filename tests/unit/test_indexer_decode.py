"""indexer.decode (hand slicing) against eth_abi (``ContractAbi.decode_event``) on synthesized logs.

Logs are built with ``eth_abi.encode`` from the committed ABI, for every mirrored event, with
hypothesis choosing the field values. The reference row comes from the same column mapping the
integration tests use to read the chain back, so both decoders must agree column by column.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chain.contract import load_artifact
from indexer import decode
from indexer.decode import DecodedBatch, decode_logs
from indexer.errors import DecodeError
from tests.integration.indexer_fixtures import MIRRORED_EVENTS, reference_row

ABI = load_artifact().abi
REGISTRY = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
BLOCK_HASH = "0x" + "ab" * 32
TX_HASH = "0x" + "cd" * 32
EVENTS = sorted(MIRRORED_EVENTS)

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "address": st.binary(min_size=20, max_size=20),
    "bytes32": st.binary(min_size=32, max_size=32),
    "uint256": st.integers(min_value=0, max_value=2**256 - 1),
    "uint8": st.integers(min_value=0, max_value=255),
    "bool": st.booleans(),
    "string": st.text(max_size=80),
    "bytes": st.binary(max_size=600),
}


def synthesize(event: str, values: dict[str, Any], *, block: int = 7, log_index: int = 3) -> dict[str, Any]:
    """A raw ``eth_getLogs`` entry of the registry, encoded by eth_abi."""
    spec = ABI.events[event]
    topics = ["0x" + spec.topic0.hex()]
    topics += ["0x" + abi_encode([kind], [values[name]]).hex() for name, kind in spec.indexed]
    data = abi_encode([kind for _, kind in spec.data], [values[name] for name, _ in spec.data])
    return {
        "address": REGISTRY,
        "topics": topics,
        "data": "0x" + data.hex(),
        "blockNumber": hex(block),
        "blockHash": BLOCK_HASH,
        "transactionHash": TX_HASH,
        "logIndex": hex(log_index),
        "removed": False,
    }


def rows_by_table(batch: DecodedBatch) -> dict[str, list[dict[str, Any]]]:
    return {
        "issuers": batch.issuers,
        "issuer_status": batch.issuer_status,
        "issuer_keys": batch.keys,
        "key_revocations": batch.key_revocations,
        "anchors": batch.anchors,
        "revocations": batch.revocations,
    }


def values_for(event: str) -> st.SearchStrategy[dict[str, Any]]:
    spec = ABI.events[event]
    return st.fixed_dictionaries({name: STRATEGIES[kind] for name, kind in (*spec.indexed, *spec.data)})


EDGE_VALUES: dict[str, dict[str, Any]] = {
    "Anchored": {
        "root": b"\xff" * 32,
        "issuer": b"\x00" * 19 + b"\x01",
        "count": 2**256 - 1,
        "timestamp": 0,
        "accumulator": bytes(32),
        "manifestUri": "",
    },
    "IssuerRegistered": {"issuer": b"\xee" * 20, "name": "Université Ångström ✓", "uri": "x" * 33},
    "KeyAdded": {"issuer": b"\x01" * 20, "keyId": b"\x02" * 32, "algorithm": 255, "publicKey": b""},
}


@pytest.mark.parametrize("event", EVENTS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_hand_decoding_matches_eth_abi(event: str, data: st.DataObject) -> None:
    values = data.draw(values_for(event))
    log = synthesize(event, values)
    expected = reference_row(ABI, log)
    assert expected is not None
    table, row = expected
    batch = decode_logs([log], REGISTRY.upper().replace("0X", "0x"))  # address case does not matter
    decoded = rows_by_table(batch)
    assert decoded[table] == [row]
    assert batch.count == 1
    assert batch.blocks == {7: bytes.fromhex(BLOCK_HASH[2:])}
    assert batch.events_per_block == {7: 1}


@pytest.mark.parametrize("event", sorted(EDGE_VALUES))
def test_edge_values(event: str) -> None:
    log = synthesize(event, EDGE_VALUES[event])
    expected = reference_row(ABI, log)
    assert expected is not None
    assert rows_by_table(decode_logs([log], REGISTRY))[expected[0]] == [expected[1]]


@settings(max_examples=30, deadline=None)
@given(events=st.lists(st.sampled_from(EVENTS), min_size=1, max_size=30), data=st.data())
@example(events=["LeafRevoked", "RootRevoked", "Anchored", "LeafRevoked"], data=None)
def test_a_mixed_batch_keeps_chain_order_per_table(events: list[str], data: st.DataObject | None) -> None:
    logs = []
    for index, event in enumerate(events):
        values = data.draw(values_for(event)) if data else _plain_values(event, index)
        logs.append(synthesize(event, values, block=100 + index // 4, log_index=index))
    expected: dict[str, list[dict[str, Any]]] = {table: [] for table in rows_by_table(DecodedBatch())}
    for log in logs:
        reference = reference_row(ABI, log)
        assert reference is not None
        expected[reference[0]].append(reference[1])
    batch = decode_logs(logs, REGISTRY)
    assert rows_by_table(batch) == expected
    assert sum(batch.events_per_block.values()) == len(events)


def _plain_values(event: str, index: int) -> dict[str, Any]:
    plain = {"address": bytes([index + 1]) * 20, "bytes32": bytes([index + 1]) * 32, "string": f"s{index}"}
    spec = ABI.events[event]
    return {
        name: plain.get(kind, b"k" if kind == "bytes" else index)
        for name, kind in (*spec.indexed, *spec.data)
    }


def test_the_written_out_topics_are_the_committed_abis() -> None:
    written = {name: value for name, value in vars(decode).items() if name.startswith("T_")}
    from_abi = {"0x" + event.topic0.hex() for event in ABI.events.values()}
    assert set(written.values()) == from_abi
    assert set(decode.MIRRORED_TOPICS) | decode.IGNORED_TOPICS == from_abi


def test_events_the_mirror_does_not_keep_are_skipped() -> None:
    transfer = synthesize("OwnershipTransferred", {"previousOwner": bytes(20), "newOwner": b"\x01" * 20})
    anchored = synthesize("Anchored", EDGE_VALUES["Anchored"], log_index=4)
    batch = decode_logs([transfer, anchored], REGISTRY)
    assert batch.count == 1
    assert batch.events_per_block == {7: 1}


# -- malformed logs ------------------------------------------------------------------------------------


def anchored_log() -> dict[str, Any]:
    return synthesize("Anchored", {**EDGE_VALUES["Anchored"], "count": 5, "manifestUri": "ipfs://m"})


def leaf_revoked_log() -> dict[str, Any]:
    return synthesize(
        "LeafRevoked",
        {
            "leaf": b"\x01" * 32,
            "root": b"\x02" * 32,
            "issuer": b"\x03" * 20,
            "reason": 1,
            "timestamp": 9,
            "accumulator": b"\x04" * 32,
        },
    )


def with_data(log: dict[str, Any], data: bytes) -> dict[str, Any]:
    return {**log, "data": "0x" + data.hex()}


def _anchored_data() -> bytes:
    return bytes.fromhex(anchored_log()["data"][2:])


def _huge_string_length() -> bytes:
    data = bytearray(_anchored_data())
    data[128:160] = (10**6).to_bytes(32, "big")  # manifestUri's length word
    return bytes(data)


def _invalid_utf8() -> dict[str, Any]:
    values = {"issuer": b"\x01" * 20, "name": "ok", "uri": "ok"}
    log = synthesize("IssuerRegistered", values)
    return {**log, "data": log["data"].replace("6f6b", "ff6b", 1)}


def _padded_address_topic() -> dict[str, Any]:
    log = anchored_log()
    return {**log, "topics": [*log["topics"][:2], "0x" + "01" * 12 + log["topics"][2][26:]]}


def _misaligned_offset() -> bytes:
    data = bytearray(_anchored_data())
    data[96:128] = (129).to_bytes(32, "big")  # manifestUri's offset, not on a word boundary
    return bytes(data)


MALFORMED = {
    "another contract": lambda: {**anchored_log(), "address": "0x" + "11" * 20},
    "removed by a reorg": lambda: {**anchored_log(), "removed": True},
    "unknown topic": lambda: {**anchored_log(), "topics": ["0x" + "99" * 32, *anchored_log()["topics"][1:]]},
    "no topics": lambda: {**anchored_log(), "topics": []},
    "missing indexed topic": lambda: {**anchored_log(), "topics": anchored_log()["topics"][:2]},
    "string runs past the data": lambda: with_data(anchored_log(), _huge_string_length()),
    "misaligned string offset": lambda: with_data(anchored_log(), _misaligned_offset()),
    "invalid UTF-8": _invalid_utf8,
    "data cut after two words (Anchored)": lambda: with_data(anchored_log(), _anchored_data()[:64]),
    "data cut after two words (LeafRevoked, decoded inline)": lambda: with_data(
        leaf_revoked_log(), bytes.fromhex(leaf_revoked_log()["data"][2:])[:64]
    ),
    "missing indexed topic (LeafRevoked)": lambda: {
        **leaf_revoked_log(),
        "topics": leaf_revoked_log()["topics"][:3],
    },
    "empty data (IssuerStatusChanged)": lambda: with_data(
        synthesize("IssuerStatusChanged", {"issuer": b"\x01" * 20, "active": True}), b""
    ),
    "short address topic": lambda: {**anchored_log(), "topics": [*anchored_log()["topics"][:2], "0x1234"]},
    "address topic with non-zero padding": _padded_address_topic,
    "odd-length hex data": lambda: {**anchored_log(), "data": anchored_log()["data"] + "0"},
    "pending log without block hash": lambda: {**anchored_log(), "blockHash": None},
    "no log index": lambda: {k: v for k, v in anchored_log().items() if k != "logIndex"},
}


@pytest.mark.parametrize("make", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_logs_raise_decode_error(make: Any) -> None:
    with pytest.raises(DecodeError):
        decode_logs([make()], REGISTRY)


def test_two_hashes_for_one_block_in_one_response() -> None:
    first = anchored_log()
    second = {**anchored_log(), "logIndex": "0x9", "blockHash": "0x" + "ef" * 32}
    with pytest.raises(DecodeError, match="two different hashes"):
        decode_logs([first, second], REGISTRY)
