"""Fixtures on a real anvil chain: one anvil per test session on a free 127.0.0.1 port.

Every test that touches the chain runs inside an ``evm_snapshot``/``evm_revert`` pair, so tests
see the same starting chain (same block numbers, same addresses) whatever ran before them.

Mirrors are SQLite files unless a test is marked :data:`on_both_backends`: then it runs once on
SQLite and once on a fresh database of the PostgreSQL server whose admin URL is in
``FINVAULT_TEST_POSTGRES_URL`` (``scripts/postgres start`` prints one; ``./scripts/test`` sets it).
Without a server those cases are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from chain.accounts import LocalSigner
from chain.contract import Artifact, load_artifact
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.registry import RegistryWriter, deploy_registry
from chain.rpc import RpcClient
from chain.tx import TxSender
from tests.integration.did_web_fixtures import DidServer, make_test_ca
from tests.integration.indexer_fixtures import postgres_database, sqlite_url
from tests.tools import ports

OWNER, ISSUER, OTHER_ISSUER, STRANGER = 0, 1, 2, 3
#: The admin URL of a PostgreSQL server the suite may create and drop databases on.
POSTGRES_URL_ENV = "FINVAULT_TEST_POSTGRES_URL"
MIRROR_BACKENDS = ("sqlite", "postgresql")
#: Runs a test once per mirror backend (through the ``mirror_backend`` fixture it depends on).
on_both_backends = pytest.mark.parametrize("mirror_backend", MIRROR_BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def anvil() -> Iterator[DevChain]:
    chain = DevChain().start()
    pid = chain.pid
    try:
        yield chain
    finally:
        chain.stop()
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # stopped by PID: nothing left behind


@pytest.fixture(scope="session")
def rpc(anvil: DevChain) -> Iterator[RpcClient]:
    with RpcClient([anvil.rpc_url]) as client:
        yield client


@pytest.fixture(scope="session")
def artifact() -> Artifact:
    return load_artifact()


@contextmanager
def chain_snapshot(rpc: RpcClient) -> Iterator[None]:
    """Whatever happens on the chain inside is reverted on the way out."""
    snapshot = rpc.call("evm_snapshot")
    try:
        yield
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True


@pytest.fixture
def clean_chain(rpc: RpcClient) -> Iterator[None]:
    with chain_snapshot(rpc):
        yield


def dev_sender(rpc: RpcClient, artifact: Artifact, account: int) -> TxSender:
    """Sends from anvil dev account ``account``."""
    return TxSender(
        rpc, LocalSigner.dev(account), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.02
    )


@pytest.fixture
def sender(rpc: RpcClient, artifact: Artifact, clean_chain: None) -> Callable[[int], TxSender]:
    """``sender(i)`` sends from anvil dev account ``i``."""
    return lambda account: dev_sender(rpc, artifact, account)


@contextmanager
def registry_in_snapshot(rpc: RpcClient, artifact: Artifact) -> Iterator[str]:
    """A fresh registry's address (lowercase), owned by dev account 0, deployed inside a chain
    snapshot that is reverted on the way out: for module-scoped fixtures, so the chain later
    modules see is the one they would have seen without this one."""
    with chain_snapshot(rpc):
        deployed = deploy_registry(dev_sender(rpc, artifact, OWNER), artifact=artifact)
        assert deployed.contract_address is not None
        yield deployed.contract_address.lower()


@dataclass
class Deployed:
    address: str
    block: int
    owner: RegistryWriter
    issuer: RegistryWriter
    other_issuer: RegistryWriter
    stranger: RegistryWriter
    as_account: Callable[[int], RegistryWriter]


@pytest.fixture
def registry(sender: Callable[[int], TxSender], artifact: Artifact) -> Deployed:
    """A fresh FinVaultRegistry owned by dev account 0, with bindings for the usual actors."""
    receipt = deploy_registry(sender(OWNER), artifact=artifact)
    assert receipt.contract_address is not None
    address = receipt.contract_address.lower()

    def as_account(account: int) -> RegistryWriter:
        return RegistryWriter(sender(account), address, artifact)

    return Deployed(
        address=address,
        block=receipt.block_number,
        owner=as_account(OWNER),
        issuer=as_account(ISSUER),
        other_issuer=as_account(OTHER_ISSUER),
        stranger=as_account(STRANGER),
        as_account=as_account,
    )


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port where nothing answers for the whole test (see :mod:`tests.tools.ports`)."""
    with ports.closed_port() as port:
        yield port


@pytest.fixture
def reserved_port() -> Iterator[int]:
    """A loopback port for a server the test starts with an explicit port (:mod:`tests.tools.ports`)."""
    with ports.reserved_port() as port:
        yield port


#: The installed command, as users run it.
FINVAULT = str(Path(sys.executable).with_name("finvault"))


def run_finvault(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``finvault ARGS`` in a subprocess, with no FINVAULT_* settings but ``env``, and no terminal
    on stdin (a prompt fails at once, as in a script, rather than wait on the one pytest runs in)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FINVAULT_")}
    return subprocess.run(
        [FINVAULT, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=timeout,
        check=False,
    )


# -- mirror databases -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_URL_ENV, "")
    if url:
        return url
    why = f"no PostgreSQL server: {POSTGRES_URL_ENV} is unset (`scripts/postgres start` prints a URL)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why}; CI must run the PostgreSQL cases", pytrace=False)
    pytest.skip(why)


@dataclass(frozen=True)
class MirrorBackend:
    """Where a test's mirror lives: a SQLite file, or a database of its own on PostgreSQL."""

    name: str
    postgres_admin_url: str | None = None

    @contextmanager
    def database(self, directory: Path, *, copy_of: str | None = None) -> Iterator[str]:
        """A new mirror database (empty, or a copy of the one at URL ``copy_of``); yields its URL."""
        if self.postgres_admin_url is not None:
            with postgres_database(self.postgres_admin_url, template=copy_of) as url:
                yield url
            return
        url = sqlite_url(directory)
        if copy_of is not None:
            shutil.copy(copy_of.removeprefix("sqlite:///"), url.removeprefix("sqlite:///"))
        yield url


@pytest.fixture(scope="module")
def mirror_backend(request: pytest.FixtureRequest) -> MirrorBackend:
    """SQLite, or the backend :data:`on_both_backends` names."""
    name = getattr(request, "param", "sqlite")
    if name == "sqlite":
        return MirrorBackend(name)
    return MirrorBackend(name, request.getfixturevalue("postgres_admin_url"))


@pytest.fixture
def mirror_url(mirror_backend: MirrorBackend, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty mirror database for one test."""
    with mirror_backend.database(tmp_path) as url:
        yield url


# -- a real browser for the node's page ---------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Long enough for a loaded CI machine, short enough that a hung page fails the test quickly.
BROWSER_TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"{CHROMIUM} is missing: the page tests need Debian's chromium package "
            "(apt-get install chromium); they are not skipped without it"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=BROWSER_TIMEOUT_MS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def ca_and_server(tmp_path: Path) -> Iterator[tuple[Path, DidServer]]:
    """A test CA's PEM file and a did:web HTTPS server on 127.0.0.1 whose certificate it signed."""
    ca_file, context = make_test_ca(tmp_path)
    server = DidServer(context)
    yield ca_file, server
    server.close()
