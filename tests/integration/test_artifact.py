"""The committed artifact is exactly what the pinned solc-js makes of the committed source."""

from __future__ import annotations

import json

import pytest

from chain.contract import ARTIFACT_PATH
from chain.dev.toolchain import compile_registry


@pytest.mark.slow
def test_recompiling_reproduces_the_committed_artifact() -> None:
    committed = json.loads(ARTIFACT_PATH.read_text())
    fresh = compile_registry()
    assert fresh["sourceSha256"] == committed["sourceSha256"], (
        "source changed: run python -m chain.dev.toolchain compile"
    )
    assert fresh["bytecode"] == committed["bytecode"]
    assert fresh["deployedBytecode"] == committed["deployedBytecode"]
    assert fresh == committed
