"""Fixtures for the e2e suite: one real stack per test session, the real service under it, and
traffic through both; the stack's logs in every failure report.

MLAPI_E2E_STACK=compose runs the same tests against a running `docker compose up` (see
devstack/compose_stack.py); tests marked `binaries_only` are deselected there and tests marked
`compose_only` in the default mode, with their reason shown.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
import requests

from devstack.compose_stack import COMPOSE_MODE, ComposeService, ComposeStack, stack_mode
from devstack.server import ServerProcess
from devstack.stack import Stack, StackError, locate_binaries, running
from tests.e2e.deployment import client_env, deploy, replay

# The service name the dashboards and the Jaeger panels are written for.
SERVICE_JOB = "mlapi"
TRAFFIC_TIMEOUT_S = 60.0
DESELECTED_REASONS = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    try:
        stack_mode()
    except StackError as error:
        raise pytest.UsageError(str(error)) from None
    config.addinivalue_line(
        "markers",
        "binaries_only(reason): needs what only the binaries stack gives (own programs, rendered "
        "test configs, the webhook sink); deselected with MLAPI_E2E_STACK=compose",
    )
    config.addinivalue_line(
        "markers",
        "compose_only(reason): checks the compose containers themselves; runs only with "
        "MLAPI_E2E_STACK=compose, after every other test (some restart services)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the other mode's tests; in compose mode, run `compose_only` tests last."""
    compose = stack_mode() == COMPOSE_MODE
    other_mode = "binaries_only" if compose else "compose_only"
    deselected = [item for item in items if item.get_closest_marker(other_mode)]
    config.stash[DESELECTED_REASONS] = [
        f"{item.nodeid}: {item.get_closest_marker(other_mode).kwargs['reason']}"
        for item in deselected
    ]
    kept = [item for item in items if item not in deselected]
    items[:] = sorted(kept, key=lambda item: item.get_closest_marker("compose_only") is not None)
    config.hook.pytest_deselected(items=deselected)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    reasons = config.stash.get(DESELECTED_REASONS, [])
    if reasons:
        terminalreporter.section(f"deselected in {stack_mode()} mode")
        for line in reasons:
            terminalreporter.write_line(line)
    # What the fault, cardinality and soak tests measured (record_property): loss windows,
    # series counts, RSS growth, printed at the end of every run, green or red.
    reports = terminalreporter.getreports("passed") + terminalreporter.getreports("failed")
    measured = [report for report in reports if report.user_properties]
    if measured:
        terminalreporter.section("measured")
        for report in measured:
            terminalreporter.write_line(report.nodeid)
            for name, value in report.user_properties:
                terminalreporter.write_line(f"    {name} = {value}")


@pytest.fixture(scope="session")
def stack_binaries() -> dict[str, Path]:
    """The pinned binaries (built once into the cache outside the repo on first use)."""
    return locate_binaries()


@pytest.fixture(scope="session")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack | ComposeStack]:
    """Collector, Prometheus, Alertmanager and Jaeger running on free 127.0.0.1 ports; in
    compose mode, the running compose stack (no binaries needed)."""
    if stack_mode() == COMPOSE_MODE:
        chosen: Stack | ComposeStack = ComposeStack()
    else:
        chosen = Stack(tmp_path_factory.mktemp("stack"), request.getfixturevalue("stack_binaries"))
    with running(chosen):
        yield chosen


@pytest.fixture(scope="session")
def mlapi_service(
    stack: Stack | ComposeStack, trained_model, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess | ComposeService]:
    """The real service (2 gunicorn workers) exporting OTLP to the session stack as `mlapi`; in
    compose mode, compose's `api`."""
    if isinstance(stack, ComposeStack):
        yield stack.service
        return
    log_path = tmp_path_factory.mktemp("mlapi") / "service.log"
    with deploy(stack, trained_model.artifact_path, SERVICE_JOB, log_path) as process:
        yield process


