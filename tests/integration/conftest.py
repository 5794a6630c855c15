"""A real ``mlapi serve`` (gunicorn) on a free loopback port, serving the session's model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.server import ServerProcess
from tests.integration.server_env import server_env


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("server")
    process = ServerProcess(root / "server.log", env=server_env(trained_model, root / "home"))
    with process:
        yield process
