"""Where a worker's time goes under load: py-spy (PyPI) samples the GIL-holding thread of each
gunicorn worker while wrk drives /predict, and the stacks are summed into cost centres.

The GIL is the worker's bottleneck resource (the model call keeps it too), so GIL-holding
samples are the time other requests wait for. Each sample is charged to the innermost frame that
belongs to a known cost centre; `top_self` lists the leaf functions.

    python -m bench.profile --seconds 20   # starts its own collector + service
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from bench.procstats import descendants
from bench.variants import Endpoint
from bench.wrk import WrkLoad, run_wrk

# --nonblocking: a blocking py-spy stops the process per sample, which interrupts gunicorn's
# epoll_wait and makes its main loop look busy (measured: 40 % of GIL samples vs 17 %).
SAMPLE_RATE_HZ = 200
TOP_FUNCTIONS = 20
# (cost centre, substrings of a frame's "function (file:line)"); first match from the leaf wins.
COST_CENTRES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "payload parsing (service/api/*_body.py)",
        ("service/api/predict_body.py", "service/api/json_body.py"),
    ),
    (
        "ML metric recording (service/telemetry/instruments.py)",
        ("service/telemetry/instruments.py",),
    ),
    (
        "prediction spans (service/api/prediction_telemetry.py)",
        ("service/api/prediction_telemetry.py",),
    ),
    ("access log (service/server/access_log.py)", ("service/server/access_log.py",)),
    ("telemetry glue (service/telemetry/setup.py)", ("service/telemetry/setup.py",)),
    ("prediction ids (service/api/prediction_ids.py)", ("service/api/prediction_ids.py",)),
    ("model.predict (scikit-learn)", ("/sklearn/", "service/model/store.py")),
    ("OTLP export (encode + gRPC)", ("opentelemetry/exporter/", "/grpc/", "google/protobuf")),
    ("OTel SDK traces (spans, ids, processor)", ("opentelemetry/sdk/trace",)),
    ("OTel SDK metrics (aggregation)", ("opentelemetry/sdk/metrics",)),
    ("OTel Flask/WSGI instrumentation", ("opentelemetry/instrumentation", "opentelemetry/util")),
    ("OTel API / context", ("/opentelemetry/",)),
    ("route handler (service/routes)", ("service/api/routes/",)),
    ("logging (stdlib)", ("/logging/",)),
    ("JSON (response)", ("/flask/json", "/json/encoder", "/json/__init__")),
    ("Flask/Werkzeug request handling", ("/flask/", "/werkzeug/")),
    ("gunicorn (HTTP parsing, socket I/O)", ("/gunicorn/",)),
)
OTHER = "other"


def record(pids: list[int], seconds: float, output: Path) -> None:
    """py-spy raw (collapsed) stacks of the GIL holder in each process of `pids`, sampled at
    the same time and written to `output` one after the other."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    parts = [output.with_name(f"{output.stem}-{pid}.txt") for pid in pids]

    def sampler(pid: int, part: Path) -> subprocess.Popen[bytes]:
        command = [
            py_spy, "record", "--pid", str(pid), "--duration", str(round(seconds)),
            "--rate", str(SAMPLE_RATE_HZ), "--gil", "--nonblocking", "--full-filenames",
            "--format", "raw", "--output", str(part),
        ]  # fmt: skip
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    samplers = [sampler(pid, part) for pid, part in zip(pids, parts, strict=True)]
    for running in samplers:
        _, errors = running.communicate(timeout=seconds + 60)
        if running.returncode != 0:
            raise RuntimeError(f"py-spy exited {running.returncode}: {errors.decode()[-500:]}")
    output.write_text("".join(part.read_text() for part in parts))


def centre_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, needles in COST_CENTRES:
            if any(needle in frame for needle in needles):
                return name
    return OTHER


def summarise(collapsed: str) -> dict[str, Any]:
    """Percent of samples per cost centre (exclusive and inclusive), and the top leaf functions."""
    centres: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        centres[centre_of(frames)] += count
        for name, needles in COST_CENTRES:
            if any(needle in frame for frame in frames for needle in needles):
                inclusive[name] += count
        leaves[frames[-1]] += count
        total += count
    if not total:
        raise RuntimeError("py-spy recorded no samples: was the server under load?")
    return {
        "samples": total,
        "cost_centres_pct": {name: round(100 * n / total, 1) for name, n in centres.most_common()},
        # Samples with the centre anywhere on the stack (what it costs including its callees).
        "inclusive_pct": {name: round(100 * n / total, 1) for name, n in inclusive.most_common()},
        "top_self_pct": {
            name: round(100 * n / total, 1) for name, n in leaves.most_common(TOP_FUNCTIONS)
        },
    }


def profile_endpoint(
    endpoint: Endpoint, seconds: float, load: WrkLoad, workdir: Path
) -> dict[str, Any]:
    """Profile every worker of `endpoint` while wrk loads it for `seconds` (+ margins); all of
    them, because keep-alive connections may all have landed on one worker."""
    workers = descendants(endpoint.pid)[1:] or [endpoint.pid]
    output = workdir / f"profile-{endpoint.name}.txt"
    run_wrk(endpoint.url, endpoint.body, 2, load)
    loader = threading.Thread(
        target=run_wrk, args=(endpoint.url, endpoint.body, seconds + 4, load), daemon=True
    )
    loader.start()
    record(workers, seconds, output)
    loader.join()
    summary = summarise(output.read_text())
    summary["worker_pids"] = workers
    summary["seconds"] = seconds
    summary["raw_stacks"] = str(output)
    return summary


def main() -> None:
    from bench.run import profile_only

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--layout", default="1x4", help="WORKERSxTHREADS of the profiled server")
    args = parser.parse_args()
    print(json.dumps(profile_only(args.seconds, args.layout), indent=2))


if __name__ == "__main__":
    main()
