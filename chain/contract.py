"""Contract bindings loaded from the committed artifact: call encoding, result and error decoding.

This is deliberately thin and fast: selectors and topics are computed once, and encoding goes
straight through ``eth_abi``. No web3 provider is involved, so the same code serves the issuer,
the indexer's decoder and direct verification.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from chain.core.hashing import keccak256
from chain.errors import FinVaultError, ToolchainError

ARTIFACT_PATH = Path(__file__).resolve().parent / "artifacts" / "FinVaultRegistry.json"

_ERROR_STRING = "Error(string)"
_PANIC = "Panic(uint256)"


def abi_type(param: Mapping[str, Any]) -> str:
    """The canonical type string of an ABI parameter, tuples included."""
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


def _signature(entry: Mapping[str, Any]) -> str:
    return f"{entry['name']}({','.join(abi_type(p) for p in entry['inputs'])})"


@dataclass(frozen=True)
class AbiFunction:
    """One ABI function: its 4-byte selector and the canonical types of its inputs and outputs."""

    name: str
    signature: str
    selector: bytes
    input_types: tuple[str, ...]
    output_types: tuple[str, ...]
    output_names: tuple[str, ...]


@dataclass(frozen=True)
class AbiError:
    """One custom error (or the builtin ``Error``/``Panic``): its selector and argument types."""

    name: str
    selector: bytes
    input_types: tuple[str, ...]
    input_names: tuple[str, ...]


@dataclass(frozen=True)
class AbiEvent:
    """One ABI event: ``topic0`` and its indexed (topic) and data parameters, each in order."""

    name: str
    topic0: bytes
    indexed: tuple[tuple[str, str], ...]  # (name, type) in topic order
    data: tuple[tuple[str, str], ...]  # (name, type) in data order


@dataclass(frozen=True)
class DecodedError:
    """A decoded revert: the error's name and its arguments by name; ``str()`` shows bytes as hex."""

    name: str
    args: dict[str, Any]

    def __str__(self) -> str:
        rendered = ", ".join(f"{k}={_render(v)}" for k, v in self.args.items())
        return f"{self.name}({rendered})"


