"""Closed-loop load with wrk (Debian package `wrk`): POST one body, read wrk_post.lua's JSON."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).with_name("wrk_post.lua")
# wrk's own report line; a Lua response() callback could count them too, at a cost per request.
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")


class WrkError(RuntimeError):
    """wrk is missing, failed, or the server answered errors."""


@dataclass(frozen=True)
class WrkLoad:
    """The same load shape for every variant: one wrk thread, `connections` keep-alive sockets."""

    connections: int = 8
    threads: int = 1


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed (Debian: apt-get install -y wrk)")
    return found


def run_wrk(url: str, body: Path, seconds: float, load: WrkLoad) -> WrkResult:
    """POST `body` to `url` for `seconds`; raises WrkError on socket errors or non-2xx answers."""
    command = [
        require_wrk(),
        f"-t{load.threads}",
        f"-c{load.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        url,
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_BODY": str(body)},
        timeout=seconds + 60,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("{"):
        raise WrkError(f"wrk exited {done.returncode}: {done.stdout[-500:]} {done.stderr[-500:]}")
    summary = json.loads(lines[-1])
    non_2xx = _NON_2XX.search(done.stdout)
    failed = summary.pop("socket_errors") + (int(non_2xx.group(1)) if non_2xx else 0)
    if failed:
        raise WrkError(f"{failed} failed requests against {url}: {summary}")
    return WrkResult(**summary)
