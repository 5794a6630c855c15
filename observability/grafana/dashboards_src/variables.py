"""The dashboard variables shared by the Model API and Model quality dashboards."""

from __future__ import annotations

from observability.grafana.dashboards_src import grafana
from observability.grafana.dashboards_src import metrics as m
from observability.grafana.dashboards_src.promql import selector

# Label values come from the prediction counter: every serving process exports it from its first
# request on, with both the model version and the process's instance id.
MODEL_VERSION = grafana.query_variable(
    m.MODEL_VERSION_VAR,
    "Model version",
    f"label_values({m.PREDICTION_ROWS}, {m.MODEL_VERSION})",
    "Model versions that served predictions in the time range; All matches every version.",
)
INSTANCE = grafana.query_variable(
    m.INSTANCE_VAR,
    "Instance",
    f"label_values({selector(m.PREDICTION_ROWS, m.BY_MODEL_VERSION)}, {m.INSTANCE})",
    "Serving processes (one per gunicorn worker: its OpenTelemetry service.instance.id).",
)
BOTH = (MODEL_VERSION, INSTANCE)
