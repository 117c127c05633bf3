"""Shared set-up for the verification node's tests (this module holds no tests itself).

- :func:`issue` registers dev account 1 as an issuer on a registry, registers an Ed25519 key and
  anchors a batch of real signed certificates: the receipts a holder would have (legacy
  finvault-receipt/1); :func:`issue_v2` does the same for finvault-receipt/2 credentials, secured
  and batched by the core directly (not through the issuer service).
- :func:`start_node` runs a real ``finvault node`` (``python -m node``: uvicorn, the sync loop,
  a SQLite mirror file, or any mirror URL) as a subprocess on a port it binds itself, and stops
  it by PID.
- :func:`writer_and_runtime` runs the mirror's writer in a thread of the test and opens a reader's
  runtime beside it, for an app under Starlette's TestClient.
- :func:`wait_for` polls the node until an answer looks as expected (the loop polls every 0.1 s).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from chain.core.encoding import hex0x
from chain.core.merkle import MerkleTree
from chain.core.receipt import Receipt, ReceiptV2
from chain.core.secured import SD_JWT, Securing
from chain.keys import generate_private_key
from chain.registry import RegistryWriter
from node.runtime import Runtime
from node.settings import NodeSettings
from node.writer import MirrorWriter
from tests.factories import Batch, SecuredBatch, make_batch, secure
from tests.tools.node_process import NodeProcess

T = TypeVar("T")
#: anvil reports blocks at head - 64 as finalized: mining this many makes an anchor final.
FINALITY_DEPTH = 64
#: Every node these tests start: fast polling, quiet logs, dev chain.
BASE_ENV = {
    "FINVAULT_CHAIN_ID": "31337",
    "FINVAULT_POLL_INTERVAL": "0.1",
    "FINVAULT_LOG_LEVEL": "warning",
}


@dataclass
class Issued:
    """An anchored batch: its receipts, and the issuer's binding to revoke them."""

    writer: RegistryWriter
    batch: Batch
    receipts: list[Receipt]
    block: int
    tx_hash: str

    @property
    def registry(self) -> str:
        return self.writer.address

    @property
    def issuer(self) -> str:
        return self.writer.sender.signer.address

    @property
    def root(self) -> str:
        return hex0x(self.batch.tree.root)

    def leaf(self, index: int) -> bytes:
        return bytes.fromhex(self.receipts[index].proof.leaf[2:])


def register_issuer(owner: RegistryWriter, issuer: RegistryWriter) -> None:
    owner.register_issuer(issuer.sender.signer.address, "Example University", "https://uni.example")


def issue(
    owner: RegistryWriter, issuer: RegistryWriter, *, size: int = 4, seed: str = "node", register: bool = True
) -> Issued:
    """A batch of ``size`` certificates signed by a fresh Ed25519 key, anchored by ``issuer``."""
    if register:
        register_issuer(owner, issuer)
    batch = make_batch(size, key=generate_private_key("ed25519"), seed=seed)
    info = batch.key_info
    issuer.add_key(info.key_id, int(info.algorithm), info.der)
    anchored = issuer.anchor(batch.tree.root, len(batch.documents), f"ipfs://{seed}")
    receipts = [
        batch.receipt(
            i,
            tx_hash=anchored.tx_hash,
            block_number=anchored.block_number,
            registry=issuer.address,
            issuer=issuer.sender.signer.address,
        )
        for i in range(len(batch.documents))
    ]
    return Issued(issuer, batch, receipts, anchored.block_number, anchored.tx_hash)


@dataclass
class IssuedV2:
    """An anchored batch of finvault-receipt/2 credentials, and its receipts."""

    batch: SecuredBatch
    receipts: list[ReceiptV2]
    block: int
    tx_hash: str


def issue_v2(
    owner: RegistryWriter,
    issuer: RegistryWriter,
    credentials: list[dict[str, Any]],
    *,
    securing: Securing = SD_JWT,
    seed: str = "node-v2",
    register: bool = True,
) -> IssuedV2:
    """``credentials`` secured (SD-JWT by default) with a fresh Ed25519 key registered on-chain,
    batched into one tree whose root ``issuer`` anchors: what issuance of /2 receipts produces."""
    if register:
        register_issuer(owner, issuer)
    key = generate_private_key("ed25519")
    secured = [secure(c, key, securing, seed=f"{seed}/{i}") for i, c in enumerate(credentials)]
    batch = SecuredBatch(key, secured, MerkleTree([s.digest for s in secured]))
    info = batch.key_info
    issuer.add_key(info.key_id, int(info.algorithm), info.der)
    anchored = issuer.anchor(batch.tree.root, len(secured), f"ipfs://{seed}")
    address = issuer.sender.signer.address
    receipts = [batch.receipt(i, registry=issuer.address, issuer=address) for i in range(len(secured))]
    return IssuedV2(batch, receipts, anchored.block_number, anchored.tx_hash)


