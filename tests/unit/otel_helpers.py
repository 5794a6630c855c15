"""Shared by the telemetry unit tests: a small model card and in-memory metric lookup."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.sdk.metrics.export import InMemoryMetricReader


@dataclass
class Feature:
    name: str
    min: float = 0.0
    max: float = 1.0


@dataclass
class Target:
    min: float = 5.0
    max: float = 50.0


@dataclass
class Card:
    name: str = "housing"
    version: str = "3"
    artifact_sha256: str = "ab" * 32
    trained_at: str = "2026-11-26T20:00:00Z"
    features: list[Feature] = field(default_factory=lambda: [Feature("CRIM"), Feature("RM")])
    target: Target = field(default_factory=Target)


def metrics_by_name(reader: InMemoryMetricReader) -> dict:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: metric
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    }
