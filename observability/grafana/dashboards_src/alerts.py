"""Alerts dashboard (uid mlapi-alerts): what fires or is about to, and whether alerting itself works
(rules evaluate, Prometheus reaches Alertmanager, notifications go out)."""

from __future__ import annotations

from observability.grafana.dashboards_src import grafana as g
from observability.grafana.dashboards_src import metrics as m
from observability.grafana.dashboards_src.promql import or_zero_where, rate, sum_by

UID = "mlapi-alerts"


def alert_list() -> g.Json:
    return g.alert_list(
        "Firing and pending alerts",
        "Every alerting rule currently firing or pending (its `for` not yet elapsed), from the "
        "Prometheus rules in observability/prometheus/rules/alerts.yml. Each alert links to its "
        "runbook in the README.",
    )


def alert_states() -> g.Json:
    return g.timeseries(
        "Alerts over time",
        "Active alerts by name and state (Prometheus' ALERTS series): when each alert started "
        "pending, fired and resolved in the time range.",
        [
            g.prometheus_target(
                sum_by(["alertname", "alertstate"], m.ALERTS),
                f"{g.label('alertname')} {g.label('alertstate')}",
            )
        ],
        unit=g.COUNT,
    )


def alertmanagers_discovered() -> g.Json:
    return g.stat(
        "Alertmanagers reached",
        "Alertmanagers Prometheus currently sends alerts to. Zero means alerts fire into the void.",
        [g.prometheus_target(sum_by([], m.ALERTMANAGERS_DISCOVERED), "alertmanagers")],
        unit=g.COUNT,
        width=8,
        thresholds=((None, "red"), (1, "green")),
    )


def notifications() -> g.Json:
    sent = sum_by([], rate(m.NOTIFICATIONS_SENT))
    return g.timeseries(
        "Notifications to Alertmanager",
        "Alert notifications Prometheus sent to Alertmanager per second, and the ones that failed.",
        [
            g.prometheus_target(sent, "sent"),
            g.prometheus_target(
                or_zero_where(sum_by([], rate(m.NOTIFICATIONS_ERRORS)), sent), "failed"
            ),
        ],
        unit=g.PER_SECOND,
        width=8,
    )


def rule_failures() -> g.Json:
    return g.timeseries(
        "Rule evaluation failures",
        "Failed evaluations per second per rule group (e.g. a query error after a metric "
        "rename). Non-zero means some recording or alerting rule is blind.",
        [
            g.prometheus_target(
                sum_by(
                    ["rule_group"],
                    rate(m.RULE_EVALUATION_FAILURES),
                ),
                g.label("rule_group"),
            )
        ],
        unit=g.PER_SECOND,
        width=8,
    )


def dashboard() -> g.Json:
    return g.dashboard(
        UID,
        "Alerts",
        "What fires or is pending now and over time, and whether the alerting path itself works.",
        [
            alert_list(),
            alert_states(),
            g.row("Alerting pipeline"),
            alertmanagers_discovered(),
            notifications(),
            rule_failures(),
        ],
    )
