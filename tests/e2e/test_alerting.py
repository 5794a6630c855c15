"""ML signals end to end: drift and prediction-threshold alerts through the real Prometheus and
Alertmanager, and silence under normal traffic.

This module runs its own stack, whose Prometheus loads a test rendering of the repo's rule files:
the same rules with shorter range windows and `for:` (recorded names unchanged), so an alert that
needs an hour of drift in production fires within seconds here. Its service is trained through
the real `mlapi train` CLI with test thresholds. Each test serves it under a job of its own, so
what one test's replay left in the rule windows, in Prometheus' alerts and at the webhook is not
seen by another: the tests pass in any order.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.server import mlapi_command
from devstack.stack import PROMETHEUS_CONFIG, Stack, StackError, running, stop_process
from service.model.store import ARTIFACT_NAME, HOLDOUT_NAME
from tests.e2e.deployment import REPLAY_TIMEOUT_S, client_env, deploy, replay, replay_command

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.binaries_only(
        reason="starts its own stack with short test rule windows and a webhook sink"
    ),
]

RULES_DIR = PROMETHEUS_CONFIG.parent / "rules"
# Test rendering of the rules: every range window maps to a short one; an unmapped window fails.
TEST_WINDOWS = {"1h": "60s", "30m": "60s", "15m": "30s", "10m": "30s", "5m": "20s"}
TEST_FOR = "5s"
RANGE_WINDOW = re.compile(r"\[(\w+)\]")
FOR_CLAUSE = re.compile(r"^(\s+for:) \S+$", re.MULTILINE)

JOB_PREFIX = "mlapi-alerting"
# The holdout has ~100 rows: against the training bins its own PSI is up to 0.24 for a feature
# (sampling noise; measured with service.model.drift_reference.psi over every window of >= 500
# consecutive rows, the default drift_min_observations). psi_warn above that keeps the normal
# replay silent; the drifted replay scores PSI > 3 on RM, LSTAT and the prediction.
TEST_THRESHOLDS = ("psi_warn=0.4", "psi_critical=1.0")
# Rooms up, poverty, pupil/teacher ratio and distance to jobs down: 47 % of the holdout's
# predictions land above prediction_high (5 % of the unshifted ones).
DRIFT_SHIFTS = ("RM=1.4", "LSTAT=0.3", "PTRATIO=0.7", "DIS=0.5")
# 100 rows/s: a 60 s drift window holds thousands of rows, a few dozen passes over the holdout.
TRAFFIC = ("--rate=20", "--batch-size=5", "--concurrency=4", "--loop")
NORMAL_DURATION_S = 25

ML_ALERTS = (
    "MlapiPredictionHighShare",
    "MlapiPredictionLowShare",
    "MlapiPredictionDrift",
    "MlapiFeatureDrift",
    "MlapiFeatureOutOfRange",
)
# (alertname, severity, feature label or None) the drifted replay must fire. Critical drift
# inhibits the warning of the same feature in Alertmanager, so only the critical arrives there.
EXPECTED_FIRING = {
    ("MlapiPredictionHighShare", "warning", None),
    ("MlapiPredictionDrift", "critical", "prediction"),
    ("MlapiFeatureDrift", "critical", "RM"),
    ("MlapiFeatureDrift", "critical", "LSTAT"),
    ("MlapiFeatureOutOfRange", "warning", "RM"),
}
ARMED_S = 10  # the drift alerts must have been armed (enough observations) at least this long
PIPELINE_TIMEOUT_S = 60.0
ALERT_TIMEOUT_S = 120.0


def render_test_rules(target: Path) -> Path:
    """Write every rule file of the repo into `target` with test windows and `for:`."""

    def window(found: re.Match[str]) -> str:
        if found.group(1) not in TEST_WINDOWS:
            raise StackError(f"rule window [{found.group(1)}] has no test value in TEST_WINDOWS")
        return f"[{TEST_WINDOWS[found.group(1)]}]"

    target.mkdir(parents=True, exist_ok=True)
    for source in sorted(RULES_DIR.glob("*.yml")):
        text = RANGE_WINDOW.sub(window, source.read_text())
        (target / source.name).write_text(FOR_CLAUSE.sub(rf"\1 {TEST_FOR}", text))
    return target


@pytest.fixture(scope="module")
def stack(stack_binaries, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """This module's own stack (a fresh Prometheus, so no other test's traffic is in a window),
    loading the test rendering of the rules."""
    workdir = tmp_path_factory.mktemp("alerting-stack")
    rules = render_test_rules(workdir / "config" / "rules")
    with running(Stack(workdir, stack_binaries, rules_dir=rules)) as stack:
        yield stack


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained by the real CLI with the test thresholds (read-only for the tests)."""
    root = tmp_path_factory.mktemp("alerting-model")
    overrides = [arg for name in TEST_THRESHOLDS for arg in ("--threshold", name)]
    subprocess.run(
        [*mlapi_command(), "train", "--out", str(root / "model"), *overrides],
        check=True,
        capture_output=True,
        timeout=REPLAY_TIMEOUT_S,
    )
    return root / "model"


