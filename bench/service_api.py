"""The service as the micro-benchmark sees it: the one module of bench.micro* that imports
service code, through its entry points (create_app, init_telemetry, ModelInstruments,
PredictionTelemetry), so a restructure of service/ is repointed here alone. The few private
attributes the cost table needs (single instruments) are read here too, and named as such.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from flask import Flask
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from service.api.app import create_app
from service.api.prediction_telemetry import PredictionTelemetry
from service.api.state import AppState
from service.credentials import FeedbackKeys
from service.model.default_model import ensure_default_model
from service.model.store import LoadedModel
from service.settings import Settings
from service.telemetry.http_server import EXCLUDED_URLS
from service.telemetry.instruments import ModelInstruments
from service.telemetry.otel_patches import record_many
from service.telemetry.setup import Telemetry, init_telemetry

Mode = Literal["off", "local", "otlp"]
# A fixed key: without one every app would log a warning and sign with a random key.
FEEDBACK_KEY = "bench-micro-feedback-key-0123456789abcdef"


def default_model() -> LoadedModel:
    """The built-in default model, as `mlapi serve` serves it without MLAPI_MODEL_PATH."""
    return ensure_default_model(Settings().cache_dir)


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
    env: dict[str, str] = {}
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
    def state(self) -> AppState:
        return AppState.of(self.app)

    @property
    def instruments(self) -> ModelInstruments:
        return self.state.instruments

    @property
    def prediction_telemetry(self) -> PredictionTelemetry:
        return self.state.observed

    def parse(self, body: bytes) -> np.ndarray:
        return self.state.parser.parse(body)

    def sign(self, predictions: list[float]) -> list[str]:
        return self.state.ids.issue(predictions, self.model.card.version, int(time.time()))

    def response_json(self, document: dict[str, Any]) -> str:
        """The response body as the app's JSON provider writes it."""
        return self.app.json.dumps(document)

    def response(self, predictions: list[float], trace_id: str | None) -> dict[str, Any]:
        """The /predict response document (service/api/routes/predict.py)."""
        document: dict[str, Any] = {
            "predictions": predictions,
            "ids": self.sign(predictions),
            "model": self.state.model_ref,
        }
        if trace_id is not None:
            document["trace_id"] = trace_id
        return document


def excluded_urls() -> str:
    """The URL patterns the Flask instrumentation is given (no user additions)."""
    return ",".join(EXCLUDED_URLS)


def build_telemetry(
    mode: Mode,
    *,
    collector: str | None = None,
    span_exporter: SpanExporter | None = None,
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """init_telemetry() from the environment of `mode`; for `local`, `span_exporter` goes behind
    a BatchSpanProcessor with the SDK's defaults, as service/telemetry/setup.py wires OTLP's."""
    with _environment(_mode_environment(mode, collector)):
        telemetry = init_telemetry(extra_metric_readers=metric_readers)
    if mode == "local" and span_exporter is not None:
        assert telemetry.tracer_provider is not None
        telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    return telemetry


def build_subject(model: LoadedModel, telemetry: Telemetry) -> Subject:
    settings = Settings(feedback_keys=FeedbackKeys(FEEDBACK_KEY.encode()))
    return Subject(create_app(settings, model, telemetry), telemetry, model)


@dataclass(frozen=True)
class InstrumentCalls:
    """Single instrument calls of ModelInstruments.record_predictions (private attributes)."""

    prediction_record: Callable[..., None]  # (value, context=None)
    prediction_record_many: Callable[[np.ndarray], None]
    inference_record: Callable[[float], None]
    batch_record: Callable[[int], None]
    signals_record: Callable[[np.ndarray, np.ndarray], None]


def instrument_calls(instruments: ModelInstruments) -> InstrumentCalls:
    model = instruments._model_attrs
    return InstrumentCalls(
        prediction_record=lambda v, ctx=None: instruments._prediction.record(v, model, ctx),
        prediction_record_many=lambda v: record_many(instruments._prediction, v, model),
        inference_record=lambda s: instruments._inference.record(s, model),
        batch_record=lambda n: instruments._batch.record(n, model),
        signals_record=instruments._signals.record,
    )
