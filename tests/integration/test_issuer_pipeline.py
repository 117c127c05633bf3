"""The issuer's parallel, streaming path on a real anvil and a real SQLite file: workers write the
same bytes as the serial path, a crash in the middle of sealing or of writing receipts loses
nothing, and ``finvault qr`` renders a receipt's QR code on demand."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from chain.core.issuance import verification_link
from chain.core.receipt import ReceiptV2, parse_receipt
from chain.core.secured import leaf_of
from chain.errors import ConfigError
from chain.holder import qr_command
from chain.qr import qr_png
from chain.rpc import RpcClient
from issuer import service as service_module
from issuer.intake import read_input
from issuer.service import IssuerConfig, IssuerService, ProgressBar, ingest
from issuer.store import BatchStatus, Certificate, CertificateStatus, Event, EventType, Store
from tests.factories import disclosed
from tests.integration.conftest import Deployed, MirrorBackend, on_both_backends
from tests.integration.issuer_fixtures import NODE_URL, Crash, IssuerEnv
from tests.integration.test_issuer_backends import RECORD

CERTIFICATES = 35
CHUNK = 10


@pytest.fixture
def env(registry: Deployed, rpc: RpcClient, tmp_path: Path) -> IssuerEnv:
    return IssuerEnv(registry, rpc, tmp_path)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 10, so that 35 certificates take four trips through the workers."""
    monkeypatch.setattr(service_module, "WORK_CHUNK", CHUNK)


class _CrashAfter:
    """A progress hook that crashes the service after the first chunk of ``phase``."""

    def __init__(self, phase: str) -> None:
        self.phase = phase
        self.done = 0

    @contextmanager
    def __call__(self, phase: str, total: int) -> Iterator[ProgressBar]:
        yield self if phase == self.phase else _Quiet()

    def update(self, n: int = 1) -> None:
        self.done += n
        raise Crash(f"crash in {self.phase} after {self.done} certificates")


class _Quiet:
    def update(self, n: int = 1) -> None:
        """Not the phase that crashes."""


def _status_counts(env: IssuerEnv) -> dict[CertificateStatus, int]:
    counts: dict[CertificateStatus, int] = {}
    for certificate in env.store.certificates([f"cert-{i:05d}" for i in range(CERTIFICATES)]):
        counts[certificate.status] = counts.get(certificate.status, 0) + 1
    return counts


@pytest.mark.usefixtures("small_chunks")
def test_workers_write_the_bytes_of_the_serial_path(env: IssuerEnv) -> None:
    env.ingest_csv(CERTIFICATES)
    [batch] = env.service(workers=2).run_once()
    assert batch.status is BatchStatus.ANCHORED
    assert env.assert_all_valid() == CERTIFICATES
    confirmed = env.writer().sender.receipt(batch.tx_hash or "")
    assert confirmed is not None
    serial_dir = env.tmp / "serial"
    serial = IssuerService(
        env.store, env.writer(), env.key, IssuerConfig(out_dir=serial_dir, node_url=NODE_URL, workers=1)
    )
    serial.write_outputs(batch.root, confirmed)
    parallel = {path.relative_to(env.out): path.read_bytes() for path in env.out.rglob("*.json")}
    assert len(parallel) == CERTIFICATES + 1  # and the manifest
    assert parallel == {
        path.relative_to(serial_dir): path.read_bytes() for path in serial_dir.rglob("*.json")
    }
    for receipt, path in zip(env.receipts(), sorted(env.out.glob("*.json")), strict=True):
        assert path.read_text() == receipt.to_json()  # the text the pydantic model writes
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.usefixtures("small_chunks")
def test_a_crash_while_sealing_leaves_every_certificate_pending(env: IssuerEnv) -> None:
    env.ingest_csv(CERTIFICATES)
    crashing = env.service(workers=2)
    crashing.progress = _CrashAfter("seal")
    with pytest.raises(Crash):
        crashing.run_once()
    assert _status_counts(env) == {CertificateStatus.PENDING: CERTIFICATES}  # the chunk written rolled back
    assert env.store.batches(list(BatchStatus)) == []
    [batch] = env.service(workers=2).run_once()
    assert batch.leaf_count == CERTIFICATES
    assert env.assert_all_valid() == CERTIFICATES


