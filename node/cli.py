"""Commands the ``node`` package contributes to ``finvault``."""

from __future__ import annotations

from pathlib import Path

import click

from node.demo import run_demo


@click.command()
@click.option("--check", is_flag=True, help="Run the flow non-interactively and exit 0 only if it verified.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".finvault/demo"),
    show_default=True,
)
@click.option("--chain-port", type=int, default=8545, show_default=True)
def demo(check: bool, state_dir: Path, chain_port: int) -> None:
    """Start a dev chain, deploy the registry, register a demo issuer and its key."""
    run_demo(state_dir, chain_port=chain_port, check=check, say=click.echo)
    if check:
        click.echo("demo check passed")


commands = [demo]
