"""What export costs the process: OTLP encoding of the spans a request makes, their export over
gRPC to a real collector (the shipped config, started by the harness), and one metric
collection + OTLP encoding of everything the service exports."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from bench.cost_table import Piece
from bench.micro_telemetry import SPAN_BATCH

GROUP = "export (the span processor's thread, per span)"
# The service's default (service/telemetry/exporters.py DEFAULT_EXPORT_TIMEOUT_S).
EXPORT_TIMEOUT_S = 2.0


def encode_piece(spans: list[ReadableSpan], counted: bool) -> Piece:
    """OTLP protobuf encoding of one export batch of real request spans, per span."""
    batch = spans[:SPAN_BATCH]
    return Piece(
        GROUP, "OTLP encode (encode_spans + SerializeToString), per span",
        lambda: encode_spans(batch).SerializeToString(), 5,
        calls=(3, 3) if counted else (0, 0), operations=len(batch), layer="export",
    )  # fmt: skip


def grpc_export_piece(spans: list[ReadableSpan], collector: str) -> Piece:
    """The OTLP/gRPC exporter's export() of one batch to the live collector, per span: encoding
    and sending, what the processor's thread does per batch."""
    exporter = OTLPSpanExporter(
        endpoint=f"http://{collector}", insecure=True, timeout=EXPORT_TIMEOUT_S
    )
    batch = spans[:SPAN_BATCH]

    def export() -> None:
        if exporter.export(batch) is not SpanExportResult.SUCCESS:
            raise RuntimeError(f"the collector at {collector} refused a span batch")

    return Piece(
        GROUP, "OTLP/gRPC export to the live collector (encode + send), per span",
        export, 3, calls=(3, 3), operations=len(batch), layer="export",
    )  # fmt: skip


def metric_collection_piece(reader: InMemoryMetricReader) -> Piece:
    """One collection (observable callbacks included) and its OTLP encoding: paid once per
    export interval (60 s by default), not per request."""

    def collect_and_encode() -> None:
        data = reader.get_metrics_data()
        assert data is not None
        encode_metrics(data).SerializeToString()

    return Piece(
        "export (per metric export interval, not per request)",
        "metric collection + OTLP encode of every series, per export",
        collect_and_encode, 5, calls=(0, 0), layer="export",
    )  # fmt: skip
