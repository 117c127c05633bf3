"""An oracle for a node's answers: each one re-checked against the chain at the block it names.

    python -m tests.tools.oracle [--seconds 300] [--seed N]

A real ``finvault node`` follows a fresh anvil through the fault-injecting proxy (a few percent of
calls dropped, rate-limited, failed, truncated or garbled). A driver, one step at a time, anchors
batches, revokes leaves, mines blocks, reorganises the chain (``anvil_reorg``, 1 to 80 blocks
deep, some past finality: the node must halt) and tampers with the live mirror (a deleted or
altered anchor row: the node must stop vouching at its next accumulator check). A halt or a
divergence is repaired the way an operator would, with a resync, and the node must resume by
itself. After every step the driver asks the node about a sample of every receipt issued so far,
one by one and in bulk, and the oracle checks each answer by reading anvil directly:

- a 503 must carry a documented code (``mirror_*``) and ``Retry-After``; any other 5xx is wrong;
- a verdict must carry ``as_of``. If that block is still canonical, the registry's views read at
  exactly that block (EIP-1898, by hash) must agree with it: no VALID, REVOKED or PENDING for a
  root that is not anchored there, no NOT_ANCHORED for one that is, no VALID for a revoked leaf or
  root, no REVOKED for one that is not;
- a verdict whose ``as_of`` block a later reorg replaced was judged at a state the chain no longer
  has. That is honest (a third party can tell from ``as_of``) only while the node could not yet
  know: within ``max_staleness`` of the reorg. Later, it is wrong.

Between tampering with the mirror and the node noticing, the driver asks nothing: no node can know
its disk was altered before it checks, and the check is what is under test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import re
import secrets
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
from sqlalchemy import create_engine, delete, select, update
from sqlalchemy.pool import NullPool

from chain.accounts import LocalSigner
from chain.contract import Artifact, load_artifact
from chain.core.receipt import Receipt
from chain.dev.devchain import DEV_CHAIN_ID, DevChain
from chain.errors import FinVaultError
from chain.registry import (
    RegistryReader,
    RegistryWriter,
    RevocationReason,
    leaf_revocation_id,
)
from chain.rpc import RetryPolicy, RpcClient
from chain.service.settings import load_settings
from chain.tx import TxSender
from indexer.reconcile import resync
from indexer.schema import AnchorRow
from indexer.settings import IndexerSettings
from indexer.sync import build_indexer
from tests.integration.node_fixtures import FINALITY_DEPTH, issue, register_issuer
from tests.tools.devnet import ISSUER, OWNER, deploy, node_process
from tests.tools.rpc_proxy import Fault, FaultKind, RpcProxy

ZERO_ADDRESS = "0x" + "00" * 20
#: A dev account nothing else uses: its transfers make replacement blocks differ.
BYSTANDER = LocalSigner.dev(5).address
#: The codes a node may answer 503 with (docs/operations.md): anything else is a failure.
DOCUMENTED_REFUSALS = frozenset(
    ("mirror_halted", "mirror_diverged", "mirror_drift", "mirror_stale", "mirror_busy")
)
MAX_STALENESS = 10.0
#: Transport faults between the node and anvil, each on a few percent of calls.
FAULTS = (
    Fault(FaultKind.DROP, probability=0.02),
    Fault(FaultKind.RATE_LIMITED, probability=0.02),
    Fault(FaultKind.SERVER_ERROR, probability=0.02),
    Fault(FaultKind.TRUNCATED, probability=0.01),
    Fault(FaultKind.INVALID_JSON, probability=0.01),
)
NODE_ENV = {
    "FINVAULT_CHAIN_ID": str(DEV_CHAIN_ID),
    "FINVAULT_POLL_INTERVAL": "0.1",
    "FINVAULT_RPC_TIMEOUT": "2",
    "FINVAULT_RPC_ROUNDS": "6",
    "FINVAULT_ACCUMULATOR_CHECK_INTERVAL": "0.5",
    "FINVAULT_MAX_STALENESS": str(MAX_STALENESS),
    "FINVAULT_LOG_LEVEL": "warning",
}
#: The deepest reorg the driver makes; anvil finalizes head - 64, so deeper ones pass finality.
MAX_REORG_DEPTH = 80
#: Seconds the driver waits for the node to settle after a reorg, a tampering or a repair.
SETTLE_TIMEOUT = 60.0


@dataclass
class Tally:
    """What the oracle saw."""

    answers: int = 0
    checked: int = 0  # verdicts re-checked at their as_of block
    superseded: int = 0  # verdicts judged at a block a reorg replaced, within max_staleness of it
    verdicts: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The tally as JSON-ready data."""
        return {
            "answers": self.answers,
            "checked": self.checked,
            "superseded": self.superseded,
            "verdicts": dict(self.verdicts),
            "refusals": dict(self.refusals),
            "actions": dict(self.actions),
            "violations": self.violations,
        }

    def render(self) -> str:
        """The tally for people."""
        return (
            f"oracle: {self.answers:,} answers, verdicts {_counts(self.verdicts)}; {self.checked:,} "
            f"verdicts re-checked on the chain at their as_of block, {self.superseded:,} judged at a "
            f"block a reorg replaced since (within max_staleness); refusals "
            f"{_counts(self.refusals) or 'none'}; driver {_counts(self.actions)}; "
            f"{len(self.violations)} violation(s)"
        )


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in sorted(counter.items()))