def _render(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class ContractAbi:
    """Indexes an ABI by name, selector and topic."""

    abi: tuple[Mapping[str, Any], ...]
    functions: dict[str, AbiFunction] = field(init=False)
    errors: dict[bytes, AbiError] = field(init=False)
    events: dict[str, AbiEvent] = field(init=False)

    def __post_init__(self) -> None:
        functions: dict[str, AbiFunction] = {}
        errors: dict[bytes, AbiError] = {}
        events: dict[str, AbiEvent] = {}
        for entry in self.abi:
            kind = entry.get("type")
            if kind == "function":
                signature = _signature(entry)
                functions[entry["name"]] = AbiFunction(
                    name=entry["name"],
                    signature=signature,
                    selector=keccak256(signature.encode())[:4],
                    input_types=tuple(abi_type(p) for p in entry["inputs"]),
                    output_types=tuple(abi_type(p) for p in entry.get("outputs", [])),
                    output_names=tuple(p.get("name", "") for p in entry.get("outputs", [])),
                )
            elif kind == "error":
                selector = keccak256(_signature(entry).encode())[:4]
                errors[selector] = AbiError(
                    name=entry["name"],
                    selector=selector,
                    input_types=tuple(abi_type(p) for p in entry["inputs"]),
                    input_names=tuple(p["name"] for p in entry["inputs"]),
                )
            elif kind == "event":
                events[entry["name"]] = AbiEvent(
                    name=entry["name"],
                    topic0=keccak256(_signature(entry).encode()),
                    indexed=tuple((p["name"], abi_type(p)) for p in entry["inputs"] if p["indexed"]),
                    data=tuple((p["name"], abi_type(p)) for p in entry["inputs"] if not p["indexed"]),
                )
        for builtin, names in ((_ERROR_STRING, ("message",)), (_PANIC, ("code",))):
            selector = keccak256(builtin.encode())[:4]
            errors[selector] = AbiError(builtin.split("(")[0], selector, (builtin[6:-1],), names)
        object.__setattr__(self, "functions", functions)
        object.__setattr__(self, "errors", errors)
        object.__setattr__(self, "events", events)

    @cached_property
    def events_by_topic(self) -> dict[bytes, AbiEvent]:
        """The events keyed by ``topic0``."""
        return {event.topic0: event for event in self.events.values()}

    def function(self, name: str) -> AbiFunction:
        """The function ``name``; raises :class:`FinVaultError` if the ABI has none."""
        try:
            return self.functions[name]
        except KeyError:
            raise FinVaultError(f"the contract ABI has no function {name!r}") from None

    def encode_call(self, name: str, *args: Any) -> bytes:
        """Calldata for ``name(*args)``: the selector, then the ABI-encoded arguments."""
        from eth_abi.abi import encode as abi_encode  # eth_abi and eth_utils load in 0.1-0.2 s: on use

        fn = self.function(name)
        return fn.selector + abi_encode(list(fn.input_types), list(args))

    def decode_result(self, name: str, data: bytes) -> tuple[Any, ...]:
        """The return values of function ``name`` decoded from ``eth_call`` output, in ABI order
        (:class:`ValueError` if they do not decode)."""
        from eth_abi.abi import decode as abi_decode
        from eth_abi.exceptions import DecodingError

        try:
            return tuple(abi_decode(list(self.function(name).output_types), data))
        except DecodingError as exc:
            raise ValueError(f"{name}() returned undecodable data: {exc}") from None

    def encode_constructor(self, *args: Any) -> bytes:
        """The ABI-encoded constructor arguments, to append to the creation bytecode."""
        from eth_abi.abi import encode as abi_encode

        ctor = next((e for e in self.abi if e.get("type") == "constructor"), None)
        types = [abi_type(p) for p in ctor["inputs"]] if ctor else []
        return abi_encode(types, list(args))

    def decode_event(self, log: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """Decodes one raw ``eth_getLogs`` entry of this contract; None for an unknown topic.

        For the odd lookup, not for bulk sync: the indexer decodes its hot path by hand.
        """
        from eth_abi.abi import decode as abi_decode

        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        event = self.events_by_topic.get(topics[0]) if topics else None
        if event is None or len(topics) != len(event.indexed) + 1:
            return None
        values: dict[str, Any] = {
            name: abi_decode([kind], topic)[0]
            for (name, kind), topic in zip(event.indexed, topics[1:], strict=True)
        }
        data = abi_decode([kind for _, kind in event.data], bytes.fromhex(str(log["data"])[2:]))
        values.update(zip((name for name, _ in event.data), data, strict=True))
        return event.name, values

    def decode_error(self, data: bytes) -> DecodedError | None:
        """Decodes revert data into a custom error (or ``Error``/``Panic``); None if unknown."""
        from eth_abi.abi import decode as abi_decode

        error = self.errors.get(bytes(data[:4]))
        if error is None:
            return None
        try:
            values = abi_decode(list(error.input_types), bytes(data[4:]))
        except Exception:  # malformed revert data is reported as unknown, not raised
            return None
        return DecodedError(error.name, dict(zip(error.input_names, values, strict=True)))


@dataclass(frozen=True)
class Artifact:
    """The committed compiler output: what the runtime needs instead of a compiler."""

    contract_name: str
    abi: ContractAbi
    bytecode: bytes
    deployed_bytecode: bytes
    compiler: Mapping[str, Any]

    @cached_property
    def deployed_code_hash(self) -> bytes:
        """keccak256 of the runtime code, for checking what sits at a registry address."""
        return keccak256(self.deployed_bytecode)


def load_artifact(path: Path = ARTIFACT_PATH) -> Artifact:
    """Reads the compiler artifact (the committed one by default); raises :class:`ToolchainError`."""
    try:
        raw = json.loads(path.read_text())
        return Artifact(
            contract_name=raw["contractName"],
            abi=ContractAbi(tuple(raw["abi"])),
            bytecode=bytes.fromhex(raw["bytecode"].removeprefix("0x")),
            deployed_bytecode=bytes.fromhex(raw["deployedBytecode"].removeprefix("0x")),
            compiler=raw["compiler"],
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ToolchainError(f"cannot load contract artifact {path}: {exc}") from None
