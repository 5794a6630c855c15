"""Model quality dashboard (uid mlapi-quality): what the model predicts, what it is fed, whether its
inputs and outputs drift from training, and how accurate it is once ground truth arrives.

Shares, PSI and accuracy come from the recording rules (summed over every worker first); the team's
thresholds are drawn from the `mlapi:threshold:max` series, the same ones the alerts compare with.
"""

from __future__ import annotations

from observability.grafana.dashboards_src import grafana as g
from observability.grafana.dashboards_src import metrics as m
from observability.grafana.dashboards_src import variables
from observability.grafana.dashboards_src.promql import (
    aggregate,
    eq,
    increase,
    max_by,
    mean,
    neq,
    quantile,
    rate,
    selector,
    sum_by,
)

UID = "mlapi-quality"
WARN_COLOUR = "orange"
CRITICAL_COLOUR = "red"

ROWS = selector(m.PREDICTION_ROWS, m.BY_MODEL_VERSION, m.BY_INSTANCE)
PREDICTED_ROWS = selector(m.PREDICTION_ROWS, m.OUTCOME_OK, m.BY_MODEL_VERSION, m.BY_INSTANCE)


def threshold(name: str) -> g.Json:
    """The team's threshold `name` (from the model card) as a reference-line query."""
    return g.prometheus_target(
        max_by([], selector(m.THRESHOLDS, eq(m.THRESHOLD, name), m.BY_MODEL_VERSION)),
        f"threshold {name}",
    )


def with_thresholds(
    title: str,
    description: str,
    series: list[g.Json],
    lines: list[tuple[str, str]],
    *,
    unit: str,
) -> g.Json:
    """A time series panel whose `lines` ((threshold name, colour) pairs) follow `series` as
    dashed reference lines."""
    first_line = len(series)
    return g.timeseries(
        title,
        description,
        [*series, *(threshold(name) for name, _ in lines)],
        unit=unit,
        overrides=[
            g.threshold_line(chr(ord("A") + first_line + i), colour)
            for i, (_, colour) in enumerate(lines)
        ],
    )


def prediction_heatmap() -> g.Json:
    return g.heatmap(
        "Prediction distribution",
        "How many predictions fell in each value bucket (k$, the housing target MEDV) over time. "
        "Exemplar dots are real predictions: click an odd one to open the trace of the request "
        "that produced it.",
        g.prometheus_target(
            sum_by(
                ["le"],
                increase(selector(m.PREDICTION_BUCKET, m.BY_MODEL_VERSION, m.BY_INSTANCE)),
            ),
            g.label("le"),
            exemplar=True,
            fmt="heatmap",
        ),
        y_unit=g.THOUSAND_DOLLARS,
    )


def rows_by_model_version() -> g.Json:
    return g.timeseries(
        "Predicted rows by model version",
        "Rows predicted successfully per second, per model version: during a rollout both "
        "versions show, and the old one should fall to zero.",
        [
            g.prometheus_target(
                sum_by([m.MODEL_VERSION], rate(PREDICTED_ROWS)), g.label(m.MODEL_VERSION)
            )
        ],
        unit=g.ROWS_PER_SECOND,
    )


def mean_prediction_by_model_version() -> g.Json:
    by = [m.MODEL_VERSION]
    return g.timeseries(
        "Mean prediction by model version",
        "Average predicted value per model version (k$). A step at a deploy is a model change; a "
        "slow slide is the input population moving.",
        [
            g.prometheus_target(
                mean(
                    selector(m.PREDICTION_SUM, m.BY_MODEL_VERSION, m.BY_INSTANCE),
                    selector(m.PREDICTION_COUNT, m.BY_MODEL_VERSION, m.BY_INSTANCE),
                    by,
                ),
                g.label(m.MODEL_VERSION),
            )
        ],
        unit=g.THOUSAND_DOLLARS,
        min_value=None,
    )


def rows_by_outcome() -> g.Json:
    return g.timeseries(
        "Rows by outcome",
        "Rows received per second by outcome: ok (predicted), rejected (failed validation), "
        "error (the model call failed).",
        [g.prometheus_target(sum_by([m.OUTCOME], rate(ROWS)), g.label(m.OUTCOME))],
        unit=g.ROWS_PER_SECOND,
    )


def rows_per_request() -> g.Json:
    buckets = selector(m.BATCH_SIZE_BUCKET, m.BY_MODEL_VERSION, m.BY_INSTANCE)
    return g.timeseries(
        "Rows per request",
        "Batch size of the requests that reached the model: median, 95th percentile and mean. "
        "Bigger batches mean longer model calls.",
        [
            g.prometheus_target(quantile(0.5, buckets), "p50"),
            g.prometheus_target(quantile(0.95, buckets), "p95"),
            g.prometheus_target(
                mean(
                    selector(f"{m.BATCH_SIZE}_sum", m.BY_MODEL_VERSION, m.BY_INSTANCE),
                    selector(f"{m.BATCH_SIZE}_count", m.BY_MODEL_VERSION, m.BY_INSTANCE),
                ),
                "mean",
            ),
        ],
        unit=g.ROWS,
    )


def rejected_inputs() -> g.Json:
    return g.timeseries(
        "Rejected input by reason and feature",
        "Validation problems per second by reason (missing, wrong type, not finite...) and "
        "feature (_none when the problem is not about one feature, _unknown for a field the "
        "model does not know).",
        [
            g.prometheus_target(
                sum_by(
                    [m.REASON, m.FEATURE],
                    rate(selector(m.INPUT_REJECTED, m.BY_MODEL_VERSION, m.BY_INSTANCE)),
                ),
                f"{g.label(m.REASON)} {g.label(m.FEATURE)}",
            )
        ],
        unit=g.PER_SECOND,
    )