@dataclass
class Oracle:
    """Checks a node's answers against the chain behind ``rpc`` (not the node's RPC: anvil itself)."""

    rpc: RpcClient
    reader: RegistryReader
    max_staleness: float
    tally: Tally = field(default_factory=Tally)
    last_reorg: float = -math.inf

    def judge(
        self,
        receipt: Receipt,
        status_code: int,
        body: Any,
        headers: httpx.Headers,
        refusing: str | None = None,
    ) -> None:
        """One answer: a verdict (200), or a refusal (503). With ``refusing``, the node has said
        (in ``/status``) that it cannot vouch for that reason: only a 503 with that code is right."""
        self.tally.answers += 1
        if status_code == 503:
            code = body.get("error", {}).get("code") if isinstance(body, dict) else None
            if code not in DOCUMENTED_REFUSALS or "retry-after" not in headers:
                self._wrong(f"503 without a documented code and Retry-After: {body!r:.300}")
            elif refusing is not None and code != refusing:
                self._wrong(f"503 {code} from a node that reports {refusing}")
            self.tally.refusals[str(code)] += 1
            return
        if refusing is not None:
            self._wrong(f"HTTP {status_code} from a node that reports {refusing}: {body!r:.300}")
            return
        if status_code != 200:
            self._wrong(f"HTTP {status_code}: {body!r:.300}")
            return
        self.check_verdict(receipt, body)

    def check_verdict(self, receipt: Receipt, verdict: dict[str, Any]) -> None:
        """A verdict against the chain at its ``as_of`` block."""
        self.tally.verdicts[verdict["status"]] += 1
        as_of = verdict.get("as_of")
        if not isinstance(as_of, dict):
            self._wrong(f"a verdict without as_of: {verdict!r:.300}")
            return
        number, block_hash = as_of["block_number"], as_of["block_hash"]
        canonical = self.rpc.call("eth_getBlockByNumber", [hex(number), False])
        if canonical is None or canonical["hash"] != block_hash:
            if time.monotonic() - self.last_reorg > self.max_staleness + 2.0:
                now = canonical and canonical["hash"]
                self._wrong(
                    f"{verdict['status']} judged at block {number} {block_hash}, replaced more than "
                    f"{self.max_staleness:g} s ago: the chain has {now}"
                )
            self.tally.superseded += 1
            return
        at = {"blockHash": block_hash, "requireCanonical": True}
        root = bytes.fromhex(receipt.proof.root[2:])
        leaf = bytes.fromhex(receipt.proof.leaf[2:])
        anchored = self.reader.anchor_of(root, at).issuer != ZERO_ADDRESS
        status, reasons = verdict["status"], verdict["reasons"]
        where = f"{status} {reasons} for root {receipt.proof.root} as of block {number}"
        if status in ("VALID", "REVOKED", "PENDING") and not anchored:
            self._wrong(f"{where}, where the chain has no such anchor")
        if "NOT_ANCHORED" in reasons and anchored:
            self._wrong(f"{where}, where the chain has it anchored")
        if status in ("VALID", "REVOKED") and anchored:
            revoked = (
                self.reader.revocation_of(leaf_revocation_id(root, leaf), at).revoked
                or self.reader.revocation_of(root, at).revoked
            )
            if revoked != (status == "REVOKED"):
                self._wrong(f"{where}, where the chain says revoked={revoked}")
        self.tally.checked += 1

    def _wrong(self, what: str) -> None:
        self.tally.violations.append(what)
        print(f"[oracle] VIOLATION: {what}", file=sys.stderr, flush=True)


# -- the driver -----------------------------------------------------------------------------------------


