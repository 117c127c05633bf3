"""The node's processes: one writer and N readers forked from one supervisor after import, sharing
its pages; a child that dies is replaced; one writer at any time; readers outlive the writer only
as long as the mirror can vouch."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from chain.dev.devchain import DevChain
from chain.rpc import RpcClient
from node.worker import PROCESS_NAMES
from tests.integration.conftest import Deployed
from tests.integration.node_fixtures import (
    FINALITY_DEPTH,
    issue,
    post_receipt,
    start_node,
    verdict_when,
    verify_response,
    wait_for,
)
from tests.tools.memory import tree_memory
from tests.tools.rpc_proxy import Fault, FaultKind, RpcProxy

pytestmark = pytest.mark.slow  # each test here takes a second or more

#: The children of a node with two readers, by name.
EXPECTED = sorted([PROCESS_NAMES["writer"], PROCESS_NAMES["reader"], PROCESS_NAMES["reader"]])


def children(pid: int) -> dict[int, str]:
    """The node's child processes and their names (``/proc/PID/comm``)."""
    found: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for pid_text in (task / "children").read_text().split():
            try:
                found[int(pid_text)] = Path(f"/proc/{pid_text}/comm").read_text().strip()
            except OSError:  # gone meanwhile
                continue
    return found


def roles(pid: int) -> list[str]:
    """The names of the node's children, sorted."""
    return sorted(children(pid).values())


def child(node_pid: int, role: str) -> int:
    """One child of the node in ``role`` (``writer`` or ``reader``)."""
    return next(pid for pid, name in children(node_pid).items() if name == PROCESS_NAMES[role])


def served_connections(pid: int, port: int) -> int:
    """Established TCP connections to ``port`` held by process ``pid`` (its socket inodes matched
    against the kernel's connection tables)."""
    inodes = {
        os.readlink(fd)[8:-1]
        for fd in Path(f"/proc/{pid}/fd").iterdir()
        if os.readlink(fd).startswith("socket:[")
    }
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port, state, inode = int(fields[1].rsplit(":", 1)[1], 16), fields[3], fields[9]
            count += local_port == port and state == "01" and inode in inodes
    return count


def kill_and_await_replacement(node_pid: int, role: str) -> None:
    """SIGKILLs one child in ``role`` and waits until the node has its full set of children again."""
    victim = child(node_pid, role)
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: children(node_pid),
        lambda found: victim not in found and sorted(found.values()) == EXPECTED,
        what=f"a replacement {role} process",
    )


@pytest.mark.slow(seconds=8)
def pinned_cpus(node_pid: int) -> list[set[int]]:
    """The CPUs each reader's threads may run on, by reader (sorted); the writer's must be all."""
    allowed = os.sched_getaffinity(0)
    by_role: dict[str, list[set[int]]] = {"reader": [], "writer": []}
    for pid, name in children(node_pid).items():
        role = "reader" if name == PROCESS_NAMES["reader"] else "writer"
        threads = [os.sched_getaffinity(int(task.name)) for task in Path(f"/proc/{pid}/task").iterdir()]
        assert all(each == threads[0] for each in threads), (name, threads)  # the process's threads alike
        by_role[role].append(threads[0])
    assert by_role["writer"] == [allowed]  # never pinned
    return sorted(by_role["reader"], key=sorted)


def expected_pins(readers: int) -> list[set[int]]:
    """One CPU each when the machine has CPUs enough, else no pinning."""
    allowed = sorted(os.sched_getaffinity(0))
    if readers > len(allowed):
        return [set(allowed)] * readers
    return [{cpu} for cpu in allowed[:readers]]


