"""Shared set-up for the issuer service's integration tests (this module holds no tests itself).

An :class:`IssuerEnv` is a registry on the session's anvil with dev account 1 registered as an
active issuer, an Ed25519 document-signing key registered to it, and a SQLite store in a
temporary directory. :meth:`IssuerEnv.service` builds a new service each time, with a new
``TxSender`` and a new database engine: what a restarted process would have.

:func:`serve_in_thread` runs an app (the issuer API built by ``create_app``) under a real uvicorn
on a free loopback port in a background thread: the cheapest real HTTP server.
"""

from __future__ import annotations

import csv
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from chain.core.encoding import to_bytes32
from chain.core.receipt import ReceiptV2, parse_receipt
from chain.core.signing import PrivateKey, public_key_info
from chain.core.verify import Status, verify
from chain.dev.devchain import DEV_CHAIN_ID
from chain.keys import encrypt_private_key, generate_private_key
from chain.registry import RegistryReader, RegistryWriter
from chain.rpc import RpcClient
from chain.rpc_facts import RpcFacts
from chain.service.files import write_secret_file
from chain.service.web import GracefulServer, server_config
from issuer.anchoring import Hook, Step
from issuer.intake import read_input
from issuer.service import IssuerConfig, IssuerService, ingest
from issuer.store import Store
from issuer.template import Template, load_template
from node.server import bind_socket, node_url
from tests.integration.conftest import ISSUER, Deployed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "issuer"
TEMPLATE = FIXTURES / "degree-template.json"
NODE_URL = "https://verify.example"
PASSPHRASE = "correct horse battery staple"
#: anvil reports blocks older than head - 64 as finalized.
FINALITY_DEPTH = 64
NOW = datetime(2026, 11, 23, tzinfo=UTC)


class Crash(BaseException):
    """Raised from a hook to stop the service the way a crash would (not caught by `except Exception`)."""


def crash_at(step: Step) -> Hook:
    def hook(seen: Step, root: str) -> None:
        if seen is step:
            raise Crash(f"crash after {step} of {root}")

    return hook


def write_students_csv(path: Path, count: int, *, first: int = 0) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "name", "degree", "grade", "credits", "issued", "expires", "graduated"])
        for i in range(first, first + count):
            writer.writerow(
                [
                    f"cert-{i:05d}",
                    f"Student {i}",
                    "MSc Data Science",
                    "A",
                    120,
                    "2026-07-01",
                    "",
                    "2026-06-30",
                ]
            )
    return path


#: The columns of the built-in ``ob3`` template (docs/usage.md), as a badge CSV's header.
BADGE_COLUMNS = (
    "id,issuer_name,issuer_url,issued,expires,achievement_id,achievement_name,achievement_description,"
    "criteria_narrative,achievement_image,recipient_id,recipient_email,recipient_student_id"
)


def write_badges_csv(path: Path, count: int) -> Path:
    """``count`` Open Badges for the ``ob3`` template: recipients by DID, e-mail and student id in turn."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(BADGE_COLUMNS.split(","))
        for i in range(count):
            recipient = ["", "", ""]
            recipient[i % 3] = [f"did:example:student-{i}", f"student{i}@uni.example", f"S-{i:05d}"][i % 3]
            writer.writerow(
                [
                    f"badge-{i:04d}",
                    "Example University",
                    "https://uni.example",
                    "2026-07-01",
                    "",
                    "https://uni.example/achievements/python-101",
                    "Python 101",
                    "Writes and tests small Python programs.",
                    "Passed the final project.",
                    "",
                    *recipient,
                ]
            )
    return path


@dataclass
class IssuerEnv:
    deployed: Deployed
    rpc: RpcClient
    tmp: Path
    key: PrivateKey = field(default_factory=lambda: generate_private_key("ed25519"))

    def __post_init__(self) -> None:
        self.out = self.tmp / "receipts"
        self.db_url = f"sqlite:///{self.tmp / 'issuer.db'}"
        self.key_dir = self.tmp / "key"
        self.key_dir.mkdir()
        write_secret_file(self.key_dir / "signing-key.pem", encrypt_private_key(self.key, PASSPHRASE))
        info = public_key_info(self.key)
        issuer = self.deployed.issuer
        self.deployed.owner.register_issuer(
            issuer.sender.signer.address, "Example University", "https://uni.example"
        )
        issuer.add_key(info.key_id, int(info.algorithm), info.der)
        self.store = Store.open(self.db_url)
        self.template: Template = load_template(TEMPLATE)

    @property
    def address(self) -> str:
        return self.deployed.issuer.sender.signer.address

    def writer(self) -> RegistryWriter:
        """A new binding with a new TxSender (no nonce cache), as after a restart."""
        return self.deployed.as_account(ISSUER)

    def service(self, *, store: Store | None = None, **config: Any) -> IssuerService:
        options: dict[str, Any] = {k: config.pop(k) for k in ("hook", "sleep", "clock") if k in config}
        return IssuerService(
            store or Store.open(self.db_url),
            self.writer(),
            self.key,
            IssuerConfig(out_dir=self.out, node_url=NODE_URL, **config),
            **options,
        )

    def ingest_csv(self, count: int, *, first: int = 0) -> None:
        path = write_students_csv(self.tmp / f"students-{first}.csv", count, first=first)
        report = ingest(self.store, read_input(path, self.template))
        assert report.accepted == count, report.rejected

    def facts(self) -> RpcFacts:
        return RpcFacts(RegistryReader(self.rpc, self.deployed.address), DEV_CHAIN_ID)

    def anchor_count(self) -> int:
        return self.deployed.owner.counts()[0]

    def anchored_logs(self, root: str) -> list[dict[str, Any]]:
        topic0 = self.deployed.owner.abi.events["Anchored"].topic0
        return list(
            self.rpc.call(
                "eth_getLogs",
                [
                    {
                        "address": self.deployed.address,
                        "fromBlock": "0x0",
                        "toBlock": "latest",
                        "topics": ["0x" + topic0.hex(), "0x" + to_bytes32(root).hex()],
                    }
                ],
            )
        )

    def nonce(self) -> int:
        return int(self.rpc.call("eth_getTransactionCount", [self.address, "latest"]), 16)

    def receipts(self) -> Iterator[ReceiptV2]:
        for path in sorted(self.out.glob("*.json")):
            receipt = parse_receipt(path.read_bytes())
            assert isinstance(receipt, ReceiptV2), f"{path.name} is not a finvault-receipt/2"
            yield receipt

    def assert_all_valid(self) -> int:
        """Mines past finality and verifies every receipt in the output directory through RPC facts."""
        self.rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
        facts = self.facts()
        checked = 0
        for receipt in self.receipts():
            verdict = verify(receipt, facts, NOW)
            assert verdict.status is Status.VALID, verdict.to_dict()
            checked += 1
        return checked


@contextmanager
def serve_in_thread(app: FastAPI, *, ready_timeout: float = 30.0) -> Iterator[str]:
    """``app`` under uvicorn (:func:`chain.service.web.server_config`, as every FinVault server) on a
    free loopback port, in a daemon thread; yields its URL once it accepts connections, and stops it
    gracefully on exit."""
    sock = bind_socket("127.0.0.1", 0)
    server = GracefulServer(server_config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="issuer-api", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + ready_timeout
        while not server.started:
            assert thread.is_alive(), "the server thread exited during startup"
            assert time.monotonic() < deadline, f"the server did not start within {ready_timeout:.0f}s"
            time.sleep(0.02)
        yield node_url("127.0.0.1", sock)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
        assert not thread.is_alive(), "the server thread did not stop"
