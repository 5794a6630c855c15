"""Workarounds that reach into private OpenTelemetry APIs (SDK 1.45.1, instrumentation 0.66b1),
kept here so that each is in one place, named, and pinned by a unit test to those versions.

- Stable HTTP semantic conventions without writing the process environment: the instrumentation
  reads OTEL_SEMCONV_STABILITY_OPT_IN once per process into a private class mapping; there is no
  public way to opt one app in (semantic-conventions stability migration,
  open-telemetry/opentelemetry-python-contrib#2453). We set the mapping's HTTP entry.
- A bounded flush at shutdown: `BatchSpanProcessor.shutdown()` takes no timeout and waits up to
  30 s for an absent collector (open-telemetry/opentelemetry-python#4569); its inner batch
  processor's `shutdown(timeout_millis=...)` does take one.
"""

from __future__ import annotations

from opentelemetry.instrumentation._semconv import (
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _StabilityMode,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def use_stable_http_semconv() -> None:
    """Instrumentations set up after this emit the stable HTTP conventions only (`http`, not
    `http/dup`); the user's opt-ins for other signals are kept."""
    stability = _OpenTelemetrySemanticConventionStability
    stability._initialize()
    with stability._lock:
        stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = {
            **stability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING,
            _OpenTelemetryStabilitySignalType.HTTP: _StabilityMode.HTTP,
        }


def shutdown_span_processor(processor: BatchSpanProcessor, timeout_millis: float) -> None:
    """Flush what is queued and stop the export thread within `timeout_millis`."""
    processor._batch_processor.shutdown(timeout_millis=timeout_millis)
