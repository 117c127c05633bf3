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


RDFC_PEER = ROOT / "tests" / "tools" / "di_rdfc.mjs"


def shipped_contexts() -> dict[str, str]:
    """FinVault's shipped JSON-LD contexts, URL to file path: what the Node peers' loader serves too."""
    from chain.core.jsonld import CONTEXT_FILES

    folder = ROOT / "chain" / "core" / "contexts"
    return {url: str(folder / name) for url, name in CONTEXT_FILES.items()}


def rdfc_peer(mode: str, credentials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Digital Bazaar's eddsa-rdfc-2022 (tests/tools/di_rdfc.mjs), offline on FinVault's contexts:
    ``mode="verify"``: ``{"verified", "error"}`` per credential; ``mode="sign"``: each credential
    secured under a fresh did:key that becomes its issuer."""
    payload = {"mode": mode, "contexts": shipped_contexts(), "credentials": credentials}
    done = subprocess.run(
        ["node", str(RDFC_PEER)], input=json.dumps(payload), capture_output=True, text=True,
        check=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results
