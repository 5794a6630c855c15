"""The real path: replay -> service (2 gunicorn workers, OTLP) -> collector -> Prometheus, Jaeger.

Each module run gets its own `service.name`; against compose (MLAPI_E2E_STACK=compose) it is the
shared `api` (job `mlapi`). Either way, every count asserted is a delta over a settled baseline.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.compose_stack import ComposeService, ComposeStack
from devstack.server import ServerProcess
from devstack.stack import Stack
from tests.e2e.deployment import (
    REPLAY_TIMEOUT_S,
    client_env,
    deploy,
    replay,
    replay_in_background,
)

pytestmark = pytest.mark.e2e

PIPELINE_TIMEOUT_S = 60.0
OUTAGE_S = 6.0
# A count reaches Prometheus within export interval (1 s) + collector batch timeout (1 s) + scrape
# interval (1 s) of the request: a total unchanged for longer holds every request answered so far.
SETTLE_S = 5.0


@dataclass(frozen=True)
class Deployed:
    service: ServerProcess | ComposeService
    job: str
    settle_s: float  # how long a total must stay unchanged to hold every request answered


@pytest.fixture(scope="module")
def deployed(stack: Stack | ComposeStack, trained_model, tmp_path_factory) -> Iterator[Deployed]:
    if isinstance(stack, ComposeStack):
        yield Deployed(stack.service, stack.service.job, stack.settle_s)
        return
    job = f"mlapi-e2e-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("pipeline")
    process = deploy(stack, trained_model.artifact_path, job, root / "service.log")
    with process:
        yield Deployed(process, job, SETTLE_S)


def span_names(trace: dict) -> dict[str, dict]:
    return {span["operationName"]: span for span in trace["spans"]}


def test_every_request_and_row_is_counted_once(
    stack: Stack, deployed: Deployed, trained_model, tmp_path: Path
) -> None:
    job = f'job="{deployed.job}"'
    requests = f'http_server_request_duration_seconds_count{{{job}, http_route="/predict"}}'
    rows = f'mlapi_prediction_rows_total{{{job}, outcome="ok"}}'
    requests_before = stack.settled_total(requests, deployed.settle_s, PIPELINE_TIMEOUT_S)
    rows_before = stack.settled_total(rows, deployed.settle_s, PIPELINE_TIMEOUT_S)
    report = replay(
        trained_model.holdout_path,
        deployed.service.url,
        tmp_path / "report.json",
        "--rate=40",
        "--count=60",
        "--loop",
        "--batch-size=3",
        env=client_env(stack, "replay-e2e"),
    )
    assert report["sent"] == report["succeeded"] == 60
    stack.wait_for_total(requests, requests_before + 60, PIPELINE_TIMEOUT_S)
    stack.wait_for_total(rows, rows_before + 180, PIPELINE_TIMEOUT_S)
    # Each worker exports its own series from start-up (counters are created at 0), so the exact
    # total above is a sum over both, whichever worker keep-alive pinned replay's connections to.
    assert len(stack.prom_per_instance(rows)) >= 2, "every gunicorn worker exports its own series"


def test_exemplars_resolve_to_stored_traces(stack: Stack, deployed: Deployed) -> None:
    job = f'job="{deployed.job}"'
    # Answered requests only: a refused one (4xx) has no model.predict span.
    for histogram in (
        f'http_server_request_duration_seconds_bucket{{{job}, http_route="/predict", '
        'http_response_status_code="200"}',
        f"mlapi_prediction_value_bucket{{{job}}}",
    ):
        exemplars = stack.wait_for(
            lambda h=histogram: [
                e for series in stack.prom_exemplars(h) for e in series["exemplars"]
            ],
            timeout=PIPELINE_TIMEOUT_S,
            what=f"exemplars on {histogram}",
        )
        trace_id = exemplars[-1]["labels"]["trace_id"]
        trace = stack.wait_for(
            lambda t=trace_id: stack.jaeger_trace(t),
            timeout=PIPELINE_TIMEOUT_S,
            what=f"trace {trace_id} in Jaeger",
        )
        names = span_names(trace)
        assert "POST /predict" in names and "model.predict" in names, sorted(names)


def test_span_metrics_cover_the_model_span_with_exemplars(stack: Stack, deployed: Deployed) -> None:
    selector = f'service_name="{deployed.job}", span_name="model.predict"'
    calls = stack.wait_for(
        lambda: stack.prom_total(f"traces_span_metrics_calls_total{{{selector}}}"),
        timeout=PIPELINE_TIMEOUT_S,
        what="span metrics of model.predict",
    )
    assert calls > 0
    exemplars = stack.wait_for(
        lambda: stack.prom_exemplars(
            f"traces_span_metrics_duration_milliseconds_bucket{{{selector}}}"
        ),
        timeout=PIPELINE_TIMEOUT_S,
        what="span-metric exemplars",
    )
    assert exemplars[0]["exemplars"][0]["labels"]["trace_id"]


def test_client_span_is_the_parent_of_the_server_span(
    stack: Stack, deployed: Deployed, trained_model, tmp_path: Path
) -> None:
    report = replay(
        trained_model.holdout_path,
        deployed.service.url,
        tmp_path / "report.json",
        "--rate=20",
        "--count=5",
        env=client_env(stack, "replay-parent"),
    )
    trace_id = report["slowest_trace_ids"][0]
    trace = stack.wait_for(
        lambda: (t := stack.jaeger_trace(trace_id)) and len(t["spans"]) >= 4 and t,
        timeout=PIPELINE_TIMEOUT_S,
        what=f"client and server spans of {trace_id}",
    )
    services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    by_id = {span["spanID"]: span for span in trace["spans"]}
    server = span_names(trace)["POST /predict"]
    parents = [ref["spanID"] for ref in server["references"] if ref["refType"] == "CHILD_OF"]
    assert len(parents) == 1 and parents[0] in by_id
    assert services[by_id[parents[0]]["processID"]] == "replay-parent"
    assert services[server["processID"]] == deployed.job


def test_collector_outage_loses_no_request(
    stack: Stack, deployed: Deployed, trained_model, tmp_path: Path
) -> None:
    predicted = f'mlapi_prediction_rows_total{{job="{deployed.job}", outcome="ok"}}'
    before = stack.settled_total(predicted, deployed.settle_s, PIPELINE_TIMEOUT_S)
    report_path = tmp_path / "report.json"
    # 20 s at 25 req/s; the collector is down for a stretch in the middle.
    with replay_in_background(
        trained_model.holdout_path,
        deployed.service.url,
        "--rate=25",
        "--duration=20",
        "--loop",
        f"--report={report_path}",
        env=client_env(stack, "replay-outage"),
    ) as run:
        # Only this run's rows can move the settled total: the outage starts with traffic flowing.
        stack.wait_for(
            lambda: (stack.prom_total(predicted) or 0.0) > before,
            PIPELINE_TIMEOUT_S,
            what=f"sum({predicted}) > {before}",
        )
        stack.stop_collector()
        time.sleep(OUTAGE_S)
        stack.start_collector()
        _, stderr = run.communicate(timeout=REPLAY_TIMEOUT_S)
    assert run.returncode == 0, stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["failed"] == 0 and set(report["status_counts"]) == {"200"}, report
    # Counters are cumulative in the SDK: once the collector is back, the totals catch up fully.
    stack.wait_for_total(predicted, before + report["sent"], PIPELINE_TIMEOUT_S)