@dataclass(frozen=True)
class Deployed:
    url: str
    holdout: Path
    job: str


@pytest.fixture
def deployed(stack: Stack, model_dir: Path, tmp_path: Path) -> Iterator[Deployed]:
    """The model served by 2 workers under a job of this test's own."""
    job = f"{JOB_PREFIX}-{uuid.uuid4().hex[:8]}"
    with deploy(stack, model_dir / ARTIFACT_NAME, job, tmp_path / "service.log") as process:
        yield Deployed(process.url, model_dir / HOLDOUT_NAME, job)


def threshold(stack: Stack, job: str, name: str) -> float:
    """The threshold as the alert rules see it: the service's gauge, via the recording rule."""
    result = stack.wait_for(
        lambda: stack.prom_query(f'mlapi:threshold:max{{job="{job}", threshold="{name}"}}'),
        PIPELINE_TIMEOUT_S,
        what=f"threshold {name}",
    )
    return float(result[0]["value"][1])


def psi_by_feature(stack: Stack, job: str) -> dict[str, float]:
    result = stack.prom_query(f'mlapi:drift_psi:1h{{job="{job}"}}')
    return {s["metric"]["feature"]: float(s["value"][1]) for s in result}


def ml_alerts_fired_between(stack: Stack, job: str, start: float, end: float) -> set[str]:
    """Names of the ML alerts that were firing at any rule evaluation in between. Pending does
    not count: a few seconds after the start, the 30 s share windows hold ~100 rows, where the
    holdout's tail share reaches (never exceeds) the 10 % threshold."""
    names = "|".join(ML_ALERTS)
    result = stack.prom_api(
        "query_range",
        query=f'ALERTS{{job="{job}", alertname=~"{names}", alertstate="firing"}}',
        start=f"{start:.3f}",
        end=f"{end:.3f}",
        step="1",
    )["result"]
    return {s["metric"]["alertname"] for s in result}


def firing(stack: Stack, job: str) -> set[tuple[str, str, str | None]]:
    """(alertname, severity, feature) of this job's alerts Prometheus reports as firing."""
    return {
        (a["labels"]["alertname"], a["labels"]["severity"], a["labels"].get("feature"))
        for a in stack.prom_api("alerts")["alerts"]
        if a["state"] == "firing" and a["labels"].get("job") == job
    }


def delivered(stack: Stack, job: str) -> set[tuple[str, str, str | None]]:
    """(alertname, severity, feature) of this job's firing alerts the webhook received."""
    return {
        (a["labels"]["alertname"], a["labels"]["severity"], a["labels"].get("feature"))
        for a in stack.webhook.alerts()
        if a["status"] == "firing" and a["labels"].get("job") == job
    }


