"""Chains full of registry events, an independent reading of them, and mirror comparisons.

- :class:`BlockBuilder` fills blocks on anvil fast: anvil's unlocked dev accounts sign
  (``eth_sendTransaction``; signing in Python costs ~7 ms a transaction), nonces and gas are
  explicit, a block's transactions go out as one JSON-RPC batch, and automine is off so each
  ``mine()`` is exactly one block.
- :func:`populate` writes a history with every event kind; ``revokeLeaves`` multiproofs make
  LeafRevoked the bulk (~28.6k gas a leaf, 200 leaves a transaction).
- :func:`reference_rows` reads the chain back WITHOUT ``indexer.decode``: raw ``eth_getLogs`` decoded
  by ``ContractAbi.decode_event`` (eth_abi), mapped by column name onto the mirror's tables.

Also used by ``bench/indexer.py``, so nothing here needs the pytest fixtures to work.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import cycle
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, make_url, select
from sqlalchemy.pool import NullPool

from chain.accounts import LocalSigner
from chain.contract import Artifact, ContractAbi
from chain.core.encoding import hex0x
from chain.core.merkle import MerkleTree
from chain.core.signing import public_key_info
from chain.dev.devchain import DEV_CHAIN_ID
from chain.keys import generate_private_key
from chain.registry import RegistryReader, RevocationReason, deploy_registry
from chain.rpc import RetryPolicy, RpcClient
from chain.tx import TxSender
from indexer.db import open_mirror
from indexer.schema import Base, BlockRow, CheckpointRow
from indexer.sync import Indexer

OWNER, ISSUER_A, ISSUER_B, ISSUER_C, ISSUER_D, STRANGER = range(6)
#: Small and fast, as the brief for fault tests asks: many quick rounds instead of long waits.
FAST_RETRY = RetryPolicy(rounds=8, backoff_initial=0.01, backoff_max=0.05, timeout=1.0)
MAX_FEE = 1_000 * 10**9
#: Gas limits generous enough for any argument size used here; anvil charges only what is used.
GAS = {
    "registerIssuer": 300_000,
    "setIssuerActive": 100_000,
    "addKey": 300_000,
    "revokeKey": 100_000,
    "anchor": 200_000,
    "revokeRoot": 150_000,
    "revokeLeaf": 200_000,
}
GAS_PER_REVOKED_LEAF = 32_000
REASONS = tuple(int(reason) for reason in RevocationReason)

EVENT_TABLE = {
    "IssuerRegistered": "issuers",
    "IssuerStatusChanged": "issuer_status",
    "KeyAdded": "issuer_keys",
    "KeyRevoked": "key_revocations",
    "Anchored": "anchors",
    "RootRevoked": "revocations",
    "LeafRevoked": "revocations",
}
MIRRORED_EVENTS = frozenset(EVENT_TABLE)
#: Every table of event rows (keyed by tx hash and log index), whatever the mapping above knows.
EVENT_TABLES = tuple(table for table in Base.metadata.sorted_tables if "log_index" in table.c)


def digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


# -- writing blocks ------------------------------------------------------------------------------------


@contextmanager
def manual_mining(rpc: RpcClient) -> Iterator[None]:
    """Automine off for the block; always back on, since the anvil is shared by the session."""
    rpc.call("evm_setAutomine", [False])
    try:
        yield
    finally:
        rpc.call("evm_setAutomine", [True])


class BlockBuilder:
    """Queues registry calls from anvil dev accounts and mines them into one block per :meth:`mine`."""

    def __init__(self, rpc: RpcClient, registry: str, abi: ContractAbi) -> None:
        self.rpc = rpc
        self.registry = registry
        self.abi = abi
        self.accounts: list[str] = [str(a).lower() for a in rpc.call("eth_accounts")]
        self._nonces: dict[str, int] = {}
        self._queued: list[tuple[str, dict[str, Any]]] = []

    def address(self, account: int) -> str:
        return self.accounts[account]

    def send(self, account: int, function: str, *args: Any, gas: int | None = None) -> None:
        sender = self.address(account)
        if sender not in self._nonces:
            self._nonces[sender] = int(self.rpc.call("eth_getTransactionCount", [sender, "pending"]), 16)
        tx = {
            "from": sender,
            "to": self.registry,
            "data": hex0x(self.abi.encode_call(function, *args)),
            "gas": hex(gas or GAS[function]),
            "nonce": hex(self._nonces[sender]),
            "maxFeePerGas": hex(MAX_FEE),
            "maxPriorityFeePerGas": hex(1),
        }
        self._nonces[sender] += 1
        self._queued.append((function, tx))

    def mine(self, empty_after: int = 0) -> int:
        """Mines everything queued (one block unless it overflows the gas limit); checks every receipt."""
        queued, self._queued = self._queued, []
        hashes = [str(h) for h in self.rpc.batch([("eth_sendTransaction", [tx]) for _, tx in queued])]
        self.rpc.call("evm_mine")
        receipts = self._receipts(hashes)
        for _ in range(20):  # a block that overflowed leaves the rest pending
            if all(r is not None for r in receipts):
                break
            self.rpc.call("evm_mine")
            receipts = self._receipts(hashes)
        for (function, _), tx_hash, receipt in zip(queued, hashes, receipts, strict=True):
            if receipt is None or receipt["status"] != "0x1":
                raise AssertionError(f"{function} in {tx_hash} did not succeed: {receipt}")
        if empty_after:
            self.rpc.call("anvil_mine", [hex(empty_after)])
        return self.rpc.block_number()

    def _receipts(self, hashes: Sequence[str]) -> list[Any]:
        return self.rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes]) if hashes else []


# -- a history with every event kind -------------------------------------------------------------------


@dataclass
class Population:
    """What :func:`populate` wrote, for sampling facts and checking counts."""

    issuers: list[str]
    stranger: str
    keys: list[bytes] = field(default_factory=list)
    revoked_keys: list[bytes] = field(default_factory=list)
    roots: list[bytes] = field(default_factory=list)
    revoked_roots: list[bytes] = field(default_factory=list)
    leaf_tree: MerkleTree | None = None
    revoked_leaves: list[bytes] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    head: int = 0

    @property
    def event_count(self) -> int:
        return sum(self.events.values())


def populate(
    builder: BlockBuilder,
    *,
    leaf_revocations: int,
    leaves_per_tx: int = 200,
    leaf_txs_per_block: int = 1,
    anchors_per_block: int = 8,
    spread: int = 0,
    seed: str = "indexer",
) -> Population:
    """Every event kind, interleaved the way a busy registry would emit them.

    Issuers A and B anchor; C is suspended and re-activated again and again; D ends suspended;
    the stranger is never registered. ``spread`` empty blocks follow every block with events.
    Needs automine off (:func:`manual_mining`).
    """
    send, mine = builder.send, builder.mine
    issuers = [builder.address(i) for i in (ISSUER_A, ISSUER_B, ISSUER_C, ISSUER_D)]
    out = Population(issuers=issuers, stranger=builder.address(STRANGER))
    names = ("Université Ångström", "Example College", "Cours du soir ✓", "Defunct Academy")
    for number, (issuer, name) in enumerate(zip(issuers, names, strict=True)):
        send(OWNER, "registerIssuer", issuer, name, f"https://issuer-{number}.example/")
        out.events["IssuerRegistered"] += 1
    mine(spread)

    key_owners = [ISSUER_A, ISSUER_A, ISSUER_B, ISSUER_B, ISSUER_C, ISSUER_C, ISSUER_D]
    for index, account in enumerate(key_owners):
        info = public_key_info(generate_private_key("rsa-2048" if index == 2 else "ed25519"))
        send(account, "addKey", info.key_id, int(info.algorithm), info.der)
        out.keys.append(info.key_id)
        out.events["KeyAdded"] += 1
    key_owner = dict(zip(out.keys, key_owners, strict=True))
    tree = MerkleTree([digest(f"{seed}/leaf/{i}") for i in range(leaf_revocations + 16)])
    small = MerkleTree([digest(f"{seed}/small/{i}") for i in range(8)])
    out.leaf_tree = tree
    send(ISSUER_A, "anchor", tree.root, len(tree), "ipfs://bafy-leaf-tree")
    send(ISSUER_B, "anchor", small.root, len(small), "")
    out.roots += [tree.root, small.root]
    out.events["Anchored"] += 2
    mine(spread)

    leaves = tree.leaves
    chunks = [leaves[i : i + leaves_per_tx] for i in range(0, leaf_revocations, leaves_per_tx)]
    reasons = cycle(REASONS)
    anchorer = cycle([ISSUER_A, ISSUER_B])
    root_issuer: dict[bytes, int] = {}
    c_active = True
    body_blocks = max(1, -(-len(chunks) // leaf_txs_per_block))
    for block in range(body_blocks):
        for chunk in chunks[block * leaf_txs_per_block : (block + 1) * leaf_txs_per_block]:
            multi = tree.multiproof(chunk)
            gas = GAS_PER_REVOKED_LEAF * len(chunk) + 300_000
            args = (list(multi.leaves), tree.root, list(multi.proof), list(multi.proof_flags), next(reasons))
            send(ISSUER_A, "revokeLeaves", *args, gas=gas)
            out.revoked_leaves += chunk
            out.events["LeafRevoked"] += len(chunk)
        for _ in range(anchors_per_block):
            account = next(anchorer)
            root = digest(f"{seed}/root/{len(out.roots)}")
            uri = ("", f"ipfs://bafy{len(out.roots)}", f"https://issuer.example/ünï/{len(out.roots)}.json")
            send(account, "anchor", root, 1 + len(out.roots) % 500, uri[len(out.roots) % 3])
            out.roots.append(root)
            root_issuer[root] = account
            out.events["Anchored"] += 1
        if block == 0:
            leaf = small.leaves[3]
            send(ISSUER_B, "revokeLeaf", leaf, small.root, small.proof(leaf), next(reasons))
            out.events["LeafRevoked"] += 1
        if block % 5 == 4:  # roots mined in earlier blocks, by their own issuers
            for root in [r for r in root_issuer if r not in out.revoked_roots][:2]:
                send(root_issuer[root], "revokeRoot", root, next(reasons))
                out.revoked_roots.append(root)
                out.events["RootRevoked"] += 1
        if block % 7 == 3:
            c_active = not c_active
            send(OWNER, "setIssuerActive", issuers[2], c_active)
            out.events["IssuerStatusChanged"] += 1
        if block % 10 == 5 and len(out.revoked_keys) < 3:  # keys of A, B (RSA) and C
            key = out.keys[len(out.revoked_keys) * 2]
            send(key_owner[key], "revokeKey", key)
            out.revoked_keys.append(key)
            out.events["KeyRevoked"] += 1
        mine(spread)
        root_issuer = {r: a for r, a in root_issuer.items() if r not in out.revoked_roots}

    send(OWNER, "setIssuerActive", issuers[3], False)
    send(ISSUER_D, "revokeKey", out.keys[-1])
    out.revoked_keys.append(out.keys[-1])
    out.events.update(["IssuerStatusChanged", "KeyRevoked"])
    out.head = mine()
    return out


def deploy(rpc: RpcClient, artifact: Artifact) -> tuple[str, int]:
    """Deploys a registry from dev account 0 (automine must be on); returns (address, block)."""
    sender = TxSender(
        rpc, LocalSigner.dev(OWNER), chain_id=DEV_CHAIN_ID, abi=artifact.abi, poll_interval=0.01
    )
    receipt = deploy_registry(sender, artifact=artifact)
    assert receipt.contract_address is not None
    return receipt.contract_address.lower(), receipt.block_number


# -- reading the chain back independently --------------------------------------------------------------


def _column(event: str, name: str) -> str:
    if name == "issuer" and event in ("IssuerRegistered", "IssuerStatusChanged"):
        return "address"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()  # keyId -> key_id


def reference_row(abi: ContractAbi, log: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The mirror row a log should become, by eth_abi; None for events the mirror does not keep."""
    decoded = abi.decode_event(log)
    if decoded is None:
        raise AssertionError(f"eth_abi cannot decode {log}")
    event, values = decoded
    if event not in MIRRORED_EVENTS:
        return None
    row: dict[str, Any] = {
        "tx_hash": bytes.fromhex(log["transactionHash"][2:]),
        "log_index": int(log["logIndex"], 16),
        "block_number": int(log["blockNumber"], 16),
        "block_hash": bytes.fromhex(log["blockHash"][2:]),
    }
    for name, value in values.items():
        address = isinstance(value, str) and value.startswith("0x") and len(value) == 42
        row[_column(event, name)] = bytes.fromhex(value[2:]) if address else value
    if event == "RootRevoked":
        row["leaf"] = bytes(32)
    return EVENT_TABLE[event], row


