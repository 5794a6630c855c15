"""The telemetry cost table: µs per request for each piece of the telemetry on the /predict
path, beside the rest of the request, with whole requests measured in-process to check the sum.

    python -m bench.micro [--quick] [--no-collector]

Real SDK objects as init_telemetry() builds them for the OTLP path; span export to a real
collector (the shipped config, as the bench starts it) unless --no-collector. Writes
bench/results/micro.json and micro.md and prints the table. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from google.protobuf.internal import api_implementation
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bench.bodies import BATCH_ROWS, write_bodies
from bench.cost_table import Row, layer_sum, measure, totals
from bench.micro_export import encode_piece, grpc_export_piece, metric_collection_piece
from bench.micro_payload import payload_pieces
from bench.micro_report import markdown
from bench.micro_request import Comparison, bare_app, compare, interleaved, summary
from bench.micro_telemetry import (
    DiscardingExporter,
    inside_request,
    instrumentation_pieces,
    metric_pieces,
    prediction_span_pieces,
    processor_piece,
    server_span_pieces,
)
from bench.report import RESULTS_DIR
from bench.run import STACK_BINARIES, clean_environment, hardware
from bench.service_api import Subject, build_subject, build_telemetry, default_model
from bench.variants import Servers
from bench.wsgi_request import call
from devstack.stack import Stack, locate_binaries

OFF, NOOP, OTLP = "telemetry off", "on, no-op span exporter", "on, OTLP to the collector"
BARE, ATTACHED = "bare Flask app", "bare Flask app + Telemetry.attach"
# Requests whose spans feed the export pieces (3 spans each: server, validate, model.predict).
CAPTURE_REQUESTS = 200
PACKAGES = (
    "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-instrumentation-flask", "protobuf", "grpcio", "flask", "werkzeug",
    "orjson", "msgspec",
)  # fmt: skip


def local_telemetry() -> Any:
    """The OTLP path's providers with a no-op span exporter and one in-memory metric reader:
    the SDK's record path scales with the readers, and the OTLP path has one."""
    return build_telemetry(
        "local", span_exporter=DiscardingExporter(), metric_readers=[InMemoryMetricReader()]
    )


def capture_spans(subject: Subject, exporter: InMemorySpanExporter, body: bytes) -> list[Any]:
    for _ in range(CAPTURE_REQUESTS):
        call(subject.app, body)
    assert subject.telemetry.tracer_provider is not None
    subject.telemetry.tracer_provider.force_flush()
    return list(exporter.get_finished_spans())


