from __future__ import annotations

import pytest
from eth_abi.abi import encode
from eth_hash.auto import keccak

from chain.contract import Artifact, load_artifact
from chain.core.encoding import to_bytes32


@pytest.fixture(scope="module")
def artifact() -> Artifact:
    return load_artifact()


def selector(signature: str) -> bytes:
    return keccak(signature.encode())[:4]


def test_custom_errors_decode_with_names_and_arguments(artifact: Artifact) -> None:
    root = bytes([7]) * 32
    data = selector("RootAlreadyAnchored(bytes32)") + encode(["bytes32"], [root])
    decoded = artifact.abi.decode_error(data)
    assert decoded is not None
    assert (decoded.name, decoded.args) == ("RootAlreadyAnchored", {"root": root})
    assert str(decoded) == f"RootAlreadyAnchored(root=0x{root.hex()})"


def test_builtin_errors_decode(artifact: Artifact) -> None:
    message = selector("Error(string)") + encode(["string"], ["boom"])
    panic = selector("Panic(uint256)") + encode(["uint256"], [0x11])
    assert artifact.abi.decode_error(message) is not None
    assert artifact.abi.decode_error(message).args == {"message": "boom"}  # type: ignore[union-attr]
    assert artifact.abi.decode_error(panic).args == {"code": 0x11}  # type: ignore[union-attr]


@pytest.mark.parametrize("data", [b"", b"\x01\x02\x03\x04", selector("ZeroRoot()")[:3]])
def test_unknown_or_short_revert_data_is_not_decoded(artifact: Artifact, data: bytes) -> None:
    assert artifact.abi.decode_error(data) is None


def test_truncated_arguments_are_not_decoded(artifact: Artifact) -> None:
    assert artifact.abi.decode_error(selector("RootAlreadyAnchored(bytes32)") + b"\x00" * 5) is None


def test_event_topics_match_their_signatures(artifact: Artifact) -> None:
    anchored = artifact.abi.events["Anchored"]
    assert anchored.topic0 == keccak(b"Anchored(bytes32,address,uint256,uint256,bytes32,string)")
    assert [name for name, _ in anchored.indexed] == ["root", "issuer"]
    assert [name for name, _ in anchored.data] == ["count", "timestamp", "accumulator", "manifestUri"]


def test_call_encoding_round_trip(artifact: Artifact) -> None:
    root = bytes([1]) * 32
    data = artifact.abi.encode_call("anchor", root, 5, "ipfs://x")
    assert data[:4] == selector("anchor(bytes32,uint256,string)")
    result = encode(["address", "uint256", "uint256", "uint256"], ["0x" + "ab" * 20, 1, 2, 3])
    assert artifact.abi.decode_result("anchorOf", result) == ("0x" + "ab" * 20, 1, 2, 3)


def test_to_bytes32() -> None:
    assert to_bytes32("0x" + "11" * 32) == bytes([0x11]) * 32
    with pytest.raises(ValueError, match="32 bytes"):
        to_bytes32(b"\x00" * 31)
