"""The end-to-end demo behind ``./scripts/demo``: a throwaway dev chain with FinVault on it.

It wires the three roles together (issuer, indexer, node), so it lives here rather than in any of
them: ``.venv/bin/python scripts/demo.py [--check] [--state-dir DIR] [--chain-port PORT]``.

Each run starts from scratch (anvil keeps its state in memory): deploy the registry, register a
demo issuer and its signing key, issue ~50 certificates through the issuer service (one anchor
transaction) and 3 Open Badges 3.0 from the built-in ``ob3`` template (a second batch, secured with
Data Integrity, receipts in ``badges/``), index the chain into a SQLite mirror, and verify every
receipt against both the mirror and the chain, then start the verification node on 127.0.0.1:8000
and verify through its HTTP API, and the issuer API on 127.0.0.1:8100 (its VC-API issuance and
status lists checked over HTTP too). ``.finvault/demo/env.json`` is written once everything is
ready, so other tools can attach.

Status lists are on: the issuer API's port is reserved first, so its URL is known before sealing
and every demo credential's ``credentialStatus`` names ``<issuer API>/status/1``, which it serves.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click
import httpx
from fastapi import FastAPI

from chain.accounts import LocalSigner
from chain.contract import load_artifact
from chain.core.encoding import hex0x
from chain.core.sd_jwt import b64url_decode, encode_disclosure
from chain.core.secured import leaf_of
from chain.core.signing import PrivateKey, public_key_info
from chain.core.status_list import read_entry
from chain.core.verify import ChainFacts, Status, verify
from chain.dev.devchain import DEV_CHAIN_ID, DevChain, free_port
from chain.errors import ConfigError, FinVaultError
from chain.keys import encrypt_private_key, generate_private_key
from chain.registry import RegistryReader, RegistryWriter, deploy_registry
from chain.rpc import RpcClient
from chain.rpc_facts import RpcFacts
from chain.service.files import private_dir, replace_secret_file, write_secret_file
from chain.service.settings import load_settings
from chain.service.signals import wait_for_shutdown
from chain.service.web import GracefulServer, server_config
from chain.tx import TxSender
from indexer.db import open_mirror
from indexer.reader import MirrorFacts
from indexer.sync import Indexer
from issuer.api import STATUS_MAX_AGE, IssuerApi, create_app
from issuer.api_keys import create_api_key
from issuer.intake import read_input
from issuer.ob3 import OB3_CRYPTOSUITE
from issuer.scheduler import BatchScheduler
from issuer.service import IssuerConfig, IssuerService, ingest
from issuer.settings import IssuerApiSettings
from issuer.status import STATUS_DIR
from issuer.store import Store
from issuer.template import Template, load_template, template_for
from node.server import bind_socket, start_node_thread
from node.settings import NodeSettings

DEMO_ISSUER_NAME = "FinVault Demo University"
DEMO_ISSUER_URI = "https://demo-university.example/finvault"
OWNER_ACCOUNT = 0
ISSUER_ACCOUNT = 1
#: anvil reports blocks older than head - 64 as finalized; mining past that makes anchors final.
ANVIL_FINALITY_DEPTH = 64
DEMO_CERTIFICATES = 50
#: Receipts link here; the demo's verification node serves it.
DEMO_NODE_PORT = 8000
DEMO_NODE_URL = f"http://127.0.0.1:{DEMO_NODE_PORT}"
#: The issuer API (VC-API issuance, status lists); its real URL is known before sealing.
DEMO_ISSUER_API_PORT = 8100
#: Seconds between the issuer API's batches: a credential issued through it is anchored this soon.
DEMO_BATCH_INTERVAL = 10.0
#: Scopes of the demo's API key. ``revoke`` too: revoking is what changes a status list, and on a
#: throwaway chain, from a file only its owner reads, the key is worth nothing to anyone else.
DEMO_API_KEY_SCOPES = ("issue", "read", "revoke")
DEMO_TEMPLATE = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "type": ["VerifiableCredential", "DegreeCredential"],
    "id": "urn:demo-university:certificate:{{id}}",
    "issuer": {"id": "did:web:demo-university.example", "name": DEMO_ISSUER_NAME},
    "validFrom": {"$datetime": "issued"},
    "credentialSubject": {
        "name": "{{name}}",
        "degree": {"type": "BachelorDegree", "name": "{{degree}}"},
        "grade": "{{grade}}",
        "credits": {"$int": "credits"},
        "courses": ["{{course_1}}", "{{course_2}}", "{{course_3}}"],
    },
}
#: Open Badges 3.0 issued beside the degrees, from the built-in ``ob3`` template (docs/usage.md).
DEMO_BADGES = 3
_BADGES = [
    ("python-101", "Python 101", "Writes, tests and documents small Python programs.",
     "Passed the final project: a tested command-line tool, reviewed by two tutors."),
    ("research-methods", "Research Methods", "Designs a study and analyses its data honestly.",
     "Submitted a pre-registered study with its data and analysis."),
    ("peer-mentor", "Peer Mentor", "Mentored first-year students for a full term.",
     "Twelve mentoring sessions, logged and confirmed by the mentees."),
]  # fmt: skip
_FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "John", "Radia", "Tim"]
_LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov"]
_DEGREES = ["BSc Computer Science", "BSc Mathematics", "BA Philosophy", "BEng Electronics", "BSc Physics"]
_GRADES = ["First Class", "Upper Second", "Lower Second", "Pass"]
_COURSES = ["Algorithms", "Logic", "Linear Algebra", "Ethics", "Signals", "Quantum Mechanics", "Statistics"]


def write_demo_students(path: Path, count: int) -> Path:
    """A CSV of ``count`` made-up graduates, one row per certificate (private: personal data)."""
    with open(path, "w", newline="", opener=lambda name, flags: os.open(name, flags, 0o600)) as handle:
        os.fchmod(handle.fileno(), 0o600)
        writer = csv.writer(handle)
        writer.writerow(
            ["id", "name", "degree", "grade", "credits", "issued", "course_1", "course_2", "course_3"]
        )
        for i in range(count):
            name = f"{_FIRST[i % len(_FIRST)]} {_LAST[i // len(_FIRST) % len(_LAST)]}"
            courses = [_COURSES[(i + k) % len(_COURSES)] for k in range(3)]
            row = [
                f"demo-{i + 1:04d}",
                name,
                _DEGREES[i % 5],
                _GRADES[i % 4],
                180 + 60 * (i % 2),
                "2026-07-01",
            ]
            writer.writerow(row + courses)
    return path


def write_demo_badges(path: Path, count: int) -> Path:
    """A CSV of ``count`` Open Badges for the ``ob3`` template: recipients by DID, e-mail address
    (hashed into the badge) and student id (hashed) in turn (private: personal data)."""
    with open(path, "w", newline="", opener=lambda name, flags: os.open(name, flags, 0o600)) as handle:
        os.fchmod(handle.fileno(), 0o600)
        writer = csv.writer(handle)
        writer.writerow(
            ["id", "issuer_name", "issuer_url", "issued", "achievement_id", "achievement_name",
             "achievement_description", "criteria_narrative", "recipient_id", "recipient_email",
             "recipient_student_id"]
        )  # fmt: skip
        for i in range(count):
            slug, name, description, criteria = _BADGES[i % len(_BADGES)]
            recipient = ["", "", ""]
            recipient[i % 3] = [f"did:example:graduate-{i + 1}", f"graduate{i + 1}@demo-university.example",
                                f"S{2026_0000 + i + 1}"][i % 3]  # fmt: skip
            writer.writerow(
                [f"badge-{i + 1:04d}", DEMO_ISSUER_NAME, DEMO_ISSUER_URI, "2026-07-01",
                 f"{DEMO_ISSUER_URI}/achievements/{slug}", name, description, criteria, *recipient]
            )  # fmt: skip
    return path


@dataclass(frozen=True)
class DemoResult:
    """Where a finished demo left things: its chain, registry, issuer account, signing key and receipts."""

    rpc_url: str
    chain_id: int
    registry: str
    issuer: str
    key_id: str
    receipts_dir: Path
    #: The Open Badges' receipts (a batch of their own).
    badges_dir: Path


def _reserve_port(preferred: int) -> socket.socket:
    """A socket bound (not yet listening) to 127.0.0.1:``preferred``, or to a free port if that
    one is taken: what it is bound to can be named before anything serves on it."""
    try:
        return bind_socket("127.0.0.1", preferred)
    except ConfigError:
        return bind_socket("127.0.0.1", 0)


@contextmanager
def _serve_in_thread(app: FastAPI, sock: socket.socket, settings: IssuerApiSettings) -> Iterator[None]:
    """Serves ``app`` on ``sock`` from a daemon thread of this process (uvicorn, the same
    configuration as ``finvault issuer-api serve``) until the block ends; the app's lifespan runs
    its scheduler. Returns once it accepts connections."""
    config = server_config(app, log_level="warning", limits=settings.connection_limits)
    server = GracefulServer(config)

    def run() -> None:
        with sock:
            server.run(sockets=[sock])

    thread = threading.Thread(target=run, name="finvault-issuer-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(10)
            raise FinVaultError("the issuer API did not start", code="startup_failed")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(30)


def _issuer_api_app(service: IssuerService, template: Template, settings: IssuerApiSettings) -> FastAPI:
    """The issuer API over the demo's own service and store, batching what it is sent every
    ``DEMO_BATCH_INTERVAL`` seconds (as ``finvault issuer-api serve`` does, without webhooks)."""
    scheduler = BatchScheduler(
        service,
        interval=DEMO_BATCH_INTERVAL,
        threshold=service.config.max_batch_size,
        check_every=min(DEMO_BATCH_INTERVAL, 5.0),
    )
    api = IssuerApi(
        service.store,
        template,
        service.config.out_dir,
        service=service,
        scheduler=scheduler,
        chain_lock=scheduler.lock,
    )
    return create_app(settings, api)


def _port_or_free(preferred: int) -> int:
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", preferred))
        return preferred
    except OSError:
        return free_port()


def run_demo(
    state_dir: Path, *, chain_port: int = 8545, check: bool = False, say: Callable[[str], None] = print
) -> DemoResult:
    """Runs the demo; in check mode returns once verified, else serves until Ctrl-C/SIGTERM."""
    if state_dir.exists():
        shutil.rmtree(state_dir)
    private_dir(state_dir)  # the issuer's key, store, students and receipts live here
    key_dir, receipts_dir = private_dir(state_dir / "issuer"), private_dir(state_dir / "receipts")
    badges_dir = private_dir(state_dir / "badges")
    issuer_db = f"sqlite:///{state_dir / 'issuer.db'}"
    # Reserved before sealing: the credentials' status entries name the lists at this URL.
    issuer_api_socket = _reserve_port(DEMO_ISSUER_API_PORT)
    issuer_api_port = int(issuer_api_socket.getsockname()[1])
    issuer_api_url = f"http://127.0.0.1:{issuer_api_port}"
    issuer_api_settings = load_settings(
        IssuerApiSettings,
        issuer_db=issuer_db,
        node_url=DEMO_NODE_URL,
        issuer_status_url=f"{issuer_api_url}/status",
        issuer_api_port=issuer_api_port,
        issuer_batch_interval=DEMO_BATCH_INTERVAL,
    )

    with (
        issuer_api_socket,
        DevChain(port=_port_or_free(chain_port), log_path=state_dir / "anvil.log") as chain,
    ):
        say(f"dev chain: anvil on {chain.rpc_url} (chain id {DEV_CHAIN_ID})")
        rpc = RpcClient([chain.rpc_url])
        rpc.require_chain_id(DEV_CHAIN_ID)
        artifact = load_artifact()

        def sender(account: int) -> TxSender:
            return TxSender(
                rpc, LocalSigner.dev(account), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.05
            )

        owner = sender(OWNER_ACCOUNT)
        deployed = deploy_registry(owner, artifact=artifact)
        assert deployed.contract_address is not None
        registry = deployed.contract_address.lower()
        say(f"registry: deployed at {registry} in block {deployed.block_number} ({deployed.gas_used:,} gas)")

        issuer_registry = RegistryWriter(sender(ISSUER_ACCOUNT), registry, artifact)
        issuer = issuer_registry.sender.signer.address
        RegistryWriter(owner, registry, artifact).register_issuer(issuer, DEMO_ISSUER_NAME, DEMO_ISSUER_URI)
        say(f"issuer: registered {issuer} as {DEMO_ISSUER_NAME!r}")

        key = generate_private_key("ed25519")
        passphrase = secrets.token_urlsafe(24)
        write_secret_file(key_dir / "passphrase", passphrase.encode() + b"\n")
        write_secret_file(key_dir / "signing-key.pem", encrypt_private_key(key, passphrase))
        info = public_key_info(key)
        issuer_registry.add_key(info.key_id, int(info.algorithm), info.der)
        say(f"issuer key: {hex0x(info.key_id)} ({info.algorithm.label}) registered on-chain")

        store = Store.open(issuer_db)
        template_path = state_dir / "degree-template.json"
        template_path.write_text(json.dumps(DEMO_TEMPLATE, indent=2) + "\n")
        students = write_demo_students(state_dir / "students.csv", DEMO_CERTIFICATES)
        report = ingest(store, read_input(students, load_template(template_path)))
        say(f"intake: {report.accepted} certificates from {students.name} stored in the issuer store")
        config = IssuerConfig(
            out_dir=receipts_dir,
            node_url=DEMO_NODE_URL,
            qr_codes=True,  # a few: at once
            status_base_url=issuer_api_settings.issuer_status_url,
        )
        service = IssuerService(store, issuer_registry, key, config)
        for batch in service.run_once():
            say(f"batch: {batch.leaf_count} certificates anchored in block {batch.block_number}")
        receipts = sorted(receipts_dir.glob("*.json"))
        say(f"receipts: {len(receipts)} written to {receipts_dir}, with QR codes")
        lists = _check_status_entries(receipts, f"{config.status_base_url}/")
        say(f"status lists: {', '.join(lists)} published to {receipts_dir / STATUS_DIR}, an entry each")
        badges = _issue_badges(state_dir, store, issuer_registry, key, badges_dir, say)

        rpc.call("anvil_mine", [hex(ANVIL_FINALITY_DEPTH)])
        mirror_url = f"sqlite:///{state_dir / 'mirror.db'}"
        indexer = Indexer(
            open_mirror(mirror_url),
            rpc,
            chain_id=DEV_CHAIN_ID,
            registry=registry,
            start_block=deployed.block_number,
        )
        indexer.check_startup()
        synced = indexer.sync()
        indexer.close()
        say(f"mirror: {synced.events_indexed} events indexed into {state_dir / 'mirror.db'}")

        now = datetime.now(UTC)
        sources: dict[str, ChainFacts] = {
            "mirror": MirrorFacts(indexer.engine, DEV_CHAIN_ID, registry),
            "chain": RpcFacts(RegistryReader(rpc, registry, artifact), DEV_CHAIN_ID),
        }
        for source, facts in sources.items():
            statuses = {verify(path.read_bytes(), facts, now).status for path in receipts}
            if statuses != {Status.VALID}:
                raise FinVaultError(f"demo check failed: receipts from the {source} are {sorted(statuses)}")
            say(f"check: all {len(receipts)} receipts VALID against the {source}")
            if {verify(path.read_bytes(), facts, now).status for path in badges} != {Status.VALID}:
                raise FinVaultError(f"demo check failed: an Open Badge is not VALID against the {source}")
            say(f"check: all {len(badges)} Open Badges VALID against the {source}")
        forged = forge_grade(receipts[0].read_text())
        if verify(forged, sources["mirror"], now).status is not Status.INVALID:
            raise FinVaultError("demo check failed: a tampered receipt was not rejected")
        write_secret_file(state_dir / "tampered.json", forged.encode())
        say(f"check: {state_dir / 'tampered.json'}, its grade disclosure rewritten, is INVALID")

        node_port = _port_or_free(DEMO_NODE_PORT)
        node_settings = load_settings(
            NodeSettings,
            rpc_urls=[chain.rpc_url],
            chain_id=DEV_CHAIN_ID,
            registry=registry,
            database_url=mirror_url,
            start_block=deployed.block_number,
            port=node_port,
            reconcile_interval=0,
            log_level="warning",
        )
        with ExitStack() as running:
            node = running.enter_context(start_node_thread(node_settings))
            say(f"node: serving {node.url} (OpenAPI at {node.url}/openapi.json)")
            if node_port != DEMO_NODE_PORT:
                say(f"note: port {DEMO_NODE_PORT} was busy; receipts' links name {DEMO_NODE_URL}")
            _check_over_http(node.url, receipts[0], forged, say)

            api_key_file = state_dir / "issuer-api.key"
            token = create_api_key(store, "demo", DEMO_API_KEY_SCOPES)
            write_secret_file(api_key_file, token.encode() + b"\n")
            app = _issuer_api_app(service, load_template(template_path), issuer_api_settings)
            running.enter_context(_serve_in_thread(app, issuer_api_socket, issuer_api_settings))
            scopes = " ".join(DEMO_API_KEY_SCOPES)
            say(f"issuer API: serving {issuer_api_url}; an API key ({scopes}) in {api_key_file}")
            if issuer_api_port != DEMO_ISSUER_API_PORT:
                say(
                    f"note: port {DEMO_ISSUER_API_PORT} was busy; status lists are at {issuer_api_url}/status"
                )
            _check_issuer_api(issuer_api_url, token, f"{config.status_base_url}/", say)

            result = DemoResult(
                chain.rpc_url, DEV_CHAIN_ID, registry, issuer, hex0x(info.key_id), receipts_dir, badges_dir
            )
            env = {
                "rpc_url": result.rpc_url,
                "chain_id": result.chain_id,
                "registry": result.registry,
                "node_url": node.url,
                "receipts_dir": str(receipts_dir.resolve()),
                "badges_dir": str(badges_dir.resolve()),
                "mirror_db": f"sqlite:///{(state_dir / 'mirror.db').resolve()}",
                "issuer_db": f"sqlite:///{(state_dir / 'issuer.db').resolve()}",
                "issuer_api_url": issuer_api_url,
                "issuer_api_key_file": str(api_key_file.resolve()),
            }
            # Whole or not at all: other tools poll for this file and read it as soon as it exists.
            replace_secret_file(state_dir / "env.json", (json.dumps(env, indent=2) + "\n").encode())
            say(f"ready: {state_dir / 'env.json'}")
            if not check:
                leaf = hex0x(leaf_of(json.loads(receipts[0].read_bytes())["credential"]))
                say(f"open:  {node.url}/v/{leaf}  (then drop {receipts[0]})")
                say(f"badge: drop {badges[0]} on {node.url} to see an Open Badge's achievement")
                curl = f"curl -sS -H 'Content-Type: application/json' --data-binary @{receipts[0]}"
                say(f"curl:  {curl} {node.url}/verify")
                say(f"curl:  curl -sS {issuer_api_url}/status/1   (the status list: public, no key)")
                say("serving until Ctrl-C")
                wait_for_shutdown()
        return result


def _issue_badges(
    state_dir: Path,
    store: Store,
    registry: RegistryWriter,
    key: PrivateKey,
    badges_dir: Path,
    say: Callable[[str], None],
) -> list[Path]:
    """Issues :data:`DEMO_BADGES` Open Badges 3.0 from the built-in ``ob3`` template into a batch of
    their own (the degrees' service secures with SD-JWT; a badge is always whole under a Data
    Integrity proof, whatever the service's securing); returns their receipts."""
    badges_csv = write_demo_badges(state_dir / "badges.csv", DEMO_BADGES)
    report = ingest(store, read_input(badges_csv, template_for("ob3")))
    if report.rejected or report.accepted != DEMO_BADGES:
        raise FinVaultError(f"demo check failed: badge intake rejected {[str(r) for r in report.rejected]}")
    service = IssuerService(store, registry, key, IssuerConfig(out_dir=badges_dir, node_url=DEMO_NODE_URL))
    for batch in service.run_once():
        say(f"batch: {batch.leaf_count} Open Badges 3.0 anchored in block {batch.block_number}")
    badges = sorted(badges_dir.glob("*.json"))
    suites = {json.loads(path.read_bytes())["credential"]["proof"]["cryptosuite"] for path in badges}
    if len(badges) != DEMO_BADGES or suites != {OB3_CRYPTOSUITE}:
        raise FinVaultError(f"demo check failed: {len(badges)} badge receipts, secured with {sorted(suites)}")
    say(f"badges: {len(badges)} receipts written to {badges_dir} (Data Integrity, {OB3_CRYPTOSUITE})")
    return badges


def forge_grade(receipt_text: str) -> str:
    """The receipt with its SD-JWT's ``grade`` disclosure rewritten to "A+" (same salt, new value):
    what a holder who wants a better grade would try. Its digest is no longer in the signed payload."""
    receipt = json.loads(receipt_text)
    jwt, *disclosures, _ = receipt["credential"].split("~")
    for index, disclosure in enumerate(disclosures):
        salt, name, *value = json.loads(b64url_decode(disclosure))
        if name == "grade" and value:
            disclosures[index] = encode_disclosure(salt, "A+", "grade")
    receipt["credential"] = "~".join((jwt, *disclosures, ""))
    return json.dumps(receipt)


def _check_over_http(url: str, receipt: Path, forged: str, say: Callable[[str], None]) -> None:
    """The demo's end-to-end check: the node's HTTP API says VALID, and INVALID for a forgery."""
    with httpx.Client(base_url=url, timeout=30.0) as http:
        for body, expected in ((receipt.read_bytes(), "VALID"), (forged.encode(), "INVALID")):
            response = http.post("/verify", content=body, headers={"Content-Type": "application/json"})
            status = response.json().get("status") if response.status_code == 200 else response.status_code
            if status != expected:
                raise FinVaultError(f"demo check failed: POST /verify answered {status}, expected {expected}")
    say(f"check: POST {url}/verify says VALID for {receipt.name}, INVALID for the tampered copy")


def _check_status_entries(receipts: list[Path], list_prefix: str) -> list[str]:
    """Every receipt's credential names a revocation entry in a list under ``list_prefix``; returns
    the lists named, each published (with its companion) beside the receipts."""
    lists: set[str] = set()
    for path in receipts:
        jwt = json.loads(path.read_bytes())["credential"].split("~")[0]
        entry = read_entry(json.loads(b64url_decode(jwt.split(".")[1])))
        if entry is None or not entry[0].startswith(list_prefix):
            raise FinVaultError(f"demo check failed: {path.name} has no status entry under {list_prefix}")
        lists.add(entry[0].removeprefix(list_prefix))
    directory = receipts[0].parent / STATUS_DIR
    for name in lists:
        if not (directory / f"{name}.json").is_file() or not (directory / f"{name}.leaves.json").is_file():
            raise FinVaultError(f"demo check failed: status list {name} was not published to {directory}")
    return sorted(lists, key=int)


#: What the check asks the issuer API to issue (``issuer`` becomes the issuer's own DID).
DEMO_VC_API_CREDENTIAL = {
    "@context": ["https://www.w3.org/ns/credentials/v2"],
    "type": ["VerifiableCredential"],
    "issuer": "did:example:replaced-by-the-issuers-own",
    "validFrom": "2026-07-01T00:00:00Z",
    "credentialSubject": {"id": "did:example:ada", "name": "Ada Lovelace"},
}


def _check_issuer_api(url: str, token: str, list_prefix: str, say: Callable[[str], None]) -> None:
    """The issuer API over HTTP: list 1 served with its cache headers (and a 304 for its ETag), and
    ``POST /credentials/issue`` with the demo's key answers 201 with a secured credential that has
    its own status entry."""
    cache_control = f"public, max-age={STATUS_MAX_AGE}"
    with httpx.Client(base_url=url, timeout=30.0) as http:
        listed = http.get("/status/1")
        etag = listed.headers.get("etag")
        if listed.status_code != 200 or listed.headers.get("cache-control") != cache_control or not etag:
            raise FinVaultError(
                f"demo check failed: GET /status/1 answered {listed.status_code} "
                f"(Cache-Control {listed.headers.get('cache-control')!r}, ETag {etag!r})"
            )
        if http.get("/status/1", headers={"If-None-Match": etag}).status_code != 304:
            raise FinVaultError("demo check failed: GET /status/1 with its ETag did not answer 304")
        say(f"check: GET {url}/status/1 is 200 ({cache_control}, ETag), 304 for its ETag")
        issued = http.post(
            "/credentials/issue",
            json={"credential": DEMO_VC_API_CREDENTIAL, "options": {}},
            headers={"Authorization": f"Bearer {token}"},
        )
        if issued.status_code != 201:
            raise FinVaultError(f"demo check failed: POST /credentials/issue answered {issued.status_code}")
        credential = issued.json()["verifiableCredential"]
        entry = read_entry(credential)
        if entry is None or not entry[0].startswith(list_prefix) or "proof" not in credential:
            raise FinVaultError("demo check failed: the issued credential lacks its proof or status entry")
    say(f"check: POST {url}/credentials/issue is 201: {credential['id']}, secured, queued")


@click.command()
@click.option("--check", is_flag=True, help="Run the flow non-interactively and exit 0 only if it verified.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".finvault/demo"),
    show_default=True,
)
@click.option("--chain-port", type=int, default=8545, show_default=True)
def main(check: bool, state_dir: Path, chain_port: int) -> None:
    """Start a dev chain, deploy the registry, issue demo certificates, index and verify them."""
    try:
        run_demo(state_dir, chain_port=chain_port, check=check, say=click.echo)
    except FinVaultError as exc:
        click.echo(f"demo: error: {exc.diagnostics()}", err=True)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
    if check:
        click.echo("demo check passed")


if __name__ == "__main__":
    main()