def progress(row: Row) -> None:
    print(
        f"micro: {row.piece.name[:72]:72s} {row.best_us:9.2f} {row.median_us:9.2f} us",
        file=sys.stderr,
        flush=True,
    )


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "protobuf backend": api_implementation.Type()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def reconcile(
    rows: list[Row], whole: dict[str, Any], instrumentation: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each whole-request difference beside the sum of the pieces it should consist of; the
    remainder is what the table does not (yet) name."""
    checks = [
        ("1 row", "Flask instrumentation + attach hooks (bare app)",
         instrumentation["comparisons"]["Telemetry.attach"], {"attach"}, 0),
    ]  # fmt: skip
    for size, label in enumerate(whole):
        comparisons = whole[label]["comparisons"]
        for name, layers in (
            ("telemetry, no-op span exporter", {"attach", "service", "processor"}),
            ("telemetry, OTLP to the collector", {"attach", "service", "processor", "export"}),
        ):
            if name in comparisons:
                checks.append((label, name, comparisons[name], layers, size))
    return [
        {
            "request": label,
            "check": name,
            "measured_extra_us": comparison["extra_us"],
            "sum_of_pieces_us": round(layer_sum(rows, layers, size), 1),
            "not_attributed_us": round(comparison["extra_us"] - layer_sum(rows, layers, size), 1),
            "layers": sorted(layers),
        }
        for label, name, comparison, layers, size in checks
    ]


def run(repeat: int, rounds: int, collector: bool, workdir: Path) -> dict[str, Any]:
    model = default_model()
    bodies = write_bodies(workdir / "bodies")
    single, batch = bodies.single.read_bytes(), bodies.batch.read_bytes()
    servers = Servers(Stack(workdir / "stack", locate_binaries(STACK_BINARIES)))
    try:
        endpoint = None
        if collector:
            servers.start_collector()
            endpoint = servers.stack.otlp_grpc_endpoint
        # For the pieces: no span processor (it is a piece of its own), one metric reader.
        reader = InMemoryMetricReader()
        pieces_subject = build_subject(model, build_telemetry("local", metric_readers=[reader]))
        captured = InMemorySpanExporter()
        capture = build_subject(model, build_telemetry("local", span_exporter=captured))
        spans = capture_spans(capture, captured, single)
        subjects = {
            OFF: build_subject(model, build_telemetry("off")),
            NOOP: build_subject(model, local_telemetry()),
        }
        if endpoint is not None:
            subjects[OTLP] = build_subject(model, build_telemetry("otlp", collector=endpoint))
        apps = {name: subject.app for name, subject in subjects.items()}
        flushes = {
            name: subject.telemetry.tracer_provider.force_flush
            for name, subject in subjects.items()
            if subject.telemetry.tracer_provider is not None
        }
        with inside_request(pieces_subject) as live:
            pieces = [
                *server_span_pieces(pieces_subject, live),
                *instrumentation_pieces(),
                *prediction_span_pieces(pieces_subject),
                *metric_pieces(pieces_subject, live),
                processor_piece(spans),
                encode_piece(spans, counted=endpoint is None),
                *([grpc_export_piece(spans, endpoint)] if endpoint is not None else []),
                metric_collection_piece(reader),
                *payload_pieces(pieces_subject, {1: single, BATCH_ROWS: batch}, "0" * 32),
            ]
            rows = measure(pieces, repeat, progress)
        bare, attached = bare_app(), bare_app()
        local_telemetry().attach(attached)
        comparisons = [
            Comparison("telemetry, no-op span exporter", NOOP, OFF),
            Comparison("telemetry, OTLP to the collector", OTLP, OFF),
        ]
        whole = {}
        for label, body, number in (("1 row", single, 300), (f"{BATCH_ROWS} rows", batch, 8)):
            figures = interleaved(apps, body, number, rounds, flushes)
            whole[label] = {
                "variants": summary(figures),
                "comparisons": compare(figures, comparisons),
            }
        figures = interleaved({BARE: bare, ATTACHED: attached}, single, 1000, rounds)
        instrumentation = {
            "variants": summary(figures),
            "comparisons": compare(figures, [Comparison("Telemetry.attach", ATTACHED, BARE)]),
        }
    finally:
        servers.stop()
    return {
        "rows": [row.to_dict() for row in rows],
        "totals_us_per_request": totals(rows),
        "whole_requests": whole,
        "flask_instrumentation": instrumentation,
        "reconciliation": reconcile(rows, whole, instrumentation),
        "spans_per_request": len(spans) / CAPTURE_REQUESTS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats, 3 rounds")
    parser.add_argument("--repeat", type=int, help="repeats per piece (default 7)")
    parser.add_argument("--rounds", type=int, help="interleaved whole-request rounds (default 5)")
    parser.add_argument("--no-collector", action="store_true", help="skip the gRPC export piece")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 7)
    rounds = args.rounds or (3 if args.quick else 5)
    clean_environment()
    started = time.monotonic()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="mlapi-micro-") as tmp:
        document = run(repeat, rounds, not args.no_collector, Path(tmp))
    document["meta"] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "elapsed_s": round(time.monotonic() - started, 1),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "repeat": repeat,
        "rounds": rounds,
        "hardware": hardware(),
        "versions": versions(),
        "command": shlex.join(
            ["python", "-m", "bench.micro", *(sys.argv[1:] if argv is None else argv)]
        ),
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / "micro.json").write_text(json.dumps(document, indent=2) + "\n")
    text = markdown(document)
    (RESULTS_DIR / "micro.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