@contextmanager
def writer_and_runtime(settings: NodeSettings) -> Iterator[tuple[MirrorWriter, Runtime]]:
    """The mirror's writer, its loop running in a thread, and a reader's runtime over its mirror."""
    writer = MirrorWriter.open(settings)
    try:
        writer.start()
        runtime = Runtime.open(settings)
        try:
            yield writer, runtime
        finally:
            runtime.close()
    finally:
        writer.close()


@contextmanager
def start_node(
    rpc_url: str,
    registry: str,
    tmp_path: Path,
    *,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    database_url: str | None = None,
) -> Iterator[NodeProcess]:
    """A running ``finvault node`` on a port it picks itself (``--port 0``: no other process can
    take it first); stopped (and checked stopped) on exit.

    Its mirror is ``database_url``, by default a SQLite file in ``tmp_path`` (which holds the log).
    """
    process = NodeProcess(
        rpc_url=rpc_url,
        registry=registry,
        database_url=database_url or f"sqlite:///{tmp_path / 'mirror.db'}",
        env={**BASE_ENV, **(env or {})},
        args=args,
        log_path=tmp_path / "node.log",
    )
    try:
        process.start(ready_timeout=60)
        yield process
    finally:
        code = process.stop()
        assert code == 0, f"the node exited {code}: {process.log_tail()}"
        process.close()


def wait_for(
    probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float = 30.0, what: str = ""
) -> T:
    """Calls ``probe`` until ``done`` accepts its answer; fails with the last answer after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if done(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or 'the node'}; last answer: {answer!r}")
        time.sleep(0.1)


def wait_until_vouching(url: str, timeout: float = 30.0) -> None:
    """Waits until the node at ``url`` vouches for its mirror (its loop has reached the chain head):
    before that, verification answers 503 ``mirror_stale``, whatever the receipt."""
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for(
            lambda: client.get("/status").json(), lambda s: s["vouching"], timeout=timeout, what="vouching"
        )


def verify_response(
    client: httpx.Client, receipt: Receipt | ReceiptV2 | dict[str, Any] | str
) -> httpx.Response:
    """POST /verify with a receipt (an object, a dict, or the exact text)."""
    if isinstance(receipt, Receipt | ReceiptV2):
        content = receipt.to_json()
    elif isinstance(receipt, dict):
        content = json.dumps(receipt)
    else:
        content = receipt
    return client.post("/verify", content=content, headers={"Content-Type": "application/json"})


def post_receipt(client: httpx.Client, receipt: Receipt | ReceiptV2 | dict[str, Any] | str) -> dict[str, Any]:
    """POST /verify; asserts HTTP 200 and returns the verdict."""
    response = verify_response(client, receipt)
    assert response.status_code == 200, response.text
    assert response.headers["x-correlation-id"]
    verdict: dict[str, Any] = response.json()
    return verdict


def verdict_when(
    client: httpx.Client, receipt: Receipt | ReceiptV2, status: str, timeout: float = 30.0
) -> dict[str, Any]:
    """The receipt's verdict once the node's mirror has caught up enough to give ``status``.

    While the node cannot vouch (503 ``mirror_*``: until it first reaches the chain head, while a
    resync rewrites its mirror) it is waited for too.
    """

    def answer() -> dict[str, Any]:
        response = verify_response(client, receipt)
        if response.status_code == 503 and response.json()["error"]["code"].startswith("mirror_"):
            return {"status": None, "refused": response.json()}
        assert response.status_code == 200, response.text
        verdict: dict[str, Any] = response.json()
        return verdict

    return wait_for(
        answer, lambda verdict: verdict["status"] == status, timeout=timeout, what=f"a {status} verdict"
    )


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The one error shape, with the correlation id both in the body and the header."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    error = body["error"]
    assert error["code"] == code, body
    assert error["message"]
    assert "Traceback" not in response.text
    assert error["correlation_id"] == response.headers["x-correlation-id"]
    return body
