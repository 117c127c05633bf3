"""``finvault``'s entry point lists every command without importing it (chain/entry.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

from chain.entry import LazyGroup, build_cli, command_table

ROOT = Path(__file__).resolve().parents[2]
#: What ``finvault --help`` must never load: the packages that make a command slow to start.
HEAVY = {
    "web3",
    "eth_abi",
    "eth_account",
    "sqlalchemy",
    "fastapi",
    "uvicorn",
    "httpx",
    "cryptography",
    "pydantic",
    "tqdm",
}


def _help(*command: str) -> tuple[str, set[str]]:
    """``finvault COMMAND... --help`` in a fresh interpreter: what it printed, and the top-level
    packages it loaded."""
    probe = (
        "import json, sys\n"
        "from chain.entry import build_cli\n"
        f"build_cli().main({[*command, '--help']!r}, prog_name='finvault', standalone_mode=False)\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    return done.stdout, set(json.loads(done.stderr))


def test_help_loads_no_heavy_package() -> None:
    shown, loaded = _help()
    assert not loaded & HEAVY, sorted(loaded & HEAVY)
    assert "disclose    Withhold claims of RECEIPT; the smaller receipt still verifies." in shown
    for name in command_table():
        assert f"  {name} " in shown


def _every_command(
    group: click.Group, context: click.Context, path: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """The path of every command and subcommand under ``group``."""
    paths = []
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        paths.append((*path, name))
        if isinstance(command, click.Group):
            paths += _every_command(command, context, (*path, name))
    return paths


def test_no_command_help_loads_a_heavy_package() -> None:
    """Each command imports its heavy packages when it runs, not when it shows its help."""
    cli = build_cli()
    commands = _every_command(cli, click.Context(cli))
    assert ("issuer", "keygen") in commands
    assert ("issuer-api", "key", "create") in commands
    for command in commands:
        shown, loaded = _help(*command)
        assert not loaded & HEAVY, (command, sorted(loaded & HEAVY))
        assert f"Usage: finvault {' '.join(command)} " in shown, command


def test_every_listed_command_is_the_one_its_table_describes() -> None:
    cli = build_cli()
    assert isinstance(cli, LazyGroup)
    context = click.Context(cli)
    names = cli.list_commands(context)
    assert {"verify", "disclose", "issue", "anchor", "sync", "reconcile", "node", "issuer"} <= set(names)
    for name in names:
        command = cli.get_command(context, name)
        assert command is not None
        assert command.name == name
        assert cli.table[name][1] == command.get_short_help_str(limit=300), name
    assert cli.get_command(context, "no-such-command") is None