def out_of_range_share() -> g.Json:
    return with_thresholds(
        "Out-of-range share by feature",
        "Share of predicted rows (15 min) whose feature value lay below or above the training "
        "range: the model extrapolates there. The dashed line is the card's out_of_range_share "
        "alert threshold.",
        [
            g.prometheus_target(
                max_by(
                    [m.FEATURE, m.DIRECTION], selector(m.OUT_OF_RANGE_SHARE, m.BY_MODEL_VERSION)
                ),
                f"{g.label(m.FEATURE)} {g.label(m.DIRECTION)}",
            )
        ],
        [("out_of_range_share", CRITICAL_COLOUR)],
        unit=g.RATIO,
    )


PSI_LINES = [("psi_warn", WARN_COLOUR), ("psi_critical", CRITICAL_COLOUR)]


def feature_psi() -> g.Json:
    return _psi(
        "Feature drift (PSI, 1 h)",
        "Population stability index of each feature over the last hour against the training "
        "distribution (fixed reference bins). Dashed lines: the card's psi_warn and psi_critical. "
        "Below the card's drift_min_observations, PSI is mostly sampling noise.",
        neq(m.FEATURE, m.PREDICTION_FEATURE),
        m.FEATURE,
    )


def prediction_psi() -> g.Json:
    return _psi(
        "Prediction drift (PSI, 1 h)",
        "Population stability index of the predictions themselves over the last hour against the "
        "predictions on the training data: the model's output distribution has moved when this "
        "crosses the dashed thresholds.",
        eq(m.FEATURE, m.PREDICTION_FEATURE),
        m.MODEL_VERSION,
    )


def _psi(title: str, description: str, feature_matcher: str, series_label: str) -> g.Json:
    """The PSI recording rule's series picked by `feature_matcher`, one line per `series_label`,
    with the card's psi_warn and psi_critical dashed."""
    return with_thresholds(
        title,
        description,
        [
            g.prometheus_target(
                max_by([series_label], selector(m.PSI, feature_matcher, m.BY_MODEL_VERSION)),
                g.label(series_label),
            )
        ],
        PSI_LINES,
        unit=g.NO_UNIT,
    )


def drift_window_size() -> g.Json:
    return with_thresholds(
        "Observations in the drift window",
        "Values counted per feature over the PSI window (1 h), smallest feature shown. Under the "
        "dashed drift_min_observations line the drift alerts stay silent: PSI is noise there.",
        [
            g.prometheus_target(
                aggregate("min", [], selector(m.DRIFT_OBSERVATIONS, m.BY_MODEL_VERSION)),
                "observations",
            )
        ],
        [("drift_min_observations", WARN_COLOUR)],
        unit=g.COUNT,
    )


def live_error() -> g.Json:
    by = [m.MODEL_VERSION]
    return with_thresholds(
        "Live MAE / RMSE (1 h)",
        "Mean absolute and root-mean-square error of predictions whose ground truth came back "
        "through /feedback in the last hour, per model version (k$). Dashed: the mae_ceiling alert "
        "threshold (a multiple of the holdout MAE). Empty until feedback flows.",
        [
            g.prometheus_target(
                max_by(by, selector(m.FEEDBACK_MAE, m.BY_MODEL_VERSION)),
                f"MAE {g.label(m.MODEL_VERSION)}",
            ),
            g.prometheus_target(
                max_by(by, selector(m.FEEDBACK_RMSE, m.BY_MODEL_VERSION)),
                f"RMSE {g.label(m.MODEL_VERSION)}",
            ),
        ],
        [("mae_ceiling", CRITICAL_COLOUR)],
        unit=g.THOUSAND_DOLLARS,
    )


def feedback_rows() -> g.Json:
    return g.timeseries(
        "Feedback rows",
        "Ground-truth rows received per second, per model version that made the prediction.",
        [
            g.prometheus_target(
                sum_by([m.MODEL_VERSION], rate(selector(m.FEEDBACK_ROWS, m.BY_MODEL_VERSION))),
                g.label(m.MODEL_VERSION),
            )
        ],
        unit=g.ROWS_PER_SECOND,
    )


def feedback_delay() -> g.Json:
    buckets = selector(m.FEEDBACK_DELAY_BUCKET, m.BY_MODEL_VERSION)
    return g.timeseries(
        "Feedback delay p50 / p95",
        "Time between a prediction and its ground truth arriving. Live MAE covers predictions "
        "at least this old.",
        [
            g.prometheus_target(quantile(0.5, buckets), "p50"),
            g.prometheus_target(quantile(0.95, buckets), "p95"),
        ],
        unit=g.SECONDS,
    )


def dashboard() -> g.Json:
    return g.dashboard(
        UID,
        "Model quality",
        "What the model predicts and is fed, whether inputs and predictions drift from training, "
        "and how accurate it is once ground truth arrives.",
        [
            g.row("Predictions (exemplars open traces)"),
            prediction_heatmap(),
            rows_by_model_version(),
            mean_prediction_by_model_version(),
            rows_by_outcome(),
            rows_per_request(),
            g.row("Inputs"),
            rejected_inputs(),
            out_of_range_share(),
            g.row("Drift"),
            feature_psi(),
            prediction_psi(),
            drift_window_size(),
            g.row("Live accuracy (feedback)"),
            live_error(),
            feedback_rows(),
            feedback_delay(),
        ],
        variables.BOTH,
    )
