"""The body-read deadline on real sockets (socketpairs): a read past its deadline ends at once,
a finished one is never touched afterwards."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from service.api.read_deadline import ReadDeadline

TIMEOUT_S = 0.2
# Only there so that a broken deadline fails the test instead of hanging it.
SAFETY_TIMEOUT_S = 20.0


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made: list[tuple[socket.socket, socket.socket]] = []
    for _ in range(3):
        server, client = socket.socketpair()
        server.settimeout(SAFETY_TIMEOUT_S)
        made.append((server, client))
    yield made
    for server, client in made:
        server.close()
        client.close()


def test_a_stalled_read_ends_at_the_deadline(pairs):
    server, client = pairs[0]
    client.sendall(b'{"records": [')  # part of a body, then nothing more
    deadline = ReadDeadline(TIMEOUT_S)
    with deadline.watch(server) as read:
        assert server.recv(100) == b'{"records": ['
        assert server.recv(100) == b""  # end-of-file: the read side was shut
    assert read.expired


def test_a_trickled_read_ends_at_the_deadline(pairs):
    server, client = pairs[0]
    deadline = ReadDeadline(TIMEOUT_S)
    received = b""
    with deadline.watch(server) as read:
        for _ in range(200):  # far longer than the deadline at 0.05 s a byte
            try:
                client.sendall(b" ")
            except BrokenPipeError:  # a Unix socket refuses data once its reader shut down
                break
            chunk = server.recv(100)
            if not chunk:
                break
            received += chunk
            time.sleep(0.05)
        assert server.recv(100) == b""
    assert read.expired
    assert 0 < len(received) < 200


def wait_out_a_deadline(deadline: ReadDeadline, sock: socket.socket) -> None:
    """Return once the watcher has shut a stalled read entered now, and therefore (deadlines
    expire in the order reads were entered) has dealt with every read entered before it."""
    with deadline.watch(sock) as stalled:
        assert sock.recv(100) == b""
    assert stalled.expired


def test_a_finished_read_is_never_shut_afterwards(pairs):
    (server, client), (clock, _) = pairs[:2]
    deadline = ReadDeadline(TIMEOUT_S)
    with deadline.watch(server) as read:
        client.sendall(b"{}")
        assert server.recv(100) == b"{}"
    wait_out_a_deadline(deadline, clock)
    # The connection still carries data: a kept-alive connection's next request is safe.
    client.sendall(b"next")
    assert server.recv(100) == b"next"
    assert not read.expired


def test_only_the_stalled_read_among_several_expires(pairs):
    deadline = ReadDeadline(TIMEOUT_S)
    (first, first_client), (stalled, _), (last, last_client) = pairs
    # Entered in this order; the first and the last finish while the middle one waits.
    watches = [deadline.watch(sock) for sock in (first, stalled, last)]
    first_read, stalled_read, last_read = (watch.__enter__() for watch in watches)
    for sock, client, watch in ((first, first_client, watches[0]), (last, last_client, watches[2])):
        client.sendall(b"x")
        assert sock.recv(10) == b"x"
        watch.__exit__(None, None, None)
    assert stalled.recv(10) == b""
    watches[1].__exit__(None, None, None)
    assert (first_read.expired, stalled_read.expired, last_read.expired) == (False, True, False)
    for sock, client in ((first, first_client), (last, last_client)):
        client.sendall(b"still open")
        assert sock.recv(100) == b"still open"


def test_without_a_socket_nothing_is_watched(pairs):
    (clock, _) = pairs[0]
    deadline = ReadDeadline(TIMEOUT_S)
    with deadline.watch(None) as read:
        wait_out_a_deadline(deadline, clock)
    assert not read.expired
