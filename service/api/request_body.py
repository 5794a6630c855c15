"""Reading a JSON request body safely: media type checked, size capped before and while reading.

Shared by every route that takes a JSON body (/predict, /feedback).
"""

from __future__ import annotations

from typing import IO

from flask import request
from werkzeug.exceptions import ClientDisconnected

from service.api.errors import ApiError
from service.api.state import app_state

# RFC 8259 JSON is UTF-8; a body declared in another charset is refused rather than guessed at.
_UTF8 = ("utf-8", "utf8")


def require_json() -> None:
    """415 unless the request says application/json in UTF-8."""
    charset = request.mimetype_params.get("charset", "utf-8").lower()
    if request.mimetype != "application/json" or charset not in _UTF8:
        got = request.headers.get("Content-Type", "none")
        raise ApiError(
            "unsupported_media_type",
            f"Content-Type must be application/json (UTF-8), got {got[:100]!r}",
        )


def read_body(limit: int) -> bytes:
    """The body, refusing before reading when Content-Length is too big, never reading more
    than ``limit + 1`` bytes of a chunked one, and within MLAPI_REQUEST_TIMEOUT_S (408)."""
    content_length = request.content_length
    if content_length is not None and content_length > limit:
        raise _too_large(limit)
    deadline = app_state().read_deadline
    # gunicorn hands the client socket to the app; the deadline shuts its read side when due.
    with deadline.watch(request.environ.get("gunicorn.socket")) as read:
        try:
            body = _read_capped(request.stream, limit)
        except ClientDisconnected:
            if not read.expired:
                raise
    # Checked after a clean read too: a cut chunked body can end like a complete one.
    if read.expired:
        raise ApiError(
            "request_timeout",
            f"the body did not arrive within {deadline.timeout_s} s (MLAPI_REQUEST_TIMEOUT_S)",
        )
    return body


def _read_capped(stream: IO[bytes], limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise _too_large(limit)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError("payload_too_large", f"the body is larger than the limit of {limit} bytes")
