"""A loopback HTTP/1.1 server answering every request with one fixed JSON body, at a small fraction
of the CPU our service needs per request: the server that can take any rate replay offers, so a
replay measurement against it shows the client's own ceiling.

`GET /model` answers the given card (replay reads it at start); everything else answers like
`/predict` for one row. Run as `python -m bench.fixed_api --port PORT --card model.card.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

PREDICTION = {"predictions": [22.0], "ids": [None], "model": {"name": "fixed", "version": "0"}}


def _response(status: bytes, payload: object) -> bytes:
    body = json.dumps(payload).encode()
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class _Connection(asyncio.Protocol):
    """Keep-alive requests with a Content-Length body (what replay sends), pipelining included."""

    def __init__(self, card: bytes, prediction: bytes) -> None:
        self._card = card
        self._prediction = prediction
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self._buffer) < end + 4 + length:
                return
            self._buffer = self._buffer[end + 4 + length :]
            is_card = head.startswith("GET /model ")
            assert self._transport is not None
            self._transport.write(self._card if is_card else self._prediction)


async def serve(port: int, card: dict) -> None:
    card_bytes = _response(b"200 OK", card)
    prediction = _response(b"200 OK", PREDICTION)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(card_bytes, prediction), "127.0.0.1", port, backlog=1024
    )
    async with server:
        await server.serve_forever()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--card", type=Path, required=True, help="the model card to serve")
    args = parser.parse_args()
    asyncio.run(serve(args.port, json.loads(args.card.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
