"""The request timeout at the real server (gunicorn on loopback, one worker): an upload that
stalls or trickles is cut at MLAPI_REQUEST_TIMEOUT_S with a 408 and its connection closed, and
the worker serves the next request. Sync (1 thread) and gthread (2 threads, both stalled)."""

from __future__ import annotations

import http.client
import json
import select
import socket
from collections.abc import Iterator

import pytest
import requests

from devstack.ports import HOST
from devstack.server import ServerProcess
from tests.integration.server_env import server_env

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT_S = 2
# Safety nets only: far above the request timeout, so a server that never cuts the upload fails
# the test instead of hanging it.
CLIENT_TIMEOUT_S = 20
TRICKLE_INTERVAL_S = 0.25
MAX_TRICKLED_BYTES = int(CLIENT_TIMEOUT_S / TRICKLE_INTERVAL_S)
BODY_START = b'{"records": [{"CRIM": 0.1, '


@pytest.fixture(scope="module", params=[1, 2], ids=["sync-1x1", "gthread-1x2"])
def threads(request) -> int:
    return request.param


@pytest.fixture(scope="module")
def server(threads, trained_model, tmp_path_factory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("limits")
    env = {
        **server_env(trained_model, root / "home"),
        "MLAPI_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
    }
    with ServerProcess(root / "server.log", env=env, workers=1, threads=threads) as process:
        yield process


def start_upload(server: ServerProcess) -> socket.socket:
    """A connection that sent the headers of a 10 kB body and only its first bytes."""
    sock = socket.create_connection((HOST, server.port), timeout=CLIENT_TIMEOUT_S)
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 10000\r\n\r\n" + BODY_START
    )
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict]:
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, json.loads(response.read())


def assert_served(server: ServerProcess, row: dict[str, float]) -> None:
    response = requests.post(f"{server.url}/predict", json=row, timeout=CLIENT_TIMEOUT_S)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_stalled_uploads_get_408_and_the_worker_serves_the_next_request(server, threads, row):
    # As many stalled uploads as the worker has threads: all of them are held at once.
    sockets = [start_upload(server) for _ in range(threads)]
    try:
        for sock in sockets:
            status, body = read_response(sock)
            assert status == 408
            assert body["error"]["code"] == "request_timeout"
            assert body["error"]["details"] == []
            # ... and the connection is closed: nothing more will be read from it.
            assert sock.recv(1) == b""
    finally:
        for sock in sockets:
            sock.close()
    assert_served(server, row)


def test_a_trickling_upload_is_cut_and_the_worker_serves_the_next_request(server, row):
    sock = start_upload(server)
    try:
        sent = 0
        # One byte per interval: every recv() on the server gets data well within the timeout,
        # so only a deadline on the whole read can end this.
        while not select.select([sock], [], [], TRICKLE_INTERVAL_S)[0]:
            assert sent < MAX_TRICKLED_BYTES, "the server never cut the trickling upload"
            sock.sendall(b" ")
            sent += 1
        try:
            status, body = read_response(sock)
        except ConnectionResetError:
            # A byte that arrived after the cut is unread when the server closes, and Linux
            # answers that close with a reset, which can overtake the 408: closed either way.
            pass
        else:
            assert (status, body["error"]["code"]) == (408, "request_timeout")
    finally:
        sock.close()
    assert_served(server, row)
