"""``ape compile`` builds FinVaultRegistry offline from the repo's ape-config.yaml.

The project is copied into a temp dir (so ``.build/`` and ``contracts/.cache/`` never
land in the repo) and compiled with the solc-js launcher and the OpenZeppelin package
from ``node_modules``. Proxies point at a closed port so that any download attempt
fails fast instead of silently succeeding.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from chain.contract import ARTIFACT_PATH
from chain.dev.toolchain import (
    COMPILER_SETTINGS,
    CONTRACT_NAME,
    REPO_ROOT,
    node_modules,
    write_solc_launcher,
)

COMPILE_TIMEOUT_SECONDS = 300
REQUIRED_FUNCTIONS = frozenset({"anchor", "revokeLeaf", "registerIssuer"})


def _ape_executable() -> Path:
    beside_python = Path(sys.executable).with_name("ape")
    if beside_python.is_file():
        return beside_python
    found = shutil.which("ape")
    assert found is not None, "ape is not installed: run ./scripts/setup --dev"
    return Path(found)


def _function_names(abi: list[dict[str, Any]]) -> set[str]:
    return {str(item["name"]) for item in abi if item.get("type") == "function"}


def _load_json(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(path.read_text()))


@pytest.mark.slow(seconds=5)
def test_ape_compile_builds_registry_offline(tmp_path: Path, closed_port: int) -> None:
    unreachable_proxy = f"http://127.0.0.1:{closed_port}"
    launcher = write_solc_launcher()
    modules = node_modules()
    ape = _ape_executable()

    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(
        REPO_ROOT / "contracts",
        project / "contracts",
        ignore=shutil.ignore_patterns(".cache"),
    )
    shutil.copy2(REPO_ROOT / "ape-config.yaml", project / "ape-config.yaml")
    # ape resolves `npm:` dependencies under <project>/node_modules.
    (project / "node_modules").symlink_to(modules, target_is_directory=True)

    env = dict(os.environ)
    env.update(
        {
            "SOLCX_BINARY_PATH": str(launcher.parent),
            "APE_DATA_FOLDER": str(tmp_path / "ape-data"),
            "HTTP_PROXY": unreachable_proxy,
            "HTTPS_PROXY": unreachable_proxy,
            "http_proxy": unreachable_proxy,
            "https_proxy": unreachable_proxy,
            "NO_PROXY": "",
            "no_proxy": "",
        }
    )
    result = subprocess.run(
        [str(ape), "compile"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMPILE_TIMEOUT_SECONDS,
        check=False,
    )
    output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, output

    manifest = _load_json(project / ".build" / "__local__.json")
    contract_types = cast(dict[str, dict[str, Any]], manifest.get("contractTypes", {}))
    assert CONTRACT_NAME in contract_types, output
    abi = cast(list[dict[str, Any]], contract_types[CONTRACT_NAME].get("abi", []))
    assert abi, f"{CONTRACT_NAME} has an empty ABI"

    names = _function_names(abi)
    assert names >= REQUIRED_FUNCTIONS, f"missing: {sorted(REQUIRED_FUNCTIONS - names)}"
    committed_abi = cast(list[dict[str, Any]], _load_json(ARTIFACT_PATH)["abi"])
    assert names == _function_names(committed_abi)

    # ape-config.yaml must compile with the same settings as the committed artifact.
    compilers = cast(list[dict[str, Any]], manifest.get("compilers", []))
    registry_compilers = [c for c in compilers if CONTRACT_NAME in c.get("contractTypes", [])]
    assert len(registry_compilers) == 1, compilers
    compiler = registry_compilers[0]
    assert compiler["name"] == "solidity"
    assert str(compiler["version"]).startswith("0.8.28")
    settings = cast(dict[str, Any], compiler["settings"])
    assert settings["evmVersion"] == COMPILER_SETTINGS["evmVersion"]
    assert settings["optimizer"] == COMPILER_SETTINGS["optimizer"]
