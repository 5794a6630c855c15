"""Every metric, recording rule and label name the dashboards query, in one place.

Service metrics are the OTel instruments of service/telemetry/ as the collector's prometheus
exporter names them (dots -> underscores, unit suffix, `_total` on
counters); the `mlapi:` and `job:` names are recording rules of
observability/prometheus/rules/recording.yml. The e2e test runs every query against the real stack,
so a rename on either side fails there.
"""

from __future__ import annotations

from observability.grafana.dashboards_src.promql import eq, match

SERVICE = "mlapi"

# Labels (OTel attribute and resource names with dots as underscores).
INSTANCE = "service_instance_id"
MODEL_VERSION = "model_version"
ROUTE = "http_route"
STATUS_CODE = "http_response_status_code"
FEATURE = "feature"
DIRECTION = "direction"
REASON = "reason"
OUTCOME = "outcome"
THRESHOLD = "threshold"

# Dashboard variables and the matchers that apply them.
INSTANCE_VAR = "instance"
MODEL_VERSION_VAR = "model_version"
BY_INSTANCE = match(INSTANCE, f"${INSTANCE_VAR}")
BY_MODEL_VERSION = match(MODEL_VERSION, f"${MODEL_VERSION_VAR}")

# HTTP server (Flask instrumentation, stable semantic conventions).
HTTP_DURATION = "http_server_request_duration_seconds"
HTTP_DURATION_BUCKET = f"{HTTP_DURATION}_bucket"
HTTP_REQUESTS = f"{HTTP_DURATION}_count"
HTTP_ACTIVE = "http_server_active_requests"
SERVER_ERROR = match(STATUS_CODE, "5..")
CLIENT_ERROR = match(STATUS_CODE, "4..")

# Model (service/telemetry/instruments.py).
PREDICTION_BUCKET = "mlapi_prediction_value_bucket"
PREDICTION_SUM = "mlapi_prediction_value_sum"
PREDICTION_COUNT = "mlapi_prediction_value_count"
PREDICTION_ROWS = "mlapi_prediction_rows_total"
OUTCOME_OK = eq(OUTCOME, "ok")
INFERENCE_BUCKET = "mlapi_model_inference_duration_seconds_bucket"
BATCH_SIZE = "mlapi_prediction_batch_size"
BATCH_SIZE_BUCKET = f"{BATCH_SIZE}_bucket"
INPUT_REJECTED = "mlapi_input_rejected_total"

# Feedback (live accuracy).
FEEDBACK_ROWS = "mlapi_feedback_rows_total"
FEEDBACK_DELAY_BUCKET = "mlapi_feedback_delay_seconds_bucket"

# Recording rules.
THRESHOLDS = "mlapi:threshold:max"
OUT_OF_RANGE_SHARE = "mlapi:feature_out_of_range:ratio15m"
PSI = "mlapi:drift_psi:1h"
DRIFT_OBSERVATIONS = "mlapi:drift_observations_per_feature:increase1h"
FEEDBACK_MAE = "mlapi:feedback_mae:1h"
FEEDBACK_RMSE = "mlapi:feedback_rmse:1h"
PREDICTION_FEATURE = "prediction"  # the `feature` label value of the predictions' own PSI

# Span metrics (collector span_metrics connector).
SPAN_CALLS = "traces_span_metrics_calls_total"
SPAN_DURATION_BUCKET = "traces_span_metrics_duration_milliseconds_bucket"
SPAN_NAME = "span_name"
SPAN_ERROR = eq("status_code", "STATUS_CODE_ERROR")
OF_SERVICE = eq("service_name", SERVICE)

# Collector internals (its own /metrics), as Prometheus stores them: scraped as OpenMetrics, the
# counters carry `_total` (measured, collector 0.165 + Prometheus 3.16). The failure counters only
# appear after a first failure.
COLLECTOR_JOB = eq("job", "otel-collector-internal")
RECEIVER_ACCEPTED = "otelcol_receiver_accepted_{signal}_total"
RECEIVER_REFUSED = "otelcol_receiver_refused_{signal}_total"
EXPORTER_SENT = "otelcol_exporter_sent_{signal}_total"
EXPORTER_FAILED = "otelcol_exporter_send_failed_{signal}_total"
COLLECTOR_SIGNALS = ("spans", "metric_points")
EXPORTER_QUEUE_SIZE = "otelcol_exporter_queue_size"
EXPORTER_QUEUE_CAPACITY = "otelcol_exporter_queue_capacity"

# Prometheus' own health and alert state.
UP = "up"
ALERTS = "ALERTS"
NOTIFICATIONS_SENT = "prometheus_notifications_sent_total"
NOTIFICATIONS_ERRORS = "prometheus_notifications_errors_total"
ALERTMANAGERS_DISCOVERED = "prometheus_notifications_alertmanagers_discovered"
RULE_EVALUATION_FAILURES = "prometheus_rule_evaluation_failures_total"