@dataclass
class Driver:
    """Changes the chain and the mirror one step at a time, and asks the node after each step."""

    rpc: RpcClient
    artifact: Artifact
    registry: str
    database_url: str
    client: httpx.Client
    oracle: Oracle
    rng: random.Random
    receipts: list[Receipt] = field(default_factory=list)

    def writer(self, account: int) -> RegistryWriter:
        """A fresh binding: after a reorg the chain's nonce is lower than any cached one."""
        sender = TxSender(
            self.rpc,
            LocalSigner.dev(account),
            chain_id=DEV_CHAIN_ID,
            abi=self.artifact.abi,
            poll_interval=0.01,
        )
        return RegistryWriter(sender, self.registry, self.artifact)

    # -- steps --------------------------------------------------------------------------------------

    def anchor(self) -> None:
        issued = issue(
            self.writer(OWNER), self.writer(ISSUER), size=2, seed=secrets.token_hex(4), register=False
        )
        self.receipts += issued.receipts

    def revoke(self) -> None:
        if not self.receipts:
            return
        receipt = self.rng.choice(self.receipts)
        leaf, root = bytes.fromhex(receipt.proof.leaf[2:]), bytes.fromhex(receipt.proof.root[2:])
        proof = [bytes.fromhex(step[2:]) for step in receipt.proof.path]
        # The chain refuses if its anchor was reorganised away or it is revoked already.
        with contextlib.suppress(FinVaultError):
            self.writer(ISSUER).revoke_leaf(leaf, root, proof, RevocationReason.SUPERSEDED)

    def mine(self) -> None:
        self.rpc.call("anvil_mine", [hex(self.rng.randint(1, FINALITY_DEPTH + 6))])

    def reorg(self, depth: int) -> None:
        """Replaces the newest ``depth`` blocks; asks the node meanwhile. The new first block
        carries a transfer: empty blocks re-mined within the same second could come out identical
        to the ones they replace, and then nothing was reorganised."""
        transfer = {"from": BYSTANDER, "to": BYSTANDER, "value": "0x1"}
        self.rpc.call("anvil_reorg", [depth, [[transfer, 0]]])
        self.oracle.last_reorg = time.monotonic()
        self.oracle.tally.actions["deep reorgs" if depth > FINALITY_DEPTH else "reorgs"] += 1
        head = self.rpc.call("eth_getBlockByNumber", ["latest", False])["hash"]
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            self.ask(4)  # answers in the window before the node notices: judged by the oracle too
            status = self.client.get("/status").json()
            if status["cannot_vouch"] and status["cannot_vouch"]["code"] == "mirror_halted":
                self.ask(4, refusing="mirror_halted")  # it said it halted: it must not answer
                self.repair(status["cannot_vouch"]["reason"], "halts")
                return
            if status["vouching"] and status["as_of"]["block_hash"] == head:
                return
        raise RuntimeError(f"the node did not settle within {SETTLE_TIMEOUT:g} s of a {depth}-block reorg")

    def tamper(self) -> None:
        """Deletes or alters an anchor row in the live mirror, waits until the node stops vouching
        (asking nothing meanwhile), checks that it refuses, and repairs the mirror."""
        engine = create_engine(self.database_url, poolclass=NullPool)
        try:
            with engine.begin() as db:
                rows = db.execute(select(AnchorRow.root, AnchorRow.block_number)).all()
                if not rows:
                    return
                root, block = self.rng.choice(rows)
                if self.rng.random() < 0.5:
                    db.execute(delete(AnchorRow).where(AnchorRow.root == root))
                else:
                    db.execute(
                        update(AnchorRow).where(AnchorRow.root == root).values(count=AnchorRow.count + 1)
                    )
        finally:
            engine.dispose()
        self.oracle.tally.actions["tamperings"] += 1
        status = self.wait(
            lambda s: bool(s["cannot_vouch"]) and s["cannot_vouch"]["code"] == "mirror_diverged"
        )
        self.ask(4, refusing="mirror_diverged")  # until repaired, it must not answer
        self.repair(status["cannot_vouch"]["reason"], "divergences repaired", from_block=block)

    def repair(self, reason: str, what: str, from_block: int | None = None) -> None:
        """What an operator does: ``finvault resync --from N`` (N from the node's own message)."""
        if from_block is None:
            found = re.search(r"resync --from (\d+)", reason)
            if found is None:
                raise RuntimeError(f"the node's halt names no block to resync from: {reason}")
            from_block = int(found.group(1))
        settings = load_settings(
            IndexerSettings,
            rpc_urls=[self.rpc.urls[0]],
            registry=self.registry,
            database_url=self.database_url,
            chain_id=DEV_CHAIN_ID,
        )
        indexer = build_indexer(settings)
        try:
            resync(indexer, from_block, now=int(time.time()))
        finally:
            indexer.close()
            indexer.engine.dispose()
        self.oracle.tally.actions[what] += 1
        # The node's writer stepped aside before it said it halted (or diverged), and says so until
        # it has taken its claim back after this repair and checked the result.
        self.wait(lambda s: bool(s["vouching"]))

    def wait(self, done: Any) -> dict[str, Any]:
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while time.monotonic() < deadline:
            status: dict[str, Any] = self.client.get("/status").json()
            if done(status):
                return status
            time.sleep(0.1)
        raise RuntimeError(f"the node did not settle within {SETTLE_TIMEOUT:g} s")

    # -- questions ----------------------------------------------------------------------------------

    def ask(self, sample: int = 6, refusing: str | None = None) -> None:
        """A sample of every receipt issued so far, one by one, then a bulk request of more.
        ``refusing``: the code the node reports in ``/status``, which every answer must carry."""
        if not self.receipts:
            return
        for receipt in self.rng.sample(self.receipts, min(sample, len(self.receipts))):
            response = self.client.post(
                "/verify", content=receipt.to_json(indent=None), headers={"Content-Type": "application/json"}
            )
            self.oracle.judge(receipt, response.status_code, _json(response), response.headers, refusing)
        batch = self.rng.sample(self.receipts, min(4 * sample, len(self.receipts)))
        payload = '{"receipts":[' + ",".join(r.to_json(indent=None) for r in batch) + "]}"
        response = self.client.post(
            "/verify/bulk", content=payload, headers={"Content-Type": "application/json"}
        )
        body = _json(response)
        if response.status_code == 200 and refusing is None:
            for receipt, verdict in zip(batch, body["results"], strict=True):
                self.oracle.tally.answers += 1
                self.oracle.check_verdict(receipt, verdict)
        else:
            self.oracle.judge(batch[0], response.status_code, body, response.headers, refusing)

    def step(self, number: int) -> None:
        """One step: the schedule forces a halting reorg and a tampering early; the rest is random.

        A random deep reorg halts the node only if its mirror already holds the replaced blocks as
        final (it may not have polled since the blocks were mined): either outcome is checked."""
        if number == 4:
            # A reorg the node must refuse to repair: below blocks its mirror holds as final, which
            # takes the mirror at the head of a chain at least that deep first.
            self.rpc.call("anvil_mine", [hex(MAX_REORG_DEPTH)])
            head = int(self.rpc.call("eth_blockNumber"), 16)
            self.wait(lambda s: bool(s["vouching"]) and s["as_of"]["block_number"] >= head)
            self.reorg(self.rng.randint(FINALITY_DEPTH + 6, MAX_REORG_DEPTH))
        elif number == 8:
            self.tamper()
        else:
            roll = self.rng.random()
            if roll < 0.35:
                self.anchor()
            elif roll < 0.55:
                self.mine()
            elif roll < 0.75:
                self.reorg(self.rng.randint(1, MAX_REORG_DEPTH))
            elif roll < 0.88:
                self.revoke()
            else:
                self.tamper()
        self.ask()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def run(seconds: float, seed: int) -> Tally:
    """The whole run on a fresh anvil; returns what the oracle saw."""
    artifact = load_artifact()
    with (
        # Every state a reorg may return to stays in memory (see DevChain).
        DevChain(states_in_memory=4 * MAX_REORG_DEPTH) as chain,
        RpcClient([chain.rpc_url], policy=RetryPolicy(rounds=3, timeout=30.0)) as rpc,
        TemporaryDirectory() as tmp,
        RpcProxy(chain.rpc_url, seed=seed) as proxy,
    ):
        registry, _ = deploy(rpc, artifact)
        oracle = Oracle(rpc, RegistryReader(rpc, registry, artifact), MAX_STALENESS)
        node = node_process(proxy.url, registry, Path(tmp), NODE_ENV)
        database_url = f"sqlite:///{tmp}/mirror.db"
        with node, httpx.Client(base_url=node.url, timeout=30.0) as client:
            driver = Driver(rpc, artifact, registry, database_url, client, oracle, random.Random(seed))
            register_issuer(driver.writer(OWNER), driver.writer(ISSUER))
            rpc.call("anvil_mine", [hex(MAX_REORG_DEPTH + 20)])  # no reorg reaches the registration
            driver.anchor()
            driver.wait(lambda s: bool(s["vouching"]))
            proxy.set_faults("*", *FAULTS)
            started, number = time.monotonic(), 0
            while time.monotonic() - started < seconds:
                driver.step(number)
                number += 1
            oracle.tally.actions["steps"] = number
            oracle.tally.actions["RPC faults injected"] = sum(proxy.injected.values())
    return oracle.tally


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=None, help="random by default; printed for a re-run")
    parser.add_argument("--report", type=Path, default=None, help="also write the tally as JSON here")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else secrets.randbelow(2**32)
    print(f"[oracle] seed {seed}", file=sys.stderr, flush=True)
    tally = run(args.seconds, seed)
    print(tally.render())
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({"seed": seed, **tally.to_dict()}, indent=2))
    sys.exit(1 if tally.violations else 0)


if __name__ == "__main__":
    main()
