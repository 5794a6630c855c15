"""The rest of a /predict, for scale beside the telemetry: the body parsed (and, for
comparison only, its JSON decoded by the stdlib, orjson and msgspec), the model call, the
signed ids, and the response JSON (the app's provider, and the same alternatives)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from bench.cost_table import Piece
from bench.service_api import Subject

GROUP = "request path without telemetry (for scale)"
ALTERNATIVES = "  JSON alternatives (measured only)"
# The service's decoder settings (service/api/json_body.py): integers parse as floats.
STDLIB_DECODER = json.JSONDecoder(parse_int=float)


def _optional_codecs() -> dict[str, tuple[Callable[[bytes], Any], Callable[[Any], bytes]]]:
    """(decode, encode) of the third-party JSON libraries that are installed (the bench extra)."""
    codecs = {}
    try:
        import orjson

        codecs["orjson"] = (orjson.loads, orjson.dumps)
    except ImportError:
        pass
    try:
        import msgspec

        codecs["msgspec"] = (msgspec.json.decode, msgspec.json.encode)
    except ImportError:
        pass
    return codecs


def payload_pieces(subject: Subject, bodies: dict[int, bytes], trace_id: str) -> list[Piece]:
    """`bodies`: rows -> request body, as bench/bodies.py writes them (1 and 1000 rows)."""
    pieces = []
    codecs = _optional_codecs()
    for size, (rows, body) in enumerate(sorted(bodies.items())):
        label = f"{rows} row" + ("s" if rows > 1 else "")
        calls = (1, 0) if size == 0 else (0, 1)
        number = 2000 if rows == 1 else 20
        features = subject.parse(body)
        predictions = subject.model.predict(features).tolist()
        document = subject.response(predictions, trace_id)
        text = body.decode()
        pieces += [
            Piece(GROUP, f"PayloadParser.parse, {label} (JSON decode + matrix)",
                  lambda b=body: subject.parse(b), number, calls, telemetry=False),
            Piece(GROUP, f"model.predict, {label}",
                  lambda f=features: subject.model.predict(f), number, calls, telemetry=False),
            Piece(GROUP, f"prediction ids signed, {label}",
                  lambda p=predictions: subject.sign(p), number, calls, telemetry=False),
            Piece(GROUP, f"response JSON (app.json.dumps), {label}",
                  lambda d=document: subject.response_json(d), number, calls, telemetry=False),
            Piece(ALTERNATIVES, f"decode, stdlib json (parse_int=float), {label}",
                  lambda t=text: STDLIB_DECODER.decode(t), number, (0, 0), telemetry=False),
            Piece(ALTERNATIVES, f"encode, stdlib json.dumps, {label}",
                  lambda d=document: json.dumps(d), number, (0, 0), telemetry=False),
        ]  # fmt: skip
        for name, (decode, encode) in codecs.items():
            pieces += [
                Piece(ALTERNATIVES, f"decode, {name}, {label}",
                      lambda b=body, d=decode: d(b), number, (0, 0), telemetry=False),
                Piece(ALTERNATIVES, f"encode, {name}, {label}",
                      lambda d=document, e=encode: e(d), number, (0, 0), telemetry=False),
            ]  # fmt: skip
    return pieces