def chain_logs(rpc: RpcClient, registry: str, first: int, last: int) -> list[dict[str, Any]]:
    logs = rpc.call("eth_getLogs", [{"address": registry, "fromBlock": hex(first), "toBlock": hex(last)}])
    assert isinstance(logs, list)
    return logs


def reference_rows(abi: ContractAbi, logs: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows per mirror table, in chain order."""
    tables: dict[str, list[dict[str, Any]]] = {table.name: [] for table in EVENT_TABLES}
    for log in logs:
        decoded = reference_row(abi, log)
        if decoded is not None:
            tables[decoded[0]].append(decoded[1])
    return tables


# -- reading mirrors -----------------------------------------------------------------------------------


def mirror_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every event table, in chain order."""
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        for table in EVENT_TABLES:
            query = select(table).order_by(table.c.block_number, table.c.log_index)
            out[table.name] = [dict(row) for row in connection.execute(query).mappings()]
    return out


def assert_accumulators_match_the_contract(rpc: RpcClient, registry: str, engine: Engine) -> None:
    """The checkpoint's accumulators and counts are the contract's at the checkpoint block."""
    state = checkpoint(engine)
    reader = RegistryReader(rpc, registry)
    block = state["block_number"]
    assert (state["anchor_accumulator"], state["revocation_accumulator"]) == reader.accumulators(block)
    assert (state["anchor_count"], state["revocation_count"]) == reader.counts(block)


def checkpoint(engine: Engine) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(select(Base.metadata.tables[CheckpointRow.__tablename__])).mappings().one()
        return dict(row)


def mirror_state(engine: Engine) -> dict[str, Any]:
    """All a mirror holds that must not depend on how the sync was cut into steps: event rows, the
    checkpoint, and the blocks that carry events or the checkpoint. (Checkpoint-only blocks from
    earlier steps are pruned below finality, so which ones remain depends on the step boundaries.)
    Block digests are left out: derived data that ``finvault sync`` fills in after the steps and
    ``Indexer.sync`` does not (``test_reconcile`` checks them). So are the chain head and finalized
    block the last step read (they say when it ran, not what it wrote), and the revision, which
    counts the transactions that changed facts (one per step that wrote events)."""
    timing = ("chain_head_block", "chain_finalized_block", "revision")
    position = {name: value for name, value in checkpoint(engine).items() if name not in timing}
    state: dict[str, Any] = {"events": mirror_rows(engine), "checkpoint": position}
    blocks = Base.metadata.tables[BlockRow.__tablename__]
    with engine.connect() as connection:
        query = (
            select(*(column for column in blocks.c if column.name != "digest"))
            .where((blocks.c.event_count > 0) | (blocks.c.number == state["checkpoint"]["block_number"]))
            .order_by(blocks.c.number)
        )
        state["blocks"] = [dict(row) for row in connection.execute(query).mappings()]
    return state


# -- a chain for a test module -------------------------------------------------------------------------


@dataclass
class PopulatedChain:
    """A registry with a full history on the session's anvil, kept for one test module."""

    rpc: RpcClient
    url: str
    registry: str
    deployment_block: int
    population: Population

    @property
    def head(self) -> int:
        return self.population.head

    def indexer(self, url: str, rpc: RpcClient | None = None, **options: Any) -> Indexer:
        return new_indexer(url, rpc or self.rpc, self.registry, self.deployment_block, **options)


def new_indexer(url: str, rpc: RpcClient, registry: str, start_block: int, **options: Any) -> Indexer:
    """An indexer of ``registry`` on the dev chain, into a fresh (migrated) mirror at ``url``."""
    return Indexer(
        open_mirror(url), rpc, chain_id=DEV_CHAIN_ID, registry=registry, start_block=start_block, **options
    )


@contextmanager
def populated_chain(rpc: RpcClient, url: str, artifact: Artifact, **plan: Any) -> Iterator[PopulatedChain]:
    """For a module-scoped fixture: snapshot, deploy, :func:`populate`, hand over, revert."""
    snapshot = rpc.call("evm_snapshot")
    try:
        registry, block = deploy(rpc, artifact)
        with manual_mining(rpc):
            population = populate(BlockBuilder(rpc, registry, artifact.abi), **plan)
        yield PopulatedChain(rpc, url, registry, block, population)
    finally:
        assert rpc.call("evm_revert", [snapshot]) is True


def sqlite_url(directory: Path, name: str = "m.db") -> str:
    return f"sqlite:///{directory / name}"


@contextmanager
def postgres_database(admin_url: str, *, template: str | None = None) -> Iterator[str]:
    """A new database on the PostgreSQL server behind ``admin_url`` (a copy of the database at URL
    ``template``, or empty); yields its URL, then drops it, disconnecting whatever still uses it."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"finvault_test_{uuid.uuid4().hex[:16]}"
    source = "" if template is None else f' TEMPLATE "{make_url(template).database}"'
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"{source}')
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()
