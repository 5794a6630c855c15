"""bench/results/micro.md: the cost table and the whole-request check, from micro.json."""

from __future__ import annotations

from typing import Any

SIZES = ("1 row", "1000 rows")


def _calls(value: float) -> str:
    return "" if value == 0 else f"{value:g}"


def _cost(value: float) -> str:
    return "" if value == 0 else f"{value:,.1f}"


def piece_table(rows: list[dict[str, Any]], totals: dict[str, dict[str, float]]) -> list[str]:
    lines = [
        "| piece | CPU µs per call, best | median | calls, 1-row request | µs per 1-row request "
        "| calls, 1000-row request | µs per 1000-row request |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    group = None
    for row in rows:
        if row["group"] != group:
            group = row["group"]
            lines.append(f"| **{group}** | | | | | | |")
        calls, cost = row["calls_per_request"], row["us_per_request"]
        name = row["name"].strip()
        shown = f"↳ {name}" if row["name"].startswith("  ") else name
        lines.append(
            f"| {shown} | {row['best_us_per_operation']:,.2f} | "
            f"{row['median_us_per_operation']:,.2f} | {_calls(calls['1 row'])} | "
            f"{_cost(cost['1 row'])} | {_calls(calls['1000 rows'])} | {_cost(cost['1000 rows'])} |"
        )
    for label, key in (("telemetry, sum of its pieces", "telemetry"), ("rest, sum", "rest")):
        lines.append(
            f"| **{label}** | | | | **{totals[key]['1 row']:,.1f}** | | "
            f"**{totals[key]['1000 rows']:,.1f}** |"
        )
    return lines


def whole_table(whole: dict[str, Any]) -> list[str]:
    lines = [
        "| request | variant | CPU µs per request, median (per round) |",
        "| --- | --- | --- |",
    ]
    for size, block in whole.items():
        for name, figures in block["variants"].items():
            rounds = ", ".join(f"{v:,.0f}" for v in figures["per_round_us"])
            lines.append(f"| {size} | {name} | {figures['median_us']:,.1f} ({rounds}) |")
    lines += [
        "",
        "| request | comparison | extra CPU µs per request (per round) | off ÷ on throughput "
        "(per round) |",
        "| --- | --- | --- | --- |",
    ]
    for size, block in whole.items():
        for name, c in block["comparisons"].items():
            extra = ", ".join(f"{v:,.0f}" for v in c["extra_us_per_round"])
            ratios = ", ".join(f"{v:.2f}" for v in c["throughput_ratio_per_round"])
            lines.append(
                f"| {size} | {name} | {c['extra_us']:,.1f} ({extra}) | "
                f"{c['throughput_ratio']:.2f} ({ratios}) |"
            )
    return lines


def reconciliation_table(checks: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| request | whole-request difference | measured extra µs | sum of its pieces µs "
        "| not attributed µs |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for c in checks:
        lines.append(
            f"| {c['request']} | {c['check']} ({' + '.join(c['layers'])}) | "
            f"{c['measured_extra_us']:,.1f} | {c['sum_of_pieces_us']:,.1f} | "
            f"{c['not_attributed_us']:,.1f} |"
        )
    return lines


def markdown(document: dict[str, Any]) -> str:
    meta = document["meta"]
    hw = meta["hardware"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    lines = [
        f"# Telemetry cost table ({meta['date']})",
        "",
        f"`{meta['command']}` — {hw['cpu']}, {hw['cores']} cores; load average before/after "
        f"{meta['load_before']} / {meta['load_after']}; {meta['repeat']} repeats per piece "
        f"(fixed calls per repeat), {meta['rounds']} interleaved rounds of whole requests; "
        f"{meta['elapsed_s']} s. {versions}.",
        "",
        "Clock: the process's CPU time (all threads), so other processes on the shared machine "
        "stay out of the figures. Each piece is timed alone on the SDK objects "
        "`init_telemetry()` builds for the OTLP path "
        "(sampler parentbased_always_on, the service's views and buckets, exemplar filter "
        "trace_based, its resource), inside a live sampled server span. ↳ rows are "
        "comparisons or wholes of the rows above them: shown, not summed. Per-request cost = "
        "median times calls.",
        "",
        *piece_table(document["rows"], document["totals_us_per_request"]),
        "",
        f"Spans per request: {document['spans_per_request']:g}.",
        "",
        "## Whole requests in-process (WSGI call, as gunicorn's sync worker makes it)",
        "",
        *whole_table(document["whole_requests"]),
        "",
        "## The Flask instrumentation alone (a bare Flask app, one route answering at once)",
        "",
        *whole_table({"1 row": document["flask_instrumentation"]}),
        "",
        "## Pieces against wholes",
        "",
        *reconciliation_table(document["reconciliation"]),
    ]
    return "\n".join(lines) + "\n"
