"""Memory of a process and its descendants (a node's supervisor and workers), from ``/proc``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TreeMemory:
    """In MB, summed over the process tree.

    Summed RSS counts a page shared by several processes (libpython, extension modules) once per
    process; PSS splits each shared page between its sharers, so its sum is what they occupy."""

    rss: float
    peak_rss: float
    pss: float


def tree_pids(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found, pending = [], [pid]
    while pending:
        process = pending.pop()
        found.append(process)
        for task in Path(f"/proc/{process}/task").iterdir():
            pending += [int(child) for child in (task / "children").read_text().split()]
    return found


def reset_peaks(pid: int) -> None:
    """Resets the peak RSS (``VmHWM``) of ``pid`` and its descendants to their RSS now."""
    for process in tree_pids(pid):
        Path(f"/proc/{process}/clear_refs").write_text("5")


def tree_memory(pid: int) -> TreeMemory:
    """RSS, peak RSS and PSS, summed over ``pid`` and its descendants."""
    rss = peak = pss = 0.0
    for process in tree_pids(pid):
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak += int(line.split()[1]) / 1024
        for line in Path(f"/proc/{process}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1]) / 1024
    return TreeMemory(rss, peak, pss)
