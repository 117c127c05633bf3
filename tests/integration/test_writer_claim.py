"""One following indexer per mirror (indexer/writer.py): a second one refuses at once with a clear
error, on SQLite and PostgreSQL, and a writer that dies never blocks the next one.

A claim lost while its writer lives is taken again before the next write, or, if another writer
took it meanwhile, the first stops writing (``writer_claim_lost``). On PostgreSQL the loss is what a
database restart does to the claim's session: another connection terminates its backend. On SQLite,
the lock file is deleted.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

from chain.dev.devchain import DevChain
from chain.rpc import RpcClient
from indexer.db import open_mirror
from indexer.writer import (
    POSTGRES_WRITER_CLAIM,
    MirrorWriterBusy,
    WriterClaim,
    WriterClaimLost,
    WriterClaimPending,
)
from tests.integration.conftest import Deployed, on_both_backends, run_finvault
from tests.integration.indexer_fixtures import checkpoint, new_indexer

pytestmark = on_both_backends

HOLD = """
import sys, time
from indexer.db import open_mirror
from indexer.writer import WriterClaim
claim = WriterClaim(open_mirror(sys.argv[1]))
print("claimed", flush=True)
time.sleep(60)
"""


def test_a_second_writer_is_refused_until_the_first_lets_go(mirror_url: str) -> None:
    engine = open_mirror(mirror_url)
    try:
        busy = pytest.raises(MirrorWriterBusy, match="another indexer is already writing the mirror")
        with WriterClaim(engine), busy:
            WriterClaim(engine)
        with WriterClaim(engine):  # released: the next writer takes it
            pass
    finally:
        engine.dispose()


def test_a_killed_writer_leaves_no_claim_behind(mirror_url: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, mirror_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "claimed"
        engine = open_mirror(mirror_url)
        with pytest.raises(MirrorWriterBusy):
            WriterClaim(engine)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        WriterClaim(engine).release()  # the kernel or the server dropped the dead writer's claim
        engine.dispose()
    finally:
        holder.kill()
        holder.wait(timeout=10)


@pytest.mark.slow(seconds=2)
def test_finvault_sync_refuses_a_mirror_another_indexer_writes(
    mirror_url: str, anvil: DevChain, registry: Deployed
) -> None:
    engine = open_mirror(mirror_url)
    with WriterClaim(engine):
        done = run_finvault(
            "sync", "--db", mirror_url, "--rpc", anvil.rpc_url, "--registry", registry.address
        )
    engine.dispose()
    assert done.returncode == 1
    assert "another indexer is already writing the mirror" in done.stderr
    assert "replica" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    after = run_finvault("sync", "--db", mirror_url, "--rpc", anvil.rpc_url, "--registry", registry.address)
    assert after.returncode == 0, after.stderr


def lose_claims(engine: Engine, *, released: bool = True) -> None:
    """Ends whatever claim is held on the mirror behind ``engine``, as a database restart would:
    the backend holding the advisory lock is terminated (and, with ``released``, has exited and let
    go of the lock on return), or the lock file deleted."""
    if engine.dialect.name != "postgresql":
        Path(f"{engine.url.database}.writer").unlink()
        return
    holders = (
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid::bigint = %(high)s AND objid::bigint = %(low)s"
    )
    key = {"high": POSTGRES_WRITER_CLAIM >> 32, "low": POSTGRES_WRITER_CLAIM & 0xFFFFFFFF}
    admin = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            [pid] = connection.exec_driver_sql(holders, key).scalars().all()
            assert connection.exec_driver_sql("SELECT pg_terminate_backend(%(pid)s)", {"pid": pid}).scalar()
            deadline = time.monotonic() + 10
            while released and connection.exec_driver_sql(holders, key).first() is not None:
                assert time.monotonic() < deadline, "the terminated backend still holds the claim"
                time.sleep(0.01)
    finally:
        admin.dispose()


def test_a_lost_claim_is_taken_again_at_the_next_check(
    mirror_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = open_mirror(mirror_url)
    try:
        with WriterClaim(engine) as claim:
            claim.ensure()  # held: nothing to do
            lose_claims(engine, released=False)  # ensure() may find the ended session still exiting
            with caplog.at_level(logging.WARNING, logger="indexer.writer"):
                claim.ensure()
            assert [r.message for r in caplog.records if "taken again" in r.message] != []
            with pytest.raises(MirrorWriterBusy):
                WriterClaim(engine)  # the first writer holds it again
            claim.ensure()
    finally:
        engine.dispose()


def test_a_claim_lost_to_another_writer_stops_the_first_for_good(mirror_url: str) -> None:
    engine = open_mirror(mirror_url)
    try:
        first = WriterClaim(engine)
        lose_claims(engine)
        with WriterClaim(engine) as second:  # took the claim while the first had lost it
            for _ in range(2):
                with pytest.raises(WriterClaimLost, match="another indexer has claimed it since") as lost:
                    first.ensure()
                assert lost.value.code == "writer_claim_lost"
            second.ensure()
        with pytest.raises(WriterClaimLost):
            first.ensure()  # even with the second gone: its view of the mirror is stale
        first.release()
    finally:
        engine.dispose()


def test_the_sync_step_retakes_a_lost_claim_or_stops_writing(
    mirror_url: str, rpc: RpcClient, registry: Deployed, tmp_path: Path
) -> None:
    first = new_indexer(mirror_url, rpc, registry.address, registry.block)
    second = new_indexer(mirror_url, rpc, registry.address, registry.block)
    try:
        first.check_startup()
        first.claim_writer()
        first.step()
        lose_claims(first.engine)
        rpc.call("anvil_mine", [hex(3)])
        first.step()  # took its claim again, and wrote
        with pytest.raises(MirrorWriterBusy):
            second.claim_writer()

        lose_claims(first.engine)
        second.claim_writer()  # while the first had lost it: now the second is the writer
        rpc.call("anvil_mine", [hex(3)])
        before = checkpoint(first.engine)
        with pytest.raises(WriterClaimLost):
            first.step()
        assert checkpoint(first.engine) == before
        assert second.step().last_block == rpc.block_number()
    finally:
        for indexer in (first, second):
            indexer.close()
            indexer.engine.dispose()


def test_a_claim_still_held_by_its_ended_session_is_waited_for_not_lost(
    mirror_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client can hear that its session ended before the server has let go of the session's
    lock. A writer waits for that (up to CLAIM_RELEASE_WAIT), then retries at the next step: it
    never takes its own ended session for another writer. Here a second session holding the lock
    plays the backend still exiting."""
    engine = open_mirror(mirror_url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        pytest.skip("a PostgreSQL session's end")
    exiting = create_engine(engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        claim = WriterClaim(engine)
        lose_claims(engine)
        with exiting.connect() as ended:
            ended.exec_driver_sql("SELECT pg_advisory_lock(%(key)s)", {"key": POSTGRES_WRITER_CLAIM})
            claim._backend = ended.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            monkeypatch.setattr("indexer.writer.CLAIM_RELEASE_WAIT", 0.2)
            with pytest.raises(WriterClaimPending, match="taken again at the next step"):
                claim.ensure()
            monkeypatch.setattr("indexer.writer.CLAIM_RELEASE_WAIT", 10.0)
            threading.Timer(
                0.3,
                lambda: ended.exec_driver_sql(
                    "SELECT pg_advisory_unlock(%(key)s)", {"key": POSTGRES_WRITER_CLAIM}
                ),
            ).start()
            claim.ensure()  # waited for the "exiting" session, then took the claim again
            with pytest.raises(MirrorWriterBusy):
                WriterClaim(engine)
        claim.release()
    finally:
        exiting.dispose()
        engine.dispose()
