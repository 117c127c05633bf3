"""The solc-js shim answers like the native solc CLI, as py-solc-x drives it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import solcx
from packaging.version import Version

from chain.dev.toolchain import REPO_ROOT, solc_version, write_solc_launcher

SOURCE = """
// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
contract Probe {
    function check(bytes32[] calldata proof, bytes32 root, bytes32 leaf) external pure returns (bool) {
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }
}
"""


@pytest.fixture(scope="module")
def launcher() -> Path:
    return write_solc_launcher()


def test_launcher_is_where_py_solc_x_looks(launcher: Path) -> None:
    assert Version(solc_version()) in solcx.get_installed_solc_versions()
    assert solcx.install.get_executable(solc_version()) == launcher


def test_version_output_matches_native_format(launcher: Path) -> None:
    out = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "solc, the solidity compiler commandline interface"
    assert out.splitlines()[1].startswith(f"Version: {solc_version()}+commit.")
    assert out.splitlines()[1].endswith(".Linux.g++")


@pytest.mark.slow
def test_combined_json_with_remappings(launcher: Path, tmp_path: Path) -> None:
    source = tmp_path / "Probe.sol"
    source.write_text(SOURCE)
    output = solcx.compile_files(
        [source],
        output_values=["abi", "bin", "bin-runtime"],
        solc_binary=launcher,
        import_remappings={"@openzeppelin/contracts/": f"{REPO_ROOT}/node_modules/@openzeppelin/contracts/"},
        optimize=True,
        evm_version="cancun",
    )
    probe = output[f"{source}:Probe"]
    assert [f["name"] for f in probe["abi"]] == ["check"]
    assert len(probe["bin"]) > 100
    assert len(probe["bin-runtime"]) > 100


def test_unknown_option_is_reported_like_native_solc(launcher: Path) -> None:
    result = subprocess.run([str(launcher), "--frobnicate"], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("unrecognised option '--frobnicate'")


def test_standard_json_reports_bad_input_in_band(launcher: Path) -> None:
    result = subprocess.run(
        [str(launcher), "--standard-json"], input="{nope", capture_output=True, text=True, check=True
    )
    assert '"JSONError"' in result.stdout
