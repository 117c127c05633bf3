"""Commands the ``indexer`` package contributes to ``finvault``."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chain.cli import chain_options, registry_option
from chain.errors import ConfigError, FinVaultError

if TYPE_CHECKING:  # the heavy packages load inside the commands that use them (finvault CMD --help)
    from indexer.settings import IndexerSettings


@click.command()
@click.option("--db", "database_url", help="Mirror database URL (default sqlite:///.finvault/mirror.db).")
@click.option("--to", "to_block", type=int, help="Stop at this block instead of the head.")
@click.option(
    "--start-block", type=int, help="First block to read (default: the registry's deployment block)."
)
@click.option(
    "--quorum-rpc", "quorum_rpc_urls", multiple=True, help="Second endpoint that must agree on hashes."
)
@registry_option
@chain_options
def sync(
    database_url: str | None,
    to_block: int | None,
    start_block: int | None,
    quorum_rpc_urls: tuple[str, ...],
    registry: str | None,
    rpc_urls: tuple[str, ...],
    **options: Any,
) -> None:
    """Catch the mirror up with the chain (or to --to N) and exit."""
    from tqdm import tqdm

    from chain.service.settings import load_settings
    from indexer.digests import update_digests
    from indexer.settings import IndexerSettings
    from indexer.sync import StepResult, build_indexer

    settings = load_settings(
        IndexerSettings,
        database_url=database_url,
        start_block=start_block,
        quorum_rpc_urls=list(quorum_rpc_urls) or None,
        registry=registry,
        rpc_urls=list(rpc_urls) or None,
        **options,
    )
    indexer = build_indexer(settings, writer=True)
    started = time.monotonic()
    first = indexer.status.indexed_block
    with tqdm(unit="blk", disable=not sys.stderr.isatty(), file=sys.stderr, dynamic_ncols=True) as bar:

        def progress(step: StepResult) -> None:
            # Digest what this step committed while the next range is read in the background
            # (anvil or the provider answers it meanwhile): not all at the end, in series.
            update_digests(indexer.engine)
            bar.total = max(step.head - first, 1)
            bar.n = max(0, step.last_block - first)
            elapsed = max(time.monotonic() - started, 1e-9)
            bar.set_postfix(
                events=indexer.status.events_indexed, ev_s=f"{indexer.status.events_indexed / elapsed:,.0f}"
            )
            bar.refresh()

        try:
            status = indexer.sync(to_block, on_step=progress)  # digests each step, the last too
        finally:
            indexer.close()
    elapsed = time.monotonic() - started
    click.echo(
        f"synced to block {status.indexed_block} (head {status.head}, final {status.finalized_block}): "
        f"{status.events_indexed:,} events in {elapsed:.1f}s, {len(status.reorgs)} reorg(s) repaired"
    )


def _existing_mirror(url: str) -> str:
    """``url``, refused (:class:`DatabaseMissing`) if it names a SQLite file that does not exist:
    only ``sync`` and ``node`` start a mirror."""
    from chain.service.db import require_existing_database

    require_existing_database(
        url, "the mirror", "run `finvault sync` (or `finvault node`) first, or pass the --db it used"
    )
    return url


def _mirror_settings(
    database_url: str | None, registry: str | None, rpc_urls: tuple[str, ...], options: dict[str, Any]
) -> IndexerSettings:
    from chain.service.settings import load_settings
    from indexer.settings import IndexerSettings

    return load_settings(
        IndexerSettings,
        database_url=database_url,
        registry=registry,
        rpc_urls=list(rpc_urls) or None,
        **options,
    )


@click.command()
@click.option("--db", "database_url", help="Mirror database URL (default sqlite:///.finvault/mirror.db).")
@click.option(
    "--from", "first_block", type=int, help="First block (default: the registry's deployment block)."
)
@click.option("--to", "last_block", type=int, help="Last block (default: the mirror's checkpoint).")
@click.option(
    "--quick", is_flag=True, help="Only compare accumulators and event counts at --to (no logs, no fold)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the drifts to a CSV file.",
)
@click.option("--against", "other_node", help="Compare with another node's digests instead of the chain.")
@click.option(
    "--status-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also hold the status lists published in DIR (N.json, N.leaves.json) to the chain.",
)
@registry_option
@chain_options
def reconcile(
    database_url: str | None,
    first_block: int | None,
    last_block: int | None,
    quick: bool,
    as_json: bool,
    csv_path: Path | None,
    other_node: str | None,
    status_dir: Path | None,
    registry: str | None,
    rpc_urls: tuple[str, ...],
    **options: Any,
) -> None:
    """Compare the mirror with the chain, row by row, and report every drift.

    The chain side is read afresh (eth_getLogs and headers); the mirror's own state is not trusted.
    With --against URL, compare the mirror's per-block digests with another node's instead, find
    the first block where they diverge (bisection) and name the events that differ there. With
    --status-dir, also compare each published status list with the revocations on-chain: every
    entry that disagrees is a drift naming both sides.
    Exit status: 0 no drift, 1 drift, 2 bad usage or the chain or mirror could not be read.
    """
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session
    from tqdm import tqdm

    from chain.registry import RegistryReader
    from chain.rpc import RpcClient
    from indexer.db import open_mirror
    from indexer.reconcile import Reconciler, drifts_csv
    from indexer.schema import CheckpointRow

    if other_node is not None:
        code = _against_node(
            _mirror_settings(database_url, registry, rpc_urls, options), other_node, last_block
        )
        sys.exit(code)
    try:
        settings = _mirror_settings(database_url, registry, rpc_urls, options)
        _existing_mirror(settings.database_url)  # before the chain: a typo here is the likelier slip
        address = settings.require_registry()
        rpc = RpcClient(settings.rpc_urls, policy=settings.retry_policy)
        rpc.require_chain_id(settings.chain_id)
        reader = RegistryReader(rpc, address)
        reader.check_deployment()
        engine = open_mirror(settings.database_url)
        with Session(engine) as session:
            checkpoint = session.get(CheckpointRow, 1)
        if checkpoint is None:
            raise ConfigError("the mirror is empty: run `finvault sync` first")
        first = reader.deployment_block() if first_block is None else first_block
        last = checkpoint.block_number if last_block is None else last_block
        if not 0 <= first <= last:
            raise ConfigError(f"--from {first} --to {last} is not a block range")
        if last > checkpoint.block_number:
            raise ConfigError(
                f"the mirror only reaches block {checkpoint.block_number}; pass --to up to that"
            )
        with tqdm(
            total=last - first + 1, unit="blk", disable=quick or not sys.stderr.isatty(), file=sys.stderr
        ) as bar:

            def progress(done: int, total: int) -> None:
                bar.n = done
                bar.refresh()

            report = Reconciler(engine, rpc, address, settings.chain_id, progress).run(
                first, last, quick=quick
            )
        if status_dir is not None:
            from chain.rpc_facts import RpcFacts
            from indexer.reader import MirrorFacts
            from indexer.status_audit import audit_folder

            facts = MirrorFacts(engine, settings.chain_id, address)
            head = RpcFacts(reader, settings.chain_id)  # for lists published after the mirror's last block
            report = replace(report, drifts=(*report.drifts, *audit_folder(status_dir, facts, head)))
    except (FinVaultError, SQLAlchemyError) as exc:
        message = (
            exc.diagnostics() if isinstance(exc, FinVaultError) else f"mirror: {str(exc).splitlines()[0]}"
        )
        click.echo(f"finvault: error: {message}", err=True)
        sys.exit(2)
    if csv_path is not None:
        csv_path.write_text(drifts_csv(report.drifts), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(report.to_dict(), sort_keys=True))
    else:
        for drift in report.drifts:
            click.echo(drift.describe())
        what = (
            "accumulators"
            if quick
            else f"{report.chain_events:,} chain events, {report.mirror_events:,} mirror rows"
        )
        verdict = "no drift" if report.clean else f"{len(report.drifts)} drift(s)"
        click.echo(f"blocks {first}..{last}: {what}: {verdict} ({report.seconds:.2f}s)")
    sys.exit(0 if report.clean else 1)


def _against_node(settings: IndexerSettings, url: str, last_block: int | None) -> int:
    """``reconcile --against``: this mirror's digests against another node's; an exit status."""
    import httpx
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from indexer.db import open_mirror
    from indexer.digests import block_events, digest_as_of, event_view, first_divergence, update_digests
    from indexer.schema import BlockRow

    try:
        engine = open_mirror(_existing_mirror(settings.database_url))
        update_digests(engine, rebuild=True)  # from the rows as they are, not as they were digested
        with httpx.Client(base_url=url.rstrip("/"), timeout=30.0, follow_redirects=False) as http:

            def remote(block: int) -> dict[str, Any]:
                response = http.get(
                    "/digests", params={"from": max(block, 0), "to": max(block, 0), "limit": 0}
                )
                response.raise_for_status()
                return dict(response.json())

            with Session(engine) as session:
                local_last = session.scalar(
                    select(func.max(BlockRow.number)).where(BlockRow.digest.is_not(None))
                )
            last = (
                min(local_last or 0, remote(2**62)["last_block"] or 0) if last_block is None else last_block
            )

            def local_digest(block: int) -> str:
                with Session(engine) as session:
                    return digest_as_of(session, block)

            first = first_divergence(local_digest, lambda block: str(remote(block)["as_of"]), last)
            if first is None:
                click.echo(f"mirrors agree up to block {last} (digest {local_digest(last)})")
                return 0
            response = http.get(f"/blocks/{first}/events")
            response.raise_for_status()
            theirs = {(e["table"], e["tx_hash"], e["log_index"]): e for e in response.json()["events"]}
    except (FinVaultError, SQLAlchemyError, httpx.HTTPError, ValueError, KeyError) as exc:
        click.echo(f"finvault: error: cannot compare with {url}: {type(exc).__name__}: {exc}", err=True)
        return 2
    with Session(engine) as session:
        ours = {
            (view["table"], view["tx_hash"], view["log_index"]): view
            for _, table, row in block_events(session, first, first).get(first, [])
            for view in [event_view(table, row)]
        }
    click.echo(f"mirrors diverge first at block {first}")
    for key in sorted(ours.keys() | theirs.keys(), key=lambda k: (k[2], k[0])):
        table, tx_hash, log_index = key
        if key not in theirs:
            click.echo(f"  only here:  {table} tx {tx_hash} log {log_index}")
        elif key not in ours:
            click.echo(f"  only there: {table} tx {tx_hash} log {log_index}")
        elif ours[key] != theirs[key]:
            fields = sorted(name for name in ours[key] if ours[key][name] != theirs[key].get(name))
            click.echo(f"  differs:    {table} tx {tx_hash} log {log_index}: {', '.join(fields)}")
    return 1


@click.command()
@click.option("--from", "from_block", type=int, required=True, help="First block to re-read from the chain.")
@click.option("--db", "database_url", help="Mirror database URL (default sqlite:///.finvault/mirror.db).")
@registry_option
@chain_options
def resync(
    from_block: int, database_url: str | None, registry: str | None, rpc_urls: tuple[str, ...], **options: Any
) -> None:
    """Repair a drifted mirror: delete everything from block --from up and re-read it from the chain.

    The deletion and an audit-log entry commit in one transaction; the re-read is an ordinary,
    crash-safe sync back up to where the mirror was. Run `finvault reconcile` afterwards.
    """
    from indexer.reconcile import resync as repair
    from indexer.sync import build_indexer

    settings = _mirror_settings(database_url, registry, rpc_urls, options)
    _existing_mirror(settings.database_url)
    indexer = build_indexer(settings)
    try:
        done = repair(indexer, from_block, now=int(time.time()))
    finally:
        indexer.close()
    click.echo(
        f"resynced blocks {done.from_block}..{done.indexed_block}: {done.deleted_rows:,} rows deleted, "
        f"{done.events_indexed:,} events re-read from the chain"
    )
