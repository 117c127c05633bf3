"""Commands the ``indexer`` package contributes to ``finvault``."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from tqdm import tqdm

from chain.cli import chain_options, registry_option
from chain.registry import RegistryReader
from chain.rpc import RpcClient
from chain.settings import load_settings
from indexer.db import open_mirror
from indexer.settings import IndexerSettings
from indexer.sync import Indexer, StepResult


def build_indexer(settings: IndexerSettings) -> Indexer:
    """Connects, checks chain id and registry code, opens (and migrates) the mirror."""
    rpc = RpcClient(settings.rpc_urls, policy=settings.retry_policy)
    registry = settings.require_registry()
    quorum = (
        RpcClient(settings.quorum_rpc_urls, policy=settings.retry_policy)
        if settings.quorum_rpc_urls
        else None
    )
    start = settings.start_block
    if start is None:
        rpc.require_chain_id(settings.chain_id)
        reader = RegistryReader(rpc, registry)
        reader.check_deployment()
        start = reader.deployment_block()
    indexer = Indexer(
        open_mirror(settings.database_url),
        rpc,
        chain_id=settings.chain_id,
        registry=registry,
        start_block=start,
        confirmations=settings.sync_confirmations,
        quorum=quorum,
    )
    indexer.check_startup()
    return indexer


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
    settings = load_settings(
        IndexerSettings,
        database_url=database_url,
        start_block=start_block,
        quorum_rpc_urls=list(quorum_rpc_urls) or None,
        registry=registry,
        rpc_urls=list(rpc_urls) or None,
        **options,
    )
    indexer = build_indexer(settings)
    started = time.monotonic()
    first = indexer.status.indexed_block
    with tqdm(unit="blk", disable=not sys.stderr.isatty(), file=sys.stderr, dynamic_ncols=True) as bar:

        def progress(step: StepResult) -> None:
            bar.total = max(step.head - first, 1)
            bar.n = max(0, step.last_block - first)
            elapsed = max(time.monotonic() - started, 1e-9)
            bar.set_postfix(
                events=indexer.status.events_indexed, ev_s=f"{indexer.status.events_indexed / elapsed:,.0f}"
            )
            bar.refresh()

        try:
            status = indexer.sync(to_block, on_step=progress)
        finally:
            indexer.close()
    elapsed = time.monotonic() - started
    click.echo(
        f"synced to block {status.indexed_block} (head {status.head}, final {status.finalized_block}): "
        f"{status.events_indexed:,} events in {elapsed:.1f}s, {len(status.reorgs)} reorg(s) repaired"
    )


commands = [sync]
