"""One following indexer per mirror (indexer/writer.py): a second one refuses at once with a clear
error, on SQLite and PostgreSQL, and a writer that dies never blocks the next one."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from chain.dev.devchain import DevChain
from indexer.db import open_mirror
from indexer.writer import MirrorWriterBusy, WriterClaim
from tests.integration.conftest import Deployed, on_both_backends, run_finvault

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
