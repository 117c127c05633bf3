"""Locates the pinned npm toolchain (solc-js, anvil, OpenZeppelin) and compiles the registry.

Nothing here downloads anything. The runtime needs none of it: node, indexer and verification use
the committed artifact in ``chain/artifacts``. Compilation goes through py-solc-x with a launcher
that runs ``scripts/lib/solc-shim.js`` (solc-js behind a native-CLI-compatible interface).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

from chain.contract import ARTIFACT_PATH
from chain.errors import ToolchainError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTRACT_SOURCE = "contracts/FinVaultRegistry.sol"
CONTRACT_NAME = "FinVaultRegistry"
SHIM_PATH = REPO_ROOT / "scripts" / "lib" / "solc-shim.js"

#: Compiler settings are part of the artifact: changing them changes the bytecode.
COMPILER_SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 10_000},
    "remappings": ["@openzeppelin/contracts/=node_modules/@openzeppelin/contracts/"],
    "metadata": {"bytecodeHash": "ipfs"},
}


def node_modules() -> Path:
    """The repo's ``node_modules``, or ``$FINVAULT_NODE_MODULES``."""
    path = Path(os.environ.get("FINVAULT_NODE_MODULES", REPO_ROOT / "node_modules"))
    if not path.is_dir():
        raise ToolchainError(f"{path} is missing: run ./scripts/setup to install the npm toolchain")
    return path


def anvil_binary() -> Path:
    """The anvil that npm installed (the linux-amd64 package); raises :class:`ToolchainError` if missing."""
    path = node_modules() / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    if not path.is_file():
        raise ToolchainError(f"anvil not found at {path}: run ./scripts/setup")
    return path


def node_binary() -> Path:
    """The ``node`` on PATH, symlinks resolved; raises :class:`ToolchainError` if there is none."""
    found = shutil.which("node")
    if found is None:
        raise ToolchainError("node is not on PATH: FinVault's compiler toolchain needs Node 20")
    return Path(found).resolve()


def solc_version() -> str:
    """The pinned solc-js version, from node_modules (e.g. ``0.8.28``)."""
    package = json.loads((node_modules() / "solc" / "package.json").read_text())
    return str(package["version"])


def solcx_binary_path() -> Path:
    """Where py-solc-x and ape-solidity look for compilers (``$SOLCX_BINARY_PATH``)."""
    return Path(os.environ.get("SOLCX_BINARY_PATH", REPO_ROOT / ".venv" / "solcx"))


def write_solc_launcher() -> Path:
    """Writes ``solc-v<version>`` into :func:`solcx_binary_path` and exports that directory.

    The launcher holds absolute paths because py-solc-x copies installed binaries around.
    """
    directory = solcx_binary_path()
    directory.mkdir(parents=True, exist_ok=True)
    launcher = directory / f"solc-v{solc_version()}"
    script = (
        "#!/bin/sh\n"
        "# solc-js behind a native solc CLI; written by `python -m chain.dev.toolchain install-solc`.\n"
        f'NODE_PATH="{node_modules()}" exec "{node_binary()}" "{SHIM_PATH}" "$@"\n'
    )
    if not launcher.exists() or launcher.read_text() != script:
        # Written aside and renamed into place: parallel test workers may write it while another
        # runs it, and must never run a half-written script (or hit "text file busy").
        staged = directory / f".{launcher.name}.{os.getpid()}"
        staged.write_text(script)
        staged.chmod(staged.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        staged.replace(launcher)
    os.environ["SOLCX_BINARY_PATH"] = str(directory)
    return launcher


def compile_registry() -> dict[str, Any]:
    """Compiles FinVaultRegistry with the pinned solc-js and returns the artifact dictionary."""
    import solcx  # dev dependency: imported here so the runtime never needs it

    launcher = write_solc_launcher()
    source = (REPO_ROOT / CONTRACT_SOURCE).read_text()
    standard_input = {
        "language": "Solidity",
        "sources": {CONTRACT_SOURCE: {"content": source}},
        "settings": {
            **COMPILER_SETTINGS,
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }
    output = solcx.compile_standard(
        standard_input, solc_binary=launcher, base_path=str(REPO_ROOT), allow_paths=[str(REPO_ROOT)]
    )
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ToolchainError("compilation failed: " + "; ".join(e["message"] for e in errors))
    contract = output["contracts"][CONTRACT_SOURCE][CONTRACT_NAME]
    return {
        "contractName": CONTRACT_NAME,
        "sourceName": CONTRACT_SOURCE,
        "sourceSha256": "0x" + hashlib.sha256(source.encode()).hexdigest(),
        "compiler": {"name": "solc-js", "version": solc_version(), "settings": COMPILER_SETTINGS},
        "abi": contract["abi"],
        "bytecode": "0x" + contract["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + contract["evm"]["deployedBytecode"]["object"],
    }


def write_artifact(artifact: dict[str, Any], path: Path = ARTIFACT_PATH) -> None:
    """Writes the artifact as indented JSON with sorted keys (the committed file by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(artifact, indent=2, sort_keys=True) + "\n")


def main(argv: list[str]) -> int:
    """``python -m chain.dev.toolchain install-solc | compile [--check]`` (used by scripts/setup)."""
    command = argv[0] if argv else ""
    if command == "install-solc":
        print(write_solc_launcher())
        return 0
    if command == "compile":
        artifact = compile_registry()
        if "--check" in argv[1:]:
            committed = json.loads(ARTIFACT_PATH.read_text())
            if committed != artifact:
                print(f"{ARTIFACT_PATH} is stale: run python -m chain.dev.toolchain compile", file=sys.stderr)
                return 1
            print(f"{ARTIFACT_PATH} matches {CONTRACT_SOURCE}")
            return 0
        write_artifact(artifact)
        print(f"wrote {ARTIFACT_PATH}")
        return 0
    print("usage: python -m chain.dev.toolchain install-solc | compile [--check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ToolchainError as exc:
        print(exc.diagnostics(), file=sys.stderr)
        sys.exit(1)