def test_normal_replay_fires_no_ml_alert(stack: Stack, deployed: Deployed, tmp_path: Path) -> None:
    job = deployed.job
    min_observations = threshold(stack, job, "drift_min_observations")
    psi_warn = threshold(stack, job, "psi_warn")
    start = time.time()
    replay(
        deployed.holdout,
        deployed.url,
        tmp_path / "report.json",
        *TRAFFIC,
        f"--duration={NORMAL_DURATION_S}",
        env=client_env(stack, "replay-normal"),
    )
    # Armed: every variable's window held enough observations for its PSI to count, long enough
    # for an alert to go from pending to firing (for: 5s), and every ML rule had a value.
    armed = (
        f'count_over_time((mlapi:drift_observations_per_feature:increase1h{{job="{job}"}}'
        f" >= {min_observations})[60s:1s]) >= {ARMED_S}"
    )
    stack.wait_for(
        lambda: len(stack.prom_query(armed)) == len(psi_by_feature(stack, job)) > 1,
        PIPELINE_TIMEOUT_S,
        what=f"drift alerts armed for {ARMED_S}s on every variable",
    )
    for rule in (
        "mlapi:prediction_threshold_share:ratio15m",
        "mlapi:feature_out_of_range:ratio15m",
    ):
        assert stack.prom_query(f'{rule}{{job="{job}"}}'), f"{rule} has no value"
    psi = psi_by_feature(stack, job)
    assert ml_alerts_fired_between(stack, job, start, time.time()) == set(), psi
    assert max(psi.values()) < psi_warn, psi
    assert not delivered(stack, job)


def test_drifted_replay_fires_drift_and_threshold_alerts_to_the_webhook(
    stack: Stack, deployed: Deployed, tmp_path: Path
) -> None:
    job = deployed.job
    psi_critical = threshold(stack, job, "psi_critical")
    shifts = [f"--shift={shift}" for shift in DRIFT_SHIFTS]
    start = time.time()
    log_path = tmp_path / "replay.log"
    # In the background until the alerts arrived: they must fire on drift that is still going on.
    with log_path.open("wb") as log:
        run = subprocess.Popen(
            replay_command(
                deployed.holdout,
                deployed.url,
                *TRAFFIC,
                *shifts,
                f"--duration={2 * ALERT_TIMEOUT_S + PIPELINE_TIMEOUT_S:.0f}",
            ),
            env=client_env(stack, "replay-drifted"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        stack.wait_for(
            lambda: psi_by_feature(stack, job).get("RM", 0.0) > psi_critical,
            PIPELINE_TIMEOUT_S,
            what=f"PSI of RM above psi_critical ({psi_critical})",
        )
        try:
            stack.wait_for(
                lambda: firing(stack, job) >= EXPECTED_FIRING,
                ALERT_TIMEOUT_S,
                what="drift and prediction-threshold alerts firing in Prometheus",
            )
            stack.wait_for(
                lambda: delivered(stack, job) >= EXPECTED_FIRING,
                ALERT_TIMEOUT_S,
                what="the same alerts at the webhook through Alertmanager",
            )
        except StackError as error:
            pytest.fail(
                f"{error}\nfiring: {sorted(firing(stack, job), key=str)}"
                f"\ndelivered: {sorted(delivered(stack, job), key=str)}"
                f"\nPSI: {psi_by_feature(stack, job)}"
            )
        assert run.poll() is None, f"the drifted replay ended early: {log_path.read_text()[-2000:]}"
        # The query that finds the normal replay silent sees these alerts.
        fired = ml_alerts_fired_between(stack, job, start, time.time())
        assert fired >= {name for name, _, _ in EXPECTED_FIRING}, fired
    finally:
        # SIGINT: replay writes its report and summary before exiting.
        stop_process(run, signal.SIGINT)
