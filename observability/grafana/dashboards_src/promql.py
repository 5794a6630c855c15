"""Small PromQL builders, so each query reads as what it computes and no string is repeated.

Grafana variables stay in the text (`$__rate_interval`, `$instance`...): Grafana renders them, and
the e2e test renders them the same way before running every query against the real Prometheus.
"""

from __future__ import annotations

from collections.abc import Sequence

RATE_INTERVAL = "$__rate_interval"


def eq(label: str, value: str) -> str:
    return f'{label}="{value}"'


def match(label: str, pattern: str) -> str:
    return f'{label}=~"{pattern}"'


def neq(label: str, value: str) -> str:
    return f'{label}!="{value}"'


def selector(metric: str, *matchers: str) -> str:
    return f"{metric}{{{', '.join(matchers)}}}" if matchers else metric


def rate(series: str, window: str = RATE_INTERVAL) -> str:
    return f"rate({series}[{window}])"


def increase(series: str, window: str = RATE_INTERVAL) -> str:
    return f"increase({series}[{window}])"


def aggregate(op: str, by: Sequence[str], expr: str) -> str:
    """`op by (labels) (expr)`, or `op(expr)` when `by` is empty."""
    return f"{op} by ({', '.join(by)}) ({expr})" if by else f"{op}({expr})"


def sum_by(by: Sequence[str], expr: str) -> str:
    return aggregate("sum", by, expr)


def max_by(by: Sequence[str], expr: str) -> str:
    return aggregate("max", by, expr)


def quantile(q: float, bucket_series: str, by: Sequence[str] = ()) -> str:
    """The q-quantile of a classic histogram's `_bucket` series, per `by` group."""
    return f"histogram_quantile({q}, {sum_by([*by, 'le'], rate(bucket_series))})"


def ratio(numerator: str, denominator: str) -> str:
    return f"{numerator}\n/\n{denominator}"


def or_zero_where(expr: str, reference: str) -> str:
    """`expr`, or 0 for every group of `reference` that `expr` lacks.

    A counter that was never incremented (no 5xx yet) has no series, so a ratio over it would show
    "No data" instead of 0 while traffic flows; where there is no traffic at all, it stays empty.
    """
    return f"({expr} or 0 * {reference})"


def error_ratio(errors: str, total: str, by: Sequence[str] = ()) -> str:
    """Share of `errors` among `total` (both series selectors of counters), per `by` group."""
    all_rate = sum_by(by, rate(total))
    return ratio(or_zero_where(sum_by(by, rate(errors)), all_rate), all_rate)


def mean(sum_series: str, count_series: str, by: Sequence[str] = ()) -> str:
    """Mean of a histogram over the rate window, from its `_sum` and `_count`."""
    return ratio(sum_by(by, rate(sum_series)), sum_by(by, rate(count_series)))
