"""The service as the micro-benchmark sees it: the one module of bench.micro* that imports
service code, through its entry points (create_app, init_telemetry, ModelInstruments,
PredictionTelemetry), so a restructure of service/ is repointed here alone. The few private
attributes the cost table needs (single instruments) are read here too, and named as such.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from flask import Flask
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from service.app import create_app
from service.config import Settings
from service.instruments import ModelCardLike, ModelInstruments
from service.model_store import LoadedModel, ensure_default_model
from service.prediction_ids import prediction_ids
from service.prediction_telemetry import EXTENSION_KEY as PREDICTION_TELEMETRY_KEY
from service.prediction_telemetry import PredictionTelemetry
from service.state import EXTENSION_KEY as STATE_KEY
from service.state import ServiceState
from service.telemetry import EXCLUDED_URLS, Telemetry, init_telemetry

Mode = Literal["off", "local", "otlp"]
# A fixed key: without one every app would log a warning and sign with a random key.
FEEDBACK_KEY = "bench-micro-feedback-key-0123456789abcdef"


def default_model() -> LoadedModel:
    """The built-in default model, as `mlapi serve` serves it without MLAPI_MODEL_PATH."""
    return ensure_default_model()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _mode_environment(mode: Mode, collector: str | None) -> dict[str, str]:
    env = {"MLAPI_FEEDBACK_KEY": FEEDBACK_KEY}
    if mode == "off":
        return env | {"OTEL_SDK_DISABLED": "true"}
    # As the bench's ours-otlp runs: every request traced, exemplars by the SDK's default filter.
    env |= {"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_SAMPLER": "parentbased_always_on"}
    if mode == "otlp":
        if collector is None:
            raise ValueError("mode otlp needs a collector endpoint")
        return env | {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{collector}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "otlp",
        }
    # local: the OTLP path's providers (sampler, resource, views, exemplar filter) with the
    # exporters replaced by the caller's (a span exporter behind a BatchSpanProcessor, a reader).
    return env | {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}


@dataclass(frozen=True)
class Subject:
    """One app built by the service's factory, and what the cost table reaches under it."""

    app: Flask
    telemetry: Telemetry
    model: LoadedModel

    @property
    def state(self) -> ServiceState:
        state: ServiceState = self.app.extensions[STATE_KEY]
        return state

    @property
    def prediction_telemetry(self) -> PredictionTelemetry:
        observer: PredictionTelemetry = self.app.extensions[PREDICTION_TELEMETRY_KEY]
        return observer

    def parse(self, body: bytes) -> np.ndarray:
        return self.state.parser.parse(body)

    def sign(self, predictions: list[float]) -> list[str]:
        return prediction_ids(self.state.signer, predictions, self.model.card.version)

    def response_json(self, document: dict[str, Any]) -> str:
        """The response body as the app's JSON provider writes it."""
        return self.app.json.dumps(document)

    def response(self, predictions: list[float], trace_id: str | None) -> dict[str, Any]:
        """The /predict response document (service/routes/predict.py)."""
        document: dict[str, Any] = {
            "predictions": predictions,
            "ids": self.sign(predictions),
            "model": self.state.model_ref,
        }
        if trace_id is not None:
            document["trace_id"] = trace_id
        return document


def excluded_urls() -> str:
    """The URL patterns Telemetry.attach() hands the Flask instrumentation (no user additions)."""
    return ",".join(EXCLUDED_URLS)


def build_telemetry(
    mode: Mode,
    card: ModelCardLike,
    *,
    collector: str | None = None,
    span_exporter: SpanExporter | None = None,
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """init_telemetry() from the environment of `mode`; for `local`, `span_exporter` goes behind
    a BatchSpanProcessor with the SDK's defaults, as service/telemetry.py wires the OTLP one."""
    with _environment(_mode_environment(mode, collector)):
        telemetry = init_telemetry(card, extra_metric_readers=metric_readers)
    if mode == "local" and span_exporter is not None:
        assert telemetry.tracer_provider is not None
        telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    return telemetry


def build_subject(model: LoadedModel, telemetry: Telemetry) -> Subject:
    with _environment({"MLAPI_FEEDBACK_KEY": FEEDBACK_KEY}):
        app = create_app(Settings(), model, telemetry)
    return Subject(app, telemetry, model)


@dataclass(frozen=True)
class InstrumentCalls:
    """Single instrument calls of ModelInstruments.record_predictions (private attributes)."""

    prediction_record: Callable[..., None]  # (value, context=None)
    inference_record: Callable[[float], None]
    batch_record: Callable[[int], None]
    rows_add: Callable[[int], None]
    signals_record: Callable[[np.ndarray, np.ndarray], None]


def instrument_calls(instruments: ModelInstruments) -> InstrumentCalls:
    model = instruments._model_attrs
    ok = instruments._outcome_attrs["ok"]
    return InstrumentCalls(
        prediction_record=lambda v, ctx=None: instruments._prediction.record(v, model, ctx),
        inference_record=lambda s: instruments._inference.record(s, model),
        batch_record=lambda n: instruments._batch.record(n, model),
        rows_add=lambda n: instruments._rows.add(n, ok),
        signals_record=instruments._signals.record,
    )
