"""Commands the ``node`` package contributes to ``finvault``."""

from __future__ import annotations

from typing import Any

import click

from chain.cli import chain_options, registry_option


@click.command("node")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8000; 0 picks a free one).")
@click.option("--db", "database_url", help="Mirror database URL (default sqlite:///.finvault/mirror.db).")
@click.option(
    "--sync-confirmations",
    type=int,
    help="Depth at which mirror rows count as final (default: the network's; 12 on local).",
)
@click.option(
    "--start-block", type=int, help="First block to read (default: the registry's deployment block)."
)
@click.option(
    "--quorum-rpc", "quorum_rpc_urls", multiple=True, help="Second endpoint that must agree on hashes."
)
@click.option("--cors-origin", "cors_origins", multiple=True, help="Browser origin allowed to call the API.")
@click.option("--log-level", help="uvicorn log level (default info).")
@registry_option
@chain_options
def node(
    rpc_urls: tuple[str, ...],
    quorum_rpc_urls: tuple[str, ...],
    cors_origins: tuple[str, ...],
    **options: Any,
) -> None:
    """Run a verification node: follow the registry into the mirror and serve the HTTP API.

    Prints the node's URL on stdout once it accepts connections, and serves until Ctrl-C or
    SIGTERM. It holds no key and sends no transaction. Everything else is set with FINVAULT_*
    variables (see docs/api.md).
    """
    from chain.service.settings import load_settings  # pydantic, uvicorn and the app only when serving
    from node.server import serve_node
    from node.settings import NodeSettings

    settings = load_settings(
        NodeSettings,
        rpc_urls=list(rpc_urls) or None,
        quorum_rpc_urls=list(quorum_rpc_urls) or None,
        cors_origins=list(cors_origins) or None,
        **options,
    )

    def ready(url: str) -> None:
        click.echo(url)
        click.echo(
            f"finvault node: serving {url} (chain {settings.chain_id}, registry {settings.registry}); "
            "Ctrl-C stops it",
            err=True,
        )

    serve_node(settings, on_ready=ready)