@pytest.mark.usefixtures("small_chunks")
def test_a_crash_while_writing_receipts_is_finished_by_the_next_run(env: IssuerEnv) -> None:
    env.ingest_csv(CERTIFICATES)
    crashing = env.service(workers=1)  # in order: exactly the first chunk is written
    crashing.progress = _CrashAfter("receipts")
    with pytest.raises(Crash):
        crashing.run_once()
    [stopped] = env.store.batches([BatchStatus.SENT])
    assert _status_counts(env) == {CertificateStatus.SEALED: CERTIFICATES}
    assert len(list(env.out.glob("*.json"))) == CHUNK
    nonce = env.nonce()
    [batch] = env.service(workers=2).run_once()
    assert batch.root == stopped.root
    assert batch.status is BatchStatus.ANCHORED
    assert env.nonce() == nonce  # resumed from the mined transaction: nothing sent again
    assert env.anchor_count() == 1
    assert _status_counts(env) == {CertificateStatus.ANCHORED: CERTIFICATES}
    assert env.assert_all_valid() == CERTIFICATES


@pytest.mark.usefixtures("small_chunks")
def test_anchoring_marks_and_announces_only_the_certificates_still_sealed(env: IssuerEnv) -> None:
    """Nothing moves a sealed certificate before its batch is anchored; were one moved all the
    same, anchoring would neither mark it anchored nor announce it (as before chunked marking)."""
    env.ingest_csv(CERTIFICATES)
    service = env.service(workers=2)
    root = service.seal()
    assert root is not None
    with env.store.transaction() as session:
        session.get_one(Certificate, "cert-00012").status = CertificateStatus.PENDING
    batch = service.anchor(root)
    assert batch.status is BatchStatus.ANCHORED
    assert _status_counts(env) == {CertificateStatus.ANCHORED: CERTIFICATES - 1, CertificateStatus.PENDING: 1}
    with env.store.reading() as session:
        events = list(session.scalars(select(Event).where(Event.type == EventType.CERTIFICATE_ANCHORED)))
    announced = [i for event in events for i in event.data["certificate_ids"]]
    assert announced == [f"cert-{i:05d}" for i in range(CERTIFICATES) if i != 12]  # in id order


def test_finvault_qr_renders_a_receipts_link_on_demand(env: IssuerEnv) -> None:
    env.ingest_csv(2)
    env.service().run_once()
    assert not list(env.out.glob("*.png"))  # not at issuance by default
    receipt_path = env.out / "cert-00000.json"
    out_dir = env.tmp / "qr"
    result = CliRunner(mix_stderr=False).invoke(
        qr_command, [str(receipt_path), "--out", str(out_dir), "--node-url", NODE_URL]
    )
    assert result.exit_code == 0, result.stderr or result.exception
    png = out_dir / "cert-00000.png"
    assert result.stdout.strip() == str(png)
    receipt = parse_receipt(receipt_path.read_bytes())
    assert isinstance(receipt, ReceiptV2)
    link = verification_link(NODE_URL, leaf_of(receipt.credential))  # the leaf, recomputed
    assert png.read_bytes() == qr_png(link)
    assert stat.S_IMODE(png.stat().st_mode) == 0o600

    # A /2 receipt names no node: the link is never read from what a holder could rewrite.
    refused = CliRunner(mix_stderr=False).invoke(qr_command, [str(receipt_path), "--out", str(env.tmp)])
    assert isinstance(refused.exception, ConfigError)  # a one-line error, exit 2 (chain/entry.py)
    assert "--node-url" in str(refused.exception)
    assert not (env.tmp / "cert-00000.png").exists()


@on_both_backends
def test_workers_seal_and_write_receipts_on_both_backends(
    env: IssuerEnv, mirror_backend: MirrorBackend, tmp_path: Path
) -> None:
    names = ["Ada\x00Lovelace", "Zoë 山田", 'tab\tquote"backslash\\']
    source = tmp_path / "students.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"w-{i}", "name": name, **RECORD}) + "\n" for i, name in enumerate(names))
    )
    with mirror_backend.database(tmp_path) as url, Store.open(url) as store:
        service = env.service(store=store, workers=2)
        with service.workers() as pool:
            report = ingest(store, read_input(source, env.template, pool=pool))
            assert (report.accepted, list(report.rejected)) == (len(names), [])
            [batch] = service.run_once()
        assert batch.status is BatchStatus.ANCHORED
    assert env.assert_all_valid() == len(names)
    by_id = {disclosed(r)["id"]: disclosed(r)["credentialSubject"]["name"] for r in env.receipts()}
    assert by_id == {f"urn:example:certificate:w-{i}": name for i, name in enumerate(names)}
