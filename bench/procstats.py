"""CPU time and peak memory of a server's process tree, read from /proc (Linux only).

A server is a root process (gunicorn master, MLServer, Flask) and its descendants (workers);
CPU seconds are summed over the tree, peak RSS (VmHWM) is reported per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# /proc/PID/stat fields after the ")" that ends the command name: utime is 14th, stime 15th.
_UTIME_AFTER_COMM = 11
_STIME_AFTER_COMM = 12


@dataclass(frozen=True)
class TreeUsage:
    cpu_s: float
    peak_rss_mib: dict[int, float]


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it that is alive now."""
    found = [pid]
    index = 0
    while index < len(found):
        for children in Path(f"/proc/{found[index]}/task").glob("*/children"):
            try:
                found += [int(child) for child in children.read_text().split()]
            except OSError:  # the task ended while we looked
                continue
        index += 1
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 if it has gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    ticks = int(fields[_UTIME_AFTER_COMM]) + int(fields[_STIME_AFTER_COMM])
    return ticks / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The process's high-water resident set size (VmHWM), MiB; 0 if it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tree_usage(root_pid: int) -> TreeUsage:
    pids = descendants(root_pid)
    return TreeUsage(
        cpu_s=sum(cpu_seconds(pid) for pid in pids),
        peak_rss_mib={pid: peak_rss_mib(pid) for pid in pids},
    )
