"""A stock W3C Verifiable Credentials verifier for the tests: tests/tools/di_verify.mjs under Node
(@digitalbazaar/vc with @digitalbazaar/eddsa-jcs-2022-cryptosuite, offline)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "tests" / "tools" / "di_verify.mjs"


def run_node_tool(script: Path, credentials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a Node test tool (a JSON array of credentials on stdin) prints: one result each."""
    done = subprocess.run(
        ["node", str(script)], input=json.dumps(credentials), capture_output=True, text=True,
        check=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def stock_verifier(credentials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{"verified", "error"}`` for each credential, as the Digital Bazaar verifier judges it."""
    return run_node_tool(VERIFIER, credentials)
