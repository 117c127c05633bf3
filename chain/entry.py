"""The ``finvault`` command: every installed package's commands, listed without importing them.

Each package names its commands in a small table (entry point group ``finvault.commands``: a
mapping ``name -> ("module:attribute", "one-line help")``), so ``finvault --help`` reads the tables
and imports none of the heavy packages (web3, eth_abi, eth_account, sqlalchemy, fastapi, uvicorn);
a command's module is imported when that command runs or shows its own help.
``tests/unit/test_entry.py`` checks both the imports and that each table's help is the command's.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

import click

from chain.errors import ConfigError, FinVaultError

#: name -> (where the click command lives, its one-line help)
CommandTable = Mapping[str, tuple[str, str]]


class LazyGroup(click.Group):
    """A click group whose commands are imported only when used."""

    def __init__(self, table: CommandTable, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.table = dict(table)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name, sorted (nothing imported)."""
        return sorted(self.table)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, imported now (None for an unknown name)."""
        if cmd_name not in self.table:
            return None
        module, _, attribute = self.table[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.table[cmd_name][0]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the tables' one-line help, without importing any command."""
        rows = [(name, self.table[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def command_table() -> dict[str, tuple[str, str]]:
    """Every installed package's commands (entry point group ``finvault.commands``)."""
    table: dict[str, tuple[str, str]] = {}
    for ep in sorted(entry_points(group="finvault.commands"), key=lambda e: e.name):
        table.update(ep.load())
    return table


def build_cli() -> click.Group:
    """The ``finvault`` group."""

    @click.group(
        cls=LazyGroup,
        table=command_table(),
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    @click.version_option(package_name="finvault")
    def finvault() -> None:
        """FinVault: blockchain-anchored certificates anyone can verify."""

    return finvault


def main(argv: list[str] | None = None) -> None:
    """Runs ``finvault``: a FinVault error prints one line and exits 1 (2 for a configuration error)."""
    cli = build_cli()
    try:
        cli.main(args=argv, prog_name="finvault", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except FinVaultError as exc:
        click.echo(f"finvault: error: {exc.diagnostics()}", err=True)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
