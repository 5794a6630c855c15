"""Shared by the telemetry unit tests: a small model card and in-memory metric lookup."""
# The card: two features in [0, 1], target 5..50, drift bins CRIM 3, RM 2, prediction 3;
# thresholds high 40 / low 10; holdout MAE 2.

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from service.model.drift_reference import DriftReference
from service.model.thresholds import Thresholds


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
class Holdout:
    mae: float = 2.0


def _drift() -> tuple[DriftReference, ...]:
    return (
        DriftReference("CRIM", (0.25, 0.5), (0.25, 0.25, 0.5)),
        DriftReference("RM", (0.5,), (0.5, 0.5)),
        DriftReference("prediction", (20.0, 30.0), (0.3, 0.4, 0.3)),
    )


@dataclass
class Card:
    name: str = "housing"
    version: str = "3"
    artifact_sha256: str = "ab" * 32
    trained_at: str = "2026-11-26T20:00:00Z"
    features: list[Feature] = field(default_factory=lambda: [Feature("CRIM"), Feature("RM")])
    target: Target = field(default_factory=Target)
    holdout: Holdout = field(default_factory=Holdout)
    drift: tuple[DriftReference, ...] = field(default_factory=_drift)
    thresholds: Thresholds = field(
        default_factory=lambda: Thresholds(prediction_high=40.0, prediction_low=10.0)
    )


def metrics_by_name(reader: InMemoryMetricReader) -> dict:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: metric
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
    }
