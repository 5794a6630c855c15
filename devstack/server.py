"""Start and stop the real ``mlapi serve`` (gunicorn) on a free 127.0.0.1 port.

Generic on purpose: the test suites and the benchmarks pass their own environment (model path,
limits, OTEL_* variables), worker and thread counts, and a log file that collects stdout and
stderr.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import requests

from devstack.ports import HOST, free_port

POLL_INTERVAL_S = 0.1


def mlapi_command() -> list[str]:
    """The installed ``mlapi`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("mlapi")
    if script.exists():
        return [str(script)]
    found = shutil.which("mlapi")
    if found is None:
        raise RuntimeError("the mlapi console script is not installed (pip install -e .)")
    return [found]


class ServerProcess:
    """``mlapi serve`` as a subprocess; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        workers: int = 1,
        threads: int = 1,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        wrapper: tuple[str, ...] = (),
    ) -> None:
        """`wrapper`: a command that runs the server as its arguments (and execs it, so that
        signals still reach gunicorn's master), e.g. to start it in another mount namespace."""
        self.log_path = log_path
        self.port = port or free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._env = {**os.environ, **(env or {})}
        self._args = [
            *wrapper,
            *mlapi_command(),
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            *extra_args,
        ]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        return self._running().pid

    def start(self, ready_timeout: float = 60.0, ready_status: int = 200) -> ServerProcess:
        """Start and wait until GET /readyz answers `ready_status` (503: a service that is up but
        must never get ready); on any failure nothing is left running and the error carries the
        log tail."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            # Its own process group, so kill() takes the workers down with the master.
            self._process = subprocess.Popen(
                self._args,
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(ready_timeout, ready_status)
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self, timeout: float, ready_status: int) -> None:
        process = self._running()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(
                    f"mlapi serve exited with {process.returncode}:\n{self.log_tail()}"
                )
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == ready_status:
                    return
            # Refused before the bind; a read timeout while the master listens but no worker
            # has booted yet (seconds on a busy host).
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(POLL_INTERVAL_S)
        raise TimeoutError(f"not ready within {timeout} s:\n{self.log_tail()}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self._running().send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Exit code, or TimeoutExpired after killing the process (nothing is left running)."""
        process = self._running()
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM and wait up to ``timeout`` s; the exit code (TimeoutExpired if it hangs)."""
        if self._running().poll() is None:
            self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the master and its workers (no-op when already gone)."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def _running(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the server was never started")
        return self._process

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            try:
                self.stop()
            finally:
                self.kill()
