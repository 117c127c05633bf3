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
HEAVY = {"web3", "eth_abi", "eth_account", "sqlalchemy", "fastapi", "uvicorn", "httpx", "cryptography"}


def test_help_loads_no_heavy_package() -> None:
    probe = (
        "import json, sys\n"
        "from chain.entry import build_cli\n"
        "build_cli().main(['--help'], standalone_mode=False)\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(json.loads(done.stderr))
    assert not loaded & HEAVY, sorted(loaded & HEAVY)
    assert "disclose    Withhold fields of RECEIPT; the smaller receipt still verifies." in done.stdout
    for name in command_table():
        assert f"  {name} " in done.stdout


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
