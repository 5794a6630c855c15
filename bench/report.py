"""Ratios pair by pair, per-variant figures, and the two result files: latest.json and latest.md.

Each ratio is the median of per-round ratios (A and B measured back to back in the same round),
so slow drift of a noisy machine cancels out instead of landing on one side.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.measure import Sample

RESULTS_DIR = Path(__file__).with_name("results")


@dataclass(frozen=True)
class RatioSpec:
    """numerator ÷ denominator of `metric`; for a latency metric the inverse, so that every
    ratio reads "higher is better". Several denominators: per round, the one that gives the
    lowest ratio (the fastest peer of that round)."""

    numerator: str
    denominator: str | tuple[str, ...]
    metric: str = "rps"
    goal: float | None = None
    meaning: str = ""

    @property
    def lower_is_better(self) -> bool:
        return self.metric.endswith("_ms") or self.metric.startswith("cpu_")

    @property
    def denominators(self) -> tuple[str, ...]:
        return (self.denominator,) if isinstance(self.denominator, str) else self.denominator

    @property
    def denominator_label(self) -> str:
        if isinstance(self.denominator, str):
            return self.denominator
        return f"fastest of {', '.join(self.denominator)}"


def _value(sample: Sample, metric: str) -> float:
    return sample.rows_per_s if metric == "rows_per_s" else float(getattr(sample, metric))


def round_pairs(samples: Iterable[Sample], spec: RatioSpec) -> list[tuple[float, str]]:
    """Per round with both sides measured: (ratio, the denominator variant it was taken against)."""
    by_round: dict[int, dict[str, Sample]] = defaultdict(dict)
    for sample in samples:
        by_round[sample.round][sample.variant] = sample
    pairs = []
    for round_no in sorted(by_round):
        measured = by_round[round_no]
        if spec.numerator not in measured:
            continue
        top = _value(measured[spec.numerator], spec.metric)
        candidates = []
        for name in spec.denominators:
            if name in measured:
                bottom = _value(measured[name], spec.metric)
                ratio = bottom / top if spec.lower_is_better else top / bottom
                candidates.append((ratio, name))
        if candidates:
            pairs.append(min(candidates))
    return pairs


def ratio_table(samples: list[Sample], specs: dict[str, RatioSpec]) -> dict[str, dict[str, Any]]:
    table = {}
    for key, spec in specs.items():
        details = round_pairs(samples, spec)
        pairs = [ratio for ratio, _ in details]
        row: dict[str, Any] = {
            "value": round(statistics.median(pairs), 3) if pairs else None,
            "pairs": [round(r, 3) for r in pairs],
            "numerator": spec.numerator,
            "denominator": spec.denominator_label,
            "metric": spec.metric,
            "goal": spec.goal,
            "meets_goal": None
            if spec.goal is None or not pairs
            else statistics.median(pairs) >= spec.goal,
            "meaning": spec.meaning,
        }
        if len(spec.denominators) > 1:
            row["denominator_per_round"] = [name for _, name in details]
        table[key] = row
    return table


def variant_figures(samples: list[Sample]) -> dict[str, dict[str, Any]]:
    """Per variant: medians over rounds; peak RSS is the maximum seen."""
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        grouped[sample.variant].append(sample)
    figures = {}
    for name, group in grouped.items():

        def median(values: list[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return round(statistics.median(present), 3) if present else None

        helpers = sorted({h for s in group for h in s.helpers_cpu_s_per_1k})
        figures[name] = {
            "tool": group[0].tool,
            "rounds": len(group),
            "rows_per_request": group[0].rows_per_request,
            "rps": median([s.rps for s in group]),
            "rows_per_s": median([s.rows_per_s for s in group]),
            "p50_ms": median([s.p50_ms for s in group]),
            "p90_ms": median([s.p90_ms for s in group]),
            "p99_ms": median([s.p99_ms for s in group]),
            "cpu_s_per_1k_requests": median([s.cpu_s_per_1k for s in group]),
            "peak_rss_mib_per_process": max(
                (s.peak_rss_mib_per_process for s in group if s.peak_rss_mib_per_process),
                default=None,
            ),
            "processes": group[0].processes,
            "helpers_cpu_s_per_1k_requests": {
                h: median([s.helpers_cpu_s_per_1k.get(h) for s in group]) for h in helpers
            },
            "rps_per_round": [round(s.rps, 1) for s in sorted(group, key=lambda s: s.round)],
        }
    return figures


def write_results(document: dict[str, Any], directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "latest.json"
    md_path = directory / "latest.md"
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    md_path.write_text(markdown(document))
    return json_path, md_path


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def markdown(document: dict[str, Any]) -> str:
    meta = document["meta"]
    lines = [
        f"# Benchmark results ({meta['mode']}, {meta['date']})",
        "",
        f"Machine: {meta['hardware']['cpu']}, {meta['hardware']['cores']} cores, "
        f"{meta['hardware']['memory_gib']} GiB; load average before/after: "
        f"{meta['load_before']} / {meta['load_after']}. Layout {meta['settings']['layout']} "
        f"(gunicorn WORKERSxTHREADS), wrk -t1 -c{meta['settings']['connections']}, "
        f"{meta['settings']['seconds']} s per run, "
        f"{meta['settings']['rounds']} interleaved rounds.",
        "",
        "| ratio (higher is better) | value | goal | pairs | numerator ÷ denominator |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for key, row in document["ratios_detail"].items():
        verdict = ""
        if row["meets_goal"] is not None:
            verdict = " ✓" if row["meets_goal"] else " ✗"
        against = row.get("denominator_per_round") or [None] * len(row["pairs"])
        pairs = ", ".join(
            f"{r:.2f}" + (f" ({name})" if name else "")
            for r, name in zip(row["pairs"], against, strict=True)
        )
        lines.append(
            f"| `{key}` | {_fmt(row['value'], 2)}{verdict} | {_fmt(row['goal'], 2)} | {pairs} | "
            f"{row['numerator']} ÷ {row['denominator']} ({row['metric']}) |"
        )
    lines += [
        "",
        "| variant | tool | req/s | rows/s | p50 ms | p90 ms | p99 ms | CPU s/1k req "
        "| peak RSS/process MiB | collector+Jaeger CPU s/1k |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in document["variants"].items():
        helpers = row["helpers_cpu_s_per_1k_requests"]
        helper_cpu = sum(v for v in helpers.values() if v is not None) if helpers else None
        lines.append(
            f"| {name} | {row['tool']} | {_fmt(row['rps'])} | {_fmt(row['rows_per_s'], 0)} | "
            f"{_fmt(row['p50_ms'], 2)} | {_fmt(row['p90_ms'], 2)} | {_fmt(row['p99_ms'], 2)} | "
            f"{_fmt(row['cpu_s_per_1k_requests'], 3)} | "
            f"{_fmt(row['peak_rss_mib_per_process'], 0)} | {_fmt(helper_cpu, 3)} |"
        )
    if document.get("layouts"):
        lines += [
            "",
            "| layout (-off: OTEL_SDK_DISABLED) | req/s | p50 ms | p90 ms | p99 ms | CPU s/1k req "
            "| req/s per round |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for name, row in document["layouts"].items():
            lines.append(
                f"| {name} | {_fmt(row['rps'])} | {_fmt(row['p50_ms'], 2)} | "
                f"{_fmt(row['p90_ms'], 2)} | {_fmt(row['p99_ms'], 2)} | "
                f"{_fmt(row['cpu_s_per_1k_requests'], 3)} | "
                f"{', '.join(f'{r:.0f}' for r in row['rps_per_round'])} |"
            )
    if document.get("layout_telemetry_on_vs_off"):
        lines += ["", "| layout | telemetry on ÷ off (req/s) | pairs |", "| --- | ---: | --- |"]
        for layout, row in document["layout_telemetry_on_vs_off"].items():
            pairs = ", ".join(f"{r:.2f}" for r in row["pairs"])
            lines.append(f"| {layout} | {_fmt(row['value'], 2)} | {pairs} |")
    scrape = document.get("scrape_cost") or {}
    if scrape:
        lines += ["", "| scrape | median ms | max ms | bytes | series | exemplars |"]
        lines += ["| --- | ---: | ---: | ---: | ---: | ---: |"]
        for name, row in scrape.items():
            lines.append(
                f"| {name} | {_fmt(row['median_ms'], 2)} | {_fmt(row['max_ms'], 2)} | "
                f"{row['bytes']} | {row['series']} | {row['exemplars']} |"
            )
    for name, profile in (document.get("profiles") or {}).items():
        lines += [
            "",
            f"Profile of {name} (py-spy, GIL holder of each worker, {profile['samples']} samples; "
            f"stacks: {profile['raw_stacks']}):",
            "",
            "| cost centre | % of GIL time |",
            "| --- | ---: |",
        ]
        lines += [f"| {k} | {v} |" for k, v in profile["cost_centres_pct"].items()]
    if document.get("replay_hold"):
        lines += replay_hold_lines(document["replay_hold"])
    for name, reason in (meta.get("peers_unavailable") or {}).items():
        lines += ["", f"Peer {name} could not be measured:", "", f"    {reason.splitlines()[0]}"]
    lines += ["", "Commands:", ""]
    lines += [f"    {command}" for command in meta["commands"]]
    return "\n".join(lines) + "\n"


def replay_hold_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"Replay, one process, --concurrency {result['concurrency']} (held: within "
        f"{result['tolerance']:.0%} of the rate, no failure); client ceiling "
        f"{result['client_ceiling_rps']:,.0f} req/s:",
        "",
        "| server | rate | achieved req/s | holds | failed | late starts | missed | p99 ms "
        "| replay CPU ms/req | server CPU ms/req | replay cores | server cores |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in result["runs"]:
        lines.append(
            f"| {run['server']} | {run['rate']:,.0f} | {run['achieved_rps']:,.1f} | "
            f"{'yes' if run['holds'] else 'no'} | {run['failed']} | {run['late_starts']} | "
            f"{run['missed_slots']} | {run['p99_ms']:,.1f} | {run['client_cpu_ms_per_request']} | "
            f"{run['server_cpu_ms_per_request']} | {run['client_cores']} | {run['server_cores']} |"
        )
    return lines
