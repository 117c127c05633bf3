"""How fast ``finvault`` starts, against a bare ``python -c "import click"`` in the same run.

    .venv/bin/python bench/cli.py [--runs N]

Times ``finvault --help`` and ``finvault COMMAND --help`` for every command and subcommand, each
as a whole process (the venv's ``finvault`` script), N times (default 15) in turn with the
baseline so that load on the machine hits both alike; prints the medians and each one's ratio to
the baseline's median (target: within 4x). Informational: always exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain.entry import build_cli

TARGET_RATIO = 4.0


def commands(group: click.Group, context: click.Context, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The path of every command and subcommand under ``group`` (the root's own path first)."""
    found = [path] if not path else []
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        found.append((*path, name))
        if isinstance(command, click.Group):
            found += commands(command, context, (*path, name))
    return found


def seconds(argv: list[str]) -> float:
    """Wall time of one run of ``argv``, its output discarded."""
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    """Runs the benchmark and prints one row per command."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    finvault = str(Path(sys.executable).with_name("finvault"))
    cli = build_cli()
    baseline_argv = [sys.executable, "-c", "import click"]
    timings: dict[tuple[str, ...], list[float]] = {path: [] for path in commands(cli, click.Context(cli))}
    baseline: list[float] = []
    for _ in range(runs):
        for path, times in timings.items():
            baseline.append(seconds(baseline_argv))
            times.append(seconds([finvault, *path, "--help"]))
    base = statistics.median(baseline)
    print(f"python -c 'import click': {base * 1000:.0f} ms (median of {len(baseline)})")
    worst = 0.0
    for path, times in timings.items():
        median = statistics.median(times)
        worst = max(worst, median / base)
        print(f"  finvault {' '.join((*path, '--help')):<36} {median * 1000:5.0f} ms  {median / base:4.1f}x")
    verdict = "met" if worst <= TARGET_RATIO else "missed"
    print(f"slowest: {worst:.1f}x the baseline (target <= {TARGET_RATIO:g}x: {verdict})")


if __name__ == "__main__":
    main()
