"""``finvault node`` start-up refusals, clean stops, and ``finvault verify`` against a node or RPC.

A node that cannot work (wrong chain, no registry there, bad settings, port taken) must say so in
one line on stderr and exit non-zero before serving anything; ``finvault verify`` exits 0 only when
every receipt is VALID, 1 otherwise, 2 on usage errors.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from chain.dev.devchain import DevChain
from chain.registry import RevocationReason
from chain.rpc import RpcClient
from tests.integration.conftest import FINVAULT, Deployed, run_finvault
from tests.integration.node_fixtures import (
    BASE_ENV,
    FINALITY_DEPTH,
    Issued,
    issue,
    start_node,
    verdict_when,
    wait_for,
)

pytestmark = pytest.mark.slow  # each test here takes a second or more


def assert_one_line_error(result: subprocess.CompletedProcess[str], exit_code: int, *fragments: str) -> str:
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert not result.stdout.startswith("http://"), "it must not have served"
    return lines[0]


@pytest.mark.slow(seconds=14)
def test_start_refusals(anvil: DevChain, registry: Deployed, tmp_path: Path, reserved_port: int) -> None:
    db = f"sqlite:///{tmp_path / 'mirror.db'}"
    common = ["node", "--rpc", anvil.rpc_url, "--db", db, "--port", str(reserved_port)]

    wrong_chain = run_finvault(*common, "--registry", registry.address, "--chain-id", "137")
    assert_one_line_error(wrong_chain, 1, "chain_mismatch", "31337", "137")

    nothing_there = run_finvault(*common, "--registry", "0x" + "12" * 20)
    assert_one_line_error(nothing_there, 1, "chain_mismatch", "no contract")

    no_registry = run_finvault(*common)
    assert_one_line_error(no_registry, 2, "config_error", "registry")

    secret = "too-short"
    for env, fragment in [
        ({"FINVAULT_METRICS_TOKEN": secret}, "metrics_token"),
        ({"FINVAULT_CURSOR_SECRET": secret}, "cursor_secret"),
        ({"FINVAULT_CORS_ORIGINS": "*"}, "cors_origins"),
        ({"FINVAULT_CORS_ORIGINS": "https://ok.example,https://bad.example/path"}, "cors_origins"),
        ({"FINVAULT_HOST": "not a host"}, "host"),
        ({"FINVAULT_RATE_LIMIT": "-1"}, "rate_limit"),
        ({"FINVAULT_BULK_LIMIT": "5000"}, "bulk_limit"),
        ({"FINVAULT_LOG_LEVEL": "loud"}, "log_level"),
    ]:
        refused = run_finvault(*common, "--registry", registry.address, env=env)
        line = assert_one_line_error(refused, 2, "config_error", "invalid settings", fragment)
        assert secret not in line

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = run_finvault(
            "node", "--rpc", anvil.rpc_url, "--db", db, "--registry", registry.address, "--port", str(port)
        )
    assert_one_line_error(busy, 2, "config_error", "cannot listen", str(port))


def test_sigint_stops_the_node_with_its_checkpoint(
    anvil: DevChain, registry: Deployed, tmp_path: Path, reserved_port: int
) -> None:
    port = reserved_port
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")}, **BASE_ENV}
    database = tmp_path / "mirror.db"
    process = subprocess.Popen(
        [
            FINVAULT,
            "node",
            "--rpc",
            anvil.rpc_url,
            "--registry",
            registry.address,
            *("--port", str(port)),
            "--db",
            f"sqlite:///{database}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url == f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/health").json() == {"status": "ok"}
        # The readers serve as soon as they start; the writer's first step commits a moment later.
        wait_for(
            lambda: httpx.get(f"{url}/status").json(),
            lambda status: status["indexed_block"] >= registry.block,
            what="the writer's first step",
        )
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health", timeout=2)
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        checkpoint = connection.execute(text("SELECT block_number FROM checkpoint")).scalar_one()
    engine.dispose()
    assert checkpoint >= registry.block


@pytest.fixture
def issued(registry: Deployed) -> Issued:
    return issue(registry.owner, registry.issuer, seed="cli")


def write(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


@pytest.mark.slow(seconds=14)
def test_verify_command_exit_codes(
    anvil: DevChain, issued: Issued, rpc: RpcClient, tmp_path: Path, closed_port: int
) -> None:
    good = [write(tmp_path, f"cert-{i}.json", r.to_json()) for i, r in enumerate(issued.receipts[:2])]
    tampered = write(
        tmp_path, "tampered.json", issued.receipts[2].to_json().replace("Student 2", "Student 9")
    )
    direct = ["--rpc", anvil.rpc_url, "--registry", issued.registry]

    pending = run_finvault("verify", good[0], *direct)
    assert pending.returncode == 1, pending.stderr  # PENDING is not VALID
    assert "PENDING" in pending.stdout

    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    with start_node(anvil.rpc_url, issued.registry, tmp_path) as node:
        with httpx.Client(base_url=node.url) as client:
            verdict_when(client, issued.receipts[0], "VALID")
        for source in (["--node", node.url], direct):
            ok = run_finvault("verify", *good, *source, "--json")
            assert ok.returncode == 0, ok.stderr
            lines = [json.loads(line) for line in ok.stdout.splitlines()]
            assert [(line["file"], line["status"]) for line in lines] == [(g, "VALID") for g in good]

            mixed = run_finvault("verify", good[0], tampered, *source)
            assert mixed.returncode == 1, mixed.stderr
            assert "[DIGEST_MISMATCH]" in mixed.stdout

        not_json = run_finvault("verify", write(tmp_path, "not-json.json", "{oops"), "--node", node.url)
        assert not_json.returncode == 1
        assert "invalid_json" in not_json.stdout

        clash = run_finvault("verify", good[0], "--node", node.url, "--rpc", anvil.rpc_url)
        assert clash.returncode == 2
        assert "--rpc" in clash.stderr

    issued.writer.revoke_root(issued.batch.tree.root, RevocationReason.CESSATION_OF_OPERATION)
    revoked = run_finvault("verify", good[0], *direct)
    assert revoked.returncode == 1
    assert "[ROOT_REVOKED]" in revoked.stdout

    assert run_finvault("verify", str(tmp_path / "missing.json"), *direct).returncode == 2
    no_registry = run_finvault("verify", good[0], "--rpc", anvil.rpc_url)
    assert no_registry.returncode == 2  # a usage error
    assert run_finvault("verify", good[0], "--node", "ftp://example").returncode == 2
    gone = run_finvault("verify", good[0], "--node", f"http://127.0.0.1:{closed_port}")
    assert_one_line_error(gone, 1, "node_unavailable")
