"""docs/usage.md's issuing walkthrough, pasted into bash, on a real anvil chain.

The test reads the ``sh`` blocks between the ``<!-- walkthrough`` markers of the doc itself, so the
doc and what is tested cannot drift apart. It runs them in a scratch folder laid out like a
checkout on which ``./scripts/demo`` is running: ``.venv`` and ``tests`` (for the example CSV and
template) link to this repository, and ``.finvault/demo/env.json`` names this session's anvil and
a freshly deployed registry (the demo's own node is not needed: the walkthrough uses its URL for
the receipts' links only).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chain.dev.devchain import DevChain
from tests.integration.conftest import Deployed

ROOT = Path(__file__).resolve().parents[2]
USAGE = ROOT / "docs" / "usage.md"
NODE_URL = "http://127.0.0.1:8000"


def walkthrough_script(markdown: str) -> str:
    """The ``sh`` blocks between ``<!-- walkthrough`` and ``<!-- /walkthrough -->``, in order."""
    _, start, rest = markdown.partition("<!-- walkthrough")
    section, end, _ = rest.partition("<!-- /walkthrough -->")
    assert start, "docs/usage.md lost its walkthrough marker"
    assert end, "docs/usage.md lost its closing walkthrough marker"
    blocks = re.findall(r"^```sh\n(.*?)^```$", section, re.DOTALL | re.MULTILINE)
    assert len(blocks) >= 3, blocks
    return "".join(blocks)


@pytest.mark.slow(seconds=10)
def test_the_issuing_walkthrough_runs_as_written(anvil: DevChain, registry: Deployed, tmp_path: Path) -> None:
    script = walkthrough_script(USAGE.read_text())
    for step in ("issuer register", "issuer keygen", "issuer add-key", "--node-url", "anvil_mine", "verify"):
        assert step in script  # register, keygen, add-key, issue, make it final, verify, draw its link
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    (tmp_path / "tests").symlink_to(ROOT / "tests")
    demo = tmp_path / ".finvault" / "demo"
    demo.mkdir(parents=True)
    env_json = {
        "rpc_url": anvil.rpc_url,
        "chain_id": 31337,
        "registry": registry.address,
        "node_url": NODE_URL,
    }
    (demo / "env.json").write_text(json.dumps(env_json))
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "as 'Example University'" in done.stdout
    assert "3 accepted, 0 rejected" in done.stdout
    assert "3 certificates anchored in block" in done.stdout
    assert "uni/receipts/cert-0001.json: VALID" in done.stdout
    assert "finality 65 confirmations, finalized" in done.stdout
    receipt = json.loads((tmp_path / "uni" / "receipts" / "cert-0001.json").read_text())
    assert receipt["format"] == "finvault-receipt/2"
    assert isinstance(receipt["credential"], str)  # an SD-JWT, the default securing
