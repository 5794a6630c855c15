"""Every benchmark in one run, side by side on one machine: `python -m bench.run [--quick]`.

Servers start once (collector + Jaeger with the shipped configs, our service per telemetry mode,
the seed-equivalent, the peers MLServer, BentoML and KServe), then every variant is measured once
per round, rounds alternating forward and backward order (A B C … C B A …), so each ratio is a
median of back-to-back pairs.
Writes bench/results/latest.json, latest.md and latest.png. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import chart, profile, replay_hold, scrape
from bench.bodies import BATCH_ROWS, Bodies, write_bodies
from bench.measure import REPLAY_CONCURRENCY, Sample, floor_sample, replay_sample, wrk_sample
from bench.models import BenchModels, build_models
from bench.peers import PEERS
from bench.report import RESULTS_DIR, RatioSpec, ratio_table, variant_figures, write_results
from bench.variants import (
    STACK_BINARIES,
    Endpoint,
    Layout,
    Servers,
    Telemetry,
    clean_environment,
)
from bench.wrk import WrkLoad, require_wrk, run_wrk
from devstack.stack import Stack, StackError, locate_binaries
from service.model.store import load_model

VERSIONED_PACKAGES = (
    "monitoring-ml-api", "flask", "gunicorn", "scikit-learn", "numpy", "pandas", "skops",
    "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-instrumentation-flask", "grpcio", "matplotlib",
)  # fmt: skip

OFF, OTLP, DOWN = "ours-off", "ours-otlp", "ours-otlp-collector-down"
SEED, FOREST = "seed", "ours-forest100-otlp"
PEER_VARIANTS = tuple(peer.variant for peer in PEERS)
BATCH, FLOOR = f"ours-otlp-batch{BATCH_ROWS}", f"predict-floor-{BATCH_ROWS}"


@dataclass(frozen=True)
class Plan:
    mode: str
    seconds: float
    warmup_s: float
    rounds: int
    layout: Layout
    connections: int
    sweep_layouts: tuple[Layout, ...]
    sweep_rounds: int
    replay_rate: float
    profile_s: float
    # name -> environment on top of ours-otlp: settings under trial, each measured as a variant
    # `trial-<name>` in every round (wrk and the fixed-rate replay) and reported as the ratios
    # `trial_<name>_vs_otlp` and `trial_<name>_open_loop_p99_vs_otlp`.
    trials: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()


QUICK = Plan(
    mode="quick", seconds=5, warmup_s=1, rounds=3, layout=Layout(2, 1), connections=8,
    sweep_layouts=tuple(map(Layout.parse, ("1x1", "1x4", "2x1", "2x2", "2x4"))), sweep_rounds=2,
    replay_rate=200, profile_s=10,
)  # fmt: skip
FULL = Plan(
    mode="full", seconds=15, warmup_s=3, rounds=5, layout=Layout(2, 1), connections=8,
    sweep_layouts=tuple(
        map(Layout.parse, ("1x1", "1x2", "1x4", "1x8", "2x1", "2x2", "2x4", "2x8", "3x2", "4x1"))
    ),
    sweep_rounds=3, replay_rate=200, profile_s=30,
)  # fmt: skip


def ratio_specs(plan: Plan) -> dict[str, RatioSpec]:
    rate = plan.replay_rate
    trials = {}
    for name, env in plan.trials:
        setting = " ".join(f"{k}={v}" for k, v in env)
        trials[f"trial_{name}_vs_otlp"] = RatioSpec(f"trial-{name}", OTLP, meaning=setting)
        trials[f"trial_{name}_open_loop_p99_vs_otlp"] = RatioSpec(
            f"trial-{name}@{rate:g}/s", f"{OTLP}@{rate:g}/s", "p99_ms", meaning=setting
        )
    return trials | {
        "telemetry_on_vs_off": RatioSpec(OTLP, OFF, goal=0.90, meaning="req/s, telemetry cost"),
        # CPU per request is steadier than req/s on a shared machine: the same cost, seen twice.
        "telemetry_on_vs_off_cpu": RatioSpec(
            OTLP, OFF, "cpu_s_per_1k", meaning="server CPU per request, off ÷ on"
        ),
        "collector_down_vs_up": RatioSpec(DOWN, OTLP, goal=0.97, meaning="req/s, collector down"),
        "collector_down_vs_up_p99": RatioSpec(
            DOWN, OTLP, "p99_ms", goal=1 / 1.1, meaning="p99 up ÷ p99 down (goal: within 1.1x)"
        ),
        "vs_peer": RatioSpec(
            OTLP, PEER_VARIANTS, goal=1.5, meaning="req/s vs the fastest peer, same model"
        ),
        # No peer traces by default: the same comparison without our telemetry.
        "vs_peer_telemetry_off": RatioSpec(
            OFF, PEER_VARIANTS, meaning="req/s vs the fastest peer, SDK disabled"
        ),
        **{
            f"vs_{peer.variant}": RatioSpec(OTLP, peer.variant, meaning=f"req/s vs {peer.label}")
            for peer in PEERS
        },
        "vs_seed": RatioSpec(OTLP, SEED, goal=10, meaning="req/s vs the seed-equivalent"),
        "batch1000_vs_raw_predict": RatioSpec(
            BATCH, FLOOR, "rows_per_s", goal=0.8, meaning="rows/s through /predict vs predict()"
        ),
        "forest_serving_path": RatioSpec(
            FOREST, SEED, meaning="same 100-tree forest: our serving path vs the seed's"
        ),
        "forest_model_choice": RatioSpec(
            OTLP, FOREST, meaning="our serving path: default model vs the 100-tree forest"
        ),
        "telemetry_on_vs_off_open_loop_p99": RatioSpec(
            f"{OTLP}@{rate:g}/s", f"{OFF}@{rate:g}/s", "p99_ms", meaning="replay, fixed rate"
        ),
    }


def start_peers(
    servers: Servers, estimator: object, workers: int, bodies: Bodies
) -> tuple[dict[str, Endpoint], dict[str, str]]:
    """Every peer that installs and starts; the others with the reason, and the run goes on."""
    started, unavailable = {}, {}
    for peer in PEERS:
        try:
            started[peer.variant] = servers.peer(
                peer, estimator, workers, bodies.peers[peer.variant]
            )
        except (OSError, subprocess.SubprocessError, StackError) as error:
            unavailable[peer.variant] = str(error)[-3000:]
            print(f"bench: peer {peer.variant} unavailable: {error}", file=sys.stderr)
    return started, unavailable


def start_servers(
    servers: Servers, models: BenchModels, bodies: Bodies, plan: Plan
) -> dict[str, Endpoint]:
    default = models.default.artifact_path
    ours = servers.ours
    endpoints = {
        name: ours(name, default, layout, telemetry, bodies.single)
        for layout in (plan.sweep_layouts if plan.sweep_rounds else ())
        for telemetry, name in (
            (Telemetry.OTLP, layout_on(layout)),
            (Telemetry.OFF, layout_off(layout)),
        )
    }
    if not plan.rounds:
        return endpoints
    endpoints |= {
        OFF: ours(OFF, default, plan.layout, Telemetry.OFF, bodies.single),
        OTLP: ours(OTLP, default, plan.layout, Telemetry.OTLP, bodies.single),
        FOREST: ours(FOREST, models.forest_artifact, plan.layout, Telemetry.OTLP, bodies.single),
        SEED: servers.seed(SEED, sys.executable, bodies.seed),
        # Embedded /metrics allows one worker only; used for the scrape cost.
        "ours-embedded": ours(
            "ours-embedded", default, Layout(1, plan.layout.threads), Telemetry.EMBEDDED,
            bodies.single,
        ),
    }  # fmt: skip
    endpoints[BATCH] = replace(endpoints[OTLP], name=BATCH, body=bodies.batch)
    for name, env in plan.trials:
        endpoints[f"trial-{name}"] = ours(
            f"trial-{name}", default, plan.layout, Telemetry.OTLP, bodies.single, dict(env)
        )
    return endpoints


Step = Callable[[int], Sample]


def layout_on(layout: Layout) -> str:
    return f"layout-{layout}"


def layout_off(layout: Layout) -> str:
    return f"layout-{layout}-off"


def layout_ratio_specs(plan: Plan) -> dict[str, RatioSpec]:
    """Per layout, the telemetry cost measured the way `telemetry_on_vs_off` is: the layout that
    serves most with telemetry on is only the right default if it does not just serve more off."""
    return {
        str(layout): RatioSpec(layout_on(layout), layout_off(layout), meaning="telemetry cost")
        for layout in plan.sweep_layouts
    }


def round_steps(
    servers: Servers, endpoints: dict[str, Endpoint], models: BenchModels, bodies: Bodies,
    plan: Plan, workdir: Path,
) -> list[Step]:  # fmt: skip
    load = WrkLoad(connections=plan.connections)
    helpers = {
        "collector": servers.collector.popen.pid,  # type: ignore[union-attr]
        "jaeger": servers.stack.processes["jaeger"].popen.pid,  # type: ignore[union-attr]
    }
    estimator = load_model(models.default.artifact_path)

    def wrk(name: str, **extra: Any) -> Step:
        return lambda r: wrk_sample(endpoints[name], r, plan.seconds, plan.warmup_s, load, **extra)

    def collector_down(round_no: int) -> Sample:
        servers.stop_collector()
        try:
            return wrk_sample(
                endpoints[OTLP], round_no, plan.seconds, plan.warmup_s, load,
                helpers={"jaeger": helpers["jaeger"]}, variant=DOWN,
            )  # fmt: skip
        finally:
            servers.restart_collector()
            helpers["collector"] = servers.collector.popen.pid  # type: ignore[union-attr]

    def replay(name: str) -> Step:
        return lambda r: replay_sample(
            endpoints[name], r, bodies.features_csv, plan.replay_rate, plan.seconds, workdir
        )

    def otlp(name: str, **extra: Any) -> Step:
        # Read the helpers' pids when the step runs: the collector restarts between rounds.
        return lambda r: wrk(name, helpers=dict(helpers), **extra)(r)

    return [
        *(otlp(f"trial-{name}") for name, _ in plan.trials),
        wrk(OFF),
        otlp(OTLP),
        collector_down,
        *(wrk(name) for name in PEER_VARIANTS if name in endpoints),
        wrk(SEED),
        otlp(FOREST),
        otlp(BATCH, rows_per_request=BATCH_ROWS),
        lambda r: floor_sample(estimator, bodies.batch_matrix, r, plan.seconds, FLOOR),
        replay(OFF),
        replay(OTLP),
        *(replay(f"trial-{name}") for name, _ in plan.trials),
    ]


def interleave(steps: list[Step], rounds: int, label: str) -> list[Sample]:
    """Every step once per round; odd rounds run backwards, so no step always goes first."""
    samples = []
    for round_no in range(rounds):
        order = steps if round_no % 2 == 0 else steps[::-1]
        for step in order:
            sample = step(round_no)
            samples.append(sample)
            print(
                f"bench: {label} round {round_no} {sample.variant:32s} {sample.rps:9.1f} req/s "
                f"p50 {sample.p50_ms:7.2f} p99 {sample.p99_ms:8.2f} ms",
                file=sys.stderr,
                flush=True,
            )
    return samples


def keep_stacks(summary: dict[str, Any]) -> dict[str, Any]:
    """Copy the raw stacks beside the results (the scratch directory goes away)."""
    raw = Path(summary["raw_stacks"])
    kept = RESULTS_DIR / raw.name
    kept.parent.mkdir(exist_ok=True)
    kept.write_text(raw.read_text())
    return {**summary, "raw_stacks": f"bench/results/{raw.name}"}


def measure_scrapes(endpoints: dict[str, Endpoint], stack: Stack, plan: Plan) -> dict[str, Any]:
    embedded = endpoints["ours-embedded"]
    load = WrkLoad(connections=plan.connections)
    run_wrk(embedded.url, embedded.body, 2, load)
    scrape.send_rejections(embedded.url)
    return {
        "embedded /metrics (1 worker)": scrape.time_scrapes(
            embedded.url.removesuffix("/predict") + "/metrics"
        ),
        "collector prometheus exporter": scrape.time_scrapes(stack.collector_exporter_url),
    }


def hardware() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
    }


def versions(binaries: dict[str, Path]) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    wrk_banner = subprocess.run([require_wrk(), "-v"], capture_output=True, text=True).stdout
    found["wrk"] = wrk_banner.split("[")[0].strip()
    for name in ("otelcol", "jaeger"):
        out = subprocess.run(
            [str(binaries[name]), "--version"], capture_output=True, text=True, check=False
        )
        found[name] = (out.stdout or out.stderr).strip().splitlines()[0]
    for peer in PEERS:
        found |= {f"peer {peer.variant} {k}": v for k, v in peer.versions().items()}
    return found


def profile_only(seconds: float, layout: str) -> dict[str, Any]:
    """`python -m bench.profile`: a collector, one OTLP server, one profile."""
    clean_environment()
    with tempfile.TemporaryDirectory(prefix="mlapi-profile-") as tmp:
        workdir = Path(tmp)
        models = build_models(workdir / "models")
        bodies = write_bodies(workdir / "bodies")
        servers = Servers(Stack(workdir / "stack", locate_binaries(STACK_BINARIES)))
        try:
            servers.start_collector()
            endpoint = servers.ours(
                OTLP, models.default.artifact_path, Layout.parse(layout), Telemetry.OTLP,
                bodies.single,
            )  # fmt: skip
            RESULTS_DIR.mkdir(exist_ok=True)
            return profile.profile_endpoint(endpoint, seconds, WrkLoad(), RESULTS_DIR)
        finally:
            servers.stop()


def parse_trial(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    name, _, assignments = text.partition(":")
    pairs = tuple(
        (key.strip(), value.strip())
        for key, _, value in (item.partition("=") for item in assignments.split(","))
    )
    if not name or not all(key for key, _ in pairs):
        raise argparse.ArgumentTypeError(f"--trial {text!r}: expected NAME:VAR=VALUE[,...]")
    return name, pairs


def parse_args(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short run (under 10 min)")
    parser.add_argument("--seconds", type=float, help="seconds of load per measurement")
    parser.add_argument("--warmup", type=float, help="seconds of load before each measurement")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (0: only the layout sweep)")
    parser.add_argument("--layout", type=Layout.parse, help="WORKERSxTHREADS of the variants")
    parser.add_argument("--sweep", help="comma-separated WORKERSxTHREADS for the layout sweep")
    parser.add_argument("--sweep-rounds", type=int, help="0 skips the layout sweep")
    parser.add_argument("--profile-seconds", type=float, help="0 skips the profile")
    parser.add_argument(
        "--trial",
        action="append",
        default=[],
        metavar="NAME:VAR=VALUE[,VAR=VALUE]",
        help="also measure ours-otlp with these variables set (repeatable); {otlp_http} and "
        "{otlp_grpc} stand for the collector's endpoints",
    )
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    overrides = {
        "seconds": args.seconds,
        "warmup_s": args.warmup,
        "rounds": args.rounds,
        "sweep_rounds": args.sweep_rounds,
        "layout": args.layout,
        "profile_s": args.profile_seconds,
        "sweep_layouts": tuple(map(Layout.parse, args.sweep.split(","))) if args.sweep else None,
        "trials": tuple(map(parse_trial, args.trial)) or None,
    }
    return replace(plan, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    require_wrk()
    clean_environment()
    started = time.monotonic()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="mlapi-bench-") as tmp:
        workdir = Path(tmp)
        binaries = locate_binaries(STACK_BINARIES)
        models = build_models(workdir / "models")
        bodies = write_bodies(workdir / "bodies")
        stack = Stack(workdir / "stack", binaries)
        servers = Servers(stack)
        try:
            servers.start_collector()
            endpoints = start_servers(servers, models, bodies, plan)
            peers, peers_unavailable = (
                start_peers(
                    servers, load_model(models.default.artifact_path).estimator,
                    plan.layout.workers, bodies,
                )
                if plan.rounds
                else ({}, {})
            )  # fmt: skip
            endpoints |= peers
            for name in (OTLP, FOREST) if plan.rounds else ():
                scrape.send_rejections(endpoints[name].url)  # series reach the collector early
            samples = (
                interleave(
                    round_steps(servers, endpoints, models, bodies, plan, workdir),
                    plan.rounds,
                    "variants",
                )
                if plan.rounds
                else []
            )
            sweep_load = WrkLoad(connections=plan.connections)
            sweep_steps: list[Step] = [
                (lambda r, n=name: wrk_sample(
                    endpoints[n], r, plan.seconds, plan.warmup_s, sweep_load
                ))
                for layout in plan.sweep_layouts
                for name in (layout_on(layout), layout_off(layout))
            ]  # fmt: skip
            sweep = interleave(sweep_steps, plan.sweep_rounds, "layouts")
            scrapes = measure_scrapes(endpoints, stack, plan) if plan.rounds else {}
            replay_hold_result = (
                replay_hold.measure_rates(
                    replay_hold.start_fixed(servers, models.default.card_path, bodies.single),
                    endpoints[OFF], bodies.features_csv, plan.seconds, workdir,
                )
                if plan.rounds
                else {}
            )  # fmt: skip
            profiles = {
                name: keep_stacks(
                    profile.profile_endpoint(endpoints[name], plan.profile_s, sweep_load, workdir)
                )
                for name in ((OTLP, BATCH) if plan.profile_s and plan.rounds else ())
            }
        finally:
            servers.stop()
        ratios = ratio_table(samples, ratio_specs(plan))
        document = {
            "ratios": {key: row["value"] for key, row in ratios.items()},
            "ratios_detail": ratios,
            "variants": variant_figures(samples),
            "layouts": variant_figures(sweep),
            "layout_telemetry_on_vs_off": ratio_table(sweep, layout_ratio_specs(plan)),
            "scrape_cost": scrapes,
            "replay_hold": replay_hold_result,
            "profiles": profiles,
            "samples": [s.to_dict() for s in samples + sweep],
            "meta": {
                "mode": plan.mode,
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "elapsed_s": round(time.monotonic() - started, 1),
                "hardware": hardware(),
                "versions": versions(binaries),
                "load_before": load_before,
                "load_after": [round(x, 2) for x in os.getloadavg()],
                "settings": {
                    "layout": str(plan.layout),
                    "connections": plan.connections,
                    "seconds": plan.seconds,
                    "warmup_s": plan.warmup_s,
                    "rounds": plan.rounds,
                    "sweep_layouts": [str(layout) for layout in plan.sweep_layouts],
                    "sweep_rounds": plan.sweep_rounds,
                    "replay_rate": plan.replay_rate,
                    "peer_workers": plan.layout.workers,
                    "trials": {name: dict(env) for name, env in plan.trials},
                },
                "peers": {peer.variant: peer.label for peer in PEERS},
                "peers_unavailable": peers_unavailable,
                "commands": [
                    shlex.join([Path(sys.executable).name, "-m", "bench.run", *(sys.argv[1:])]),
                    f"wrk -t1 -c{plan.connections} -d{plan.seconds:g}s -s bench/wrk_post.lua URL",
                    f"python -m replay features.csv --target URL --rate {plan.replay_rate:g} "
                    f"--duration {plan.seconds:g} --loop --concurrency {REPLAY_CONCURRENCY}",
                ],
            },
        }
    json_path, md_path = write_results(document)
    png_path = chart.draw(document, json_path.with_name("latest.png"))
    print(f"bench: wrote {json_path}, {md_path}, {png_path or 'no chart'}", file=sys.stderr)
    print(md_path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
