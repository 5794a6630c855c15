"""Where this process's traces and metrics go, decided from the standard OTEL_* variables alone
(so it can be read before fork, and by the start-up checks).

- OTLP (push) for traces and/or metrics when `OTEL_{TRACES,METRICS}_EXPORTER=otlp`, or when they are
  unset and `OTEL_EXPORTER_OTLP[_{TRACES,METRICS}]_ENDPOINT` is set. Protocol from
  `OTEL_EXPORTER_OTLP[_{SIGNAL}]_PROTOCOL` (`grpc`, the Python SDK's default, or `http/protobuf`);
  endpoint and headers are read by the exporters themselves.
- Embedded (pull, the default without a collector): metrics through the OTel Prometheus reader into
  a private registry that the app serves as `/metrics`; traces are not exported, so spans are not
  recorded (ids still propagate) and exemplars are off, unless OTEL_TRACES_SAMPLER /
  OTEL_METRICS_EXEMPLAR_FILTER say otherwise.
- `OTEL_SDK_DISABLED=true`: no providers, no instrumentation, no-op tracer and meter; there is no
  `/metrics` route (it answers the API's JSON 404, as it does in OTLP mode).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

ExporterKind = Literal["otlp", "prometheus", "none"]
OTLP_PROTOCOLS = ("grpc", "http/protobuf")


@dataclass(frozen=True)
class ExportPlan:
    """Where traces and metrics go, decided from the environment alone (usable before fork)."""

    disabled: bool
    traces: ExporterKind
    metrics: ExporterKind
    traces_protocol: str
    metrics_protocol: str

    @property
    def embedded_metrics(self) -> bool:
        return not self.disabled and self.metrics == "prometheus"


def _env(environ: Mapping[str, str], name: str) -> str:
    return environ.get(name, "").strip()


def exporter_kind(environ: Mapping[str, str], signal: str, pull_default: str) -> str:
    """OTEL_<SIGNAL>_EXPORTER; unset, `otlp` when an OTLP endpoint variable is set, else
    `pull_default`."""
    explicit = _env(environ, f"OTEL_{signal}_EXPORTER").lower()
    if explicit:
        # A list is allowed by the spec; the first entry decides here (one exporter per signal).
        return explicit.split(",")[0].strip()
    if _env(environ, "OTEL_EXPORTER_OTLP_ENDPOINT") or _env(
        environ, f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT"
    ):
        return "otlp"
    return pull_default


def otlp_protocol(environ: Mapping[str, str], signal: str) -> str:
    return (
        _env(environ, f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or _env(environ, "OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )


def export_plan(environ: Mapping[str, str] | None = None) -> ExportPlan:
    """Read the standard OTEL_* variables and decide the export path; raises on unknown values."""
    env = os.environ if environ is None else environ
    plan = ExportPlan(
        disabled=_env(env, "OTEL_SDK_DISABLED").lower() == "true",
        traces=exporter_kind(env, "TRACES", "none"),  # type: ignore[arg-type]
        metrics=exporter_kind(env, "METRICS", "prometheus"),  # type: ignore[arg-type]
        traces_protocol=otlp_protocol(env, "TRACES"),
        metrics_protocol=otlp_protocol(env, "METRICS"),
    )
    if plan.traces not in ("otlp", "none"):
        raise ValueError(f"OTEL_TRACES_EXPORTER={plan.traces!r}: supported are otlp, none")
    if plan.metrics not in ("otlp", "prometheus", "none"):
        raise ValueError(
            f"OTEL_METRICS_EXPORTER={plan.metrics!r}: supported are otlp, prometheus, none"
        )
    for protocol in {plan.traces_protocol, plan.metrics_protocol}:
        if protocol not in OTLP_PROTOCOLS:
            raise ValueError(f"OTLP protocol {protocol!r}: supported are grpc, http/protobuf")
    return plan