def send_client_mistakes(url: str) -> None:
    """Requests the service must refuse with a 4xx: a value of the wrong type, a missing
    feature, an unknown one, a body of the wrong shape, and feedback on a forged id."""
    row = {"CRIM": 0.1, "ZN": 0.0, "INDUS": 8.0, "CHAS": 0, "NOX": 0.5, "RM": 6.2, "AGE": 60.0}
    row |= {"DIS": 4.0, "RAD": 4, "TAX": 300.0, "PTRATIO": 18.0, "B": 390.0, "LSTAT": 12.0}
    missing_lstat = {k: v for k, v in row.items() if k != "LSTAT"}
    bodies = [
        ("/predict", {"records": [{**row, "RM": "six"}]}),
        ("/predict", {"records": [missing_lstat]}),
        ("/predict", {"records": [{**row, "ROOMS": 6}]}),
        ("/predict", {"records": 7}),
        ("/feedback", {"id": "forged-" + "x" * 40, "actual": 20.0}),
    ]
    for path, body in bodies:
        response = requests.post(url + path, json=body, timeout=10)
        assert 400 <= response.status_code < 500, (path, body, response.text)


# Counters (and extra matchers) every worker must have moved, so that a panel filtered to any
# one instance has data.
PER_INSTANCE_COUNTERS = (
    ("http_server_request_duration_seconds_count", ', http_route="/predict"'),
    ("mlapi_prediction_value_count", ""),
    ("mlapi_input_rejected_total", ""),
    ("mlapi_feature_out_of_range_total", ""),
    ("mlapi_feedback_rows_total", ""),
)
# Keep-alive pins one replay run to one worker or two: rounds until each worker saw everything.
MAX_TRAFFIC_ROUNDS = 10
ROUND_SETTLE_S = 8.0


def instances_missing_traffic(stack: Stack, job: str) -> set[str]:
    """Workers of `job` for which some PER_INSTANCE_COUNTERS did not increase in the last 5 m."""

    def instances(expr: str) -> set[str]:
        return {s["metric"]["service_instance_id"] for s in stack.prom_query(expr)}

    workers = instances(
        f'sum by (service_instance_id) (mlapi_prediction_rows_total{{job="{job}"}})'
    )
    if not workers:
        return {"(no worker exports yet)"}
    missing: set[str] = set()
    for counter, matchers in PER_INSTANCE_COUNTERS:
        selector = f'{counter}{{job="{job}"{matchers}}}'
        missing |= workers - instances(
            f"sum by (service_instance_id) (increase({selector}[5m])) > 0"
        )
    return missing


@pytest.fixture(scope="session")
def stack_with_traffic(
    stack: Stack, mlapi_service: ServerProcess, trained_model, tmp_path_factory
) -> Stack:
    """The session stack after traffic through `mlapi_service`, once Prometheus has it.

    Each round: the holdout CSV (successful predictions, its MEDV sent back as feedback), the
    same rows with RM scaled beyond its training range, and a few client mistakes (4xx). Rounds
    repeat (bounded) until every worker has served each kind; returns once the recording rules
    have evaluated the traffic (drift PSI and live MAE exist).
    """
    reports = tmp_path_factory.mktemp("traffic")
    holdout, url = trained_model.holdout_path, mlapi_service.url
    env = client_env(stack, "replay-e2e")
    concurrent = ("--rate=100", "--concurrency=8")
    for round_ in range(MAX_TRAFFIC_ROUNDS):
        normal = (*concurrent, "--count=150", "--loop", "--batch-size=3")
        replay(holdout, url, reports / f"normal-{round_}.json", *normal, env=env)
        shifted = (*concurrent, "--count=40", "--loop", "--shift=RM=1.5")
        replay(holdout, url, reports / f"shifted-{round_}.json", *shifted, env=env)
        send_client_mistakes(url)
        try:
            stack.wait_for(
                lambda: not instances_missing_traffic(stack, SERVICE_JOB),
                # Compose exports every 10 s: a round must wait for its own data to arrive.
                max(ROUND_SETTLE_S, getattr(stack, "settle_s", 0.0)),
                what="traffic on every worker",
            )
            break
        except StackError:
            continue
    else:
        pytest.fail(
            f"after {MAX_TRAFFIC_ROUNDS} rounds, workers without every kind of traffic: "
            f"{instances_missing_traffic(stack, SERVICE_JOB)}"
        )
    job = f'job="{SERVICE_JOB}"'
    for expr in (f"mlapi:drift_psi:1h{{{job}}}", f"mlapi:feedback_mae:1h{{{job}}}"):
        stack.wait_for(lambda e=expr: stack.prom_query(e), TRAFFIC_TIMEOUT_S, what=expr)
    return stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach every stack program's log tail to the report of a failed e2e test."""
    report = yield
    running = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(running, Stack | ComposeStack):
        report.sections.append(("stack logs", running.log_report()))
    return report