def test_forked_workers_serve_share_pages_and_replace_the_dead(
    anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path
) -> None:
    issued = issue(registry.owner, registry.issuer, seed="prefork")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    env = {"FINVAULT_WORKERS": "2"}
    with (
        start_node(anvil.rpc_url, issued.registry, tmp_path, env=env) as node,
        httpx.Client(base_url=node.url, timeout=30) as client,
    ):
        assert node.pid is not None
        assert roles(node.pid) == EXPECTED  # one writer, two readers
        verdict_when(client, issued.receipts[0], "VALID")

        # Forked after import: most of each child's pages are the parent's, so the tree's PSS (each
        # shared page split between its sharers) is far below its summed RSS.
        memory = tree_memory(node.pid)
        assert memory.pss < 0.7 * memory.rss, memory

        # Each reader listens on its own socket (SO_REUSEPORT): connections are spread over both,
        # where on one shared socket the reader awake first took nearly all of them.
        port = int(node.url.rsplit(":", 1)[1])
        clients = [httpx.Client(base_url=node.url) for _ in range(16)]
        try:
            for held in clients:
                assert held.get("/health").status_code == 200  # each keeps its connection open
            readers = [pid for pid, name in children(node.pid).items() if name == PROCESS_NAMES["reader"]]
            assert all(served_connections(pid, port) > 0 for pid in readers)
        finally:
            for held in clients:
                held.close()

        # Pinned (FINVAULT_PIN_READERS, on): each reader, every thread of it, on a CPU of its own.
        assert pinned_cpus(node.pid) == expected_pins(2)

        # A reader killed: another is forked, on its predecessor's CPU, and the node keeps answering.
        kill_and_await_replacement(node.pid, "reader")
        for _ in range(6):  # fresh connections: the kernel spreads them over both readers
            with httpx.Client(base_url=node.url) as fresh:
                assert post_receipt(fresh, issued.receipts[1])["status"] == "VALID"
        assert pinned_cpus(node.pid) == expected_pins(2)

        # The writer killed: another is forked (the next test shows what readers answer meanwhile),
        # and there is again exactly one writer.
        kill_and_await_replacement(node.pid, "writer")
        back = verdict_when(client, issued.receipts[2], "VALID")
        assert back["as_of"]["block_number"] >= FINALITY_DEPTH
        assert client.get("/ready").json() == {"ready": True, "reasons": []}
        assert roles(node.pid) == EXPECTED


#: How long readers vouch for the last committed state once no writer follows the chain.
STALENESS = 4.0


@pytest.mark.slow(seconds=15)
def test_readers_outlive_a_killed_writer_until_the_mirror_is_stale(
    anvil: DevChain, registry: Deployed, rpc: RpcClient, tmp_path: Path
) -> None:
    """Under load, the writer is killed while the RPC endpoint is down, so its successors cannot
    start (each checks the chain first) and are retried with growing pauses. The readers keep
    answering from the last committed state until the mirror's last catch-up is
    ``max_staleness`` old, then refuse with 503 mirror_stale, never a verdict from a mirror nobody
    follows; once the endpoint is back, a writer starts and verdicts resume."""
    issued = issue(registry.owner, registry.issuer, seed="prefork-stale")
    rpc.call("anvil_mine", [hex(FINALITY_DEPTH)])
    env = {
        "FINVAULT_WORKERS": "2",
        "FINVAULT_RPC_ROUNDS": "1",
        "FINVAULT_RPC_TIMEOUT": "1",
        "FINVAULT_MAX_STALENESS": str(STALENESS),
    }
    answers: list[tuple[float, int, dict[str, Any]]] = []
    stop = threading.Event()

    def load(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as held:
            while not stop.is_set():
                response = verify_response(held, issued.receipts[0])
                answers.append((time.monotonic(), response.status_code, response.json()))

    with (
        RpcProxy(anvil.rpc_url) as proxy,
        start_node(proxy.url, issued.registry, tmp_path, env=env) as node,
        httpx.Client(base_url=node.url, timeout=30) as client,
    ):
        assert node.pid is not None
        verdict_when(client, issued.receipts[0], "VALID")
        clients = [threading.Thread(target=load, args=(node.url,)) for _ in range(2)]
        for thread in clients:
            thread.start()
        try:
            time.sleep(0.5)
            proxy.set_faults("*", Fault(FaultKind.DROP))
            os.kill(child(node.pid, "writer"), signal.SIGKILL)
            killed = time.monotonic()
            wait_for(
                lambda: answers[-1], lambda answer: answer[1] == 503, timeout=STALENESS + 10, what="a refusal"
            )
            time.sleep(1.0)  # refusals go on while no writer follows the chain
            assert client.get("/ready").status_code == 503
            refusing_since = time.monotonic()
            proxy.behave()
            verdict_when(client, issued.receipts[0], "VALID", timeout=60)
        finally:
            stop.set()
            for thread in clients:
                thread.join(30)
        assert roles(node.pid) == EXPECTED

    after_kill = [(at, status, body) for at, status, body in answers if killed <= at < refusing_since]
    assert any(status == 200 for _, status, _ in after_kill), (
        "the readers stopped before the mirror was stale"
    )
    for at, status, body in after_kill:
        if status == 200:
            assert body["status"] == "VALID"
            assert body["as_of"]["lag_seconds"] <= STALENESS  # never beyond what the mirror vouched for
            assert at - killed < STALENESS + 1.0
        else:
            assert (status, body["error"]["code"]) == (503, "mirror_stale"), body
            assert "status" not in body
    first_refusal = next(at for at, status, _ in after_kill if status == 503)
    assert all(status == 503 for at, status, _ in after_kill if at > first_refusal)  # no flapping
