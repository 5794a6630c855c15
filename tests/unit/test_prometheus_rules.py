"""The Prometheus rules: valid for the pinned promtool, unit-tested, documented, threshold-free.

promtool is resolved as: `.ci/stack-bin promtool` (the pinned version, cached by `make test`),
else $MLAPI_PROMTOOL, else /usr/bin/promtool (Debian). No promtool at all is a failure.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

from service.model.thresholds import Thresholds, threshold_gauge_values
from tests.unit.psi import PSI_EPSILON

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "observability" / "prometheus" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
RULE_TEST_FILES = sorted((RULES_DIR / "tests").glob("*.yml"))
STACK_BIN = REPO / ".ci" / "stack-bin"
DEBIAN_PROMTOOL = Path("/usr/bin/promtool")
# A cached stack-bin answers at once; longer means it started a build, which `make test` does first.
STACK_BIN_TIMEOUT_S = 60
RUNBOOK_BASE = "https://github.com/monitoring-ml-api/monitoring-ml-api#runbook-"

# Generic service SLOs may use documented literals; every other alert compares against
# mlapi_threshold gauges only. The README runbook documents each of these numbers.
ALLOWED_LITERALS = {
    "TargetDown": {"0"},
    "MlapiHighServerErrorRatio": {"0.05"},
    "MlapiHighLatency": {"0.5"},
    "MlapiNoPredictions": {"0"},
    "TelemetryPipelineFailing": {"0"},
    "MlapiTracesDropped": {"0"},
}
# Alerts about the model's behaviour: they must read their thresholds from the card's gauges.
ML_ALERTS = {
    "MlapiPredictionHighShare",
    "MlapiPredictionLowShare",
    "MlapiFeatureOutOfRange",
    "MlapiPredictionDrift",
    "MlapiFeatureDrift",
    "MlapiLiveMaeAboveCeiling",
}


def stack_bin_promtool() -> Path | None:
    """The pinned promtool if `.ci/stack-bin` answers in time; a build it started is stopped."""
    if not STACK_BIN.is_file():
        return None
    # Own process group: on timeout the go build under stack-bin stops with it.
    process = subprocess.Popen(
        [str(STACK_BIN), "promtool"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, _ = process.communicate(timeout=STACK_BIN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate()
        return None
    if process.returncode != 0:
        return None
    for line in stdout.splitlines():
        name, _, path = line.partition("=")
        if name == "promtool" and Path(path).is_file():
            return Path(path)
    return None


@cache
def promtool() -> Path:
    from_stack_bin = stack_bin_promtool()
    if from_stack_bin is not None:
        return from_stack_bin
    from_env = os.environ.get("MLAPI_PROMTOOL")
    return Path(from_env) if from_env else DEBIAN_PROMTOOL


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = promtool()
    if not binary.is_file():
        pytest.fail(f"no promtool (tried .ci/stack-bin, $MLAPI_PROMTOOL, {DEBIAN_PROMTOOL})")
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=120, check=False
    )


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def all_rules() -> list[dict]:
    return [
        rule for path in RULE_FILES for group in load(path)["groups"] for rule in group["rules"]
    ]


def alerts() -> list[dict]:
    return [rule for rule in all_rules() if "alert" in rule]


def numeric_literals(expr: str) -> set[str]:
    """Numbers in a PromQL expression, ignoring label values, durations and metric names."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_ranges = re.sub(r"\[[^\]]*\]", "[]", without_strings)
    return set(re.findall(r"(?<![\w:.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w:.])", without_ranges))


def test_literal_detector_sees_thresholds_but_not_names_or_windows() -> None:
    expr = 'mlapi:drift_psi:1h{feature="p95"} > 0.25 and rate(x_p99_5m[15m]) > 1e-3 or y == 0'
    assert numeric_literals(expr) == {"0.25", "1e-3", "0"}


def test_rule_files_exist() -> None:
    assert [p.name for p in RULE_FILES] == ["alerts.yml", "recording.yml"]
    assert RULE_TEST_FILES


def test_promtool_check_rules() -> None:
    result = run_promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, f"{promtool()}\n{result.stdout}{result.stderr}"


def test_promtool_unit_tests_pass() -> None:
    result = run_promtool("test", "rules", *map(str, RULE_TEST_FILES))
    assert result.returncode == 0, f"{promtool()}\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_is_complete(rule: dict) -> None:
    assert rule.get("for"), "every alert needs a `for:` to ride out one bad scrape"
    assert rule["labels"]["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    assert annotations["runbook_url"] == RUNBOOK_BASE + rule["alert"].lower()


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: f"{r['alert']}-{r['labels']['severity']}")
def test_alert_literals_are_only_documented_slos(rule: dict) -> None:
    literals = numeric_literals(rule["expr"])
    assert literals <= ALLOWED_LITERALS.get(rule["alert"], set()), (
        f"{rule['alert']} hard-codes {sorted(literals)}: compare against mlapi:threshold:max"
    )


def test_ml_alerts_read_existing_threshold_gauges() -> None:
    exported = set(threshold_gauge_values(Thresholds(prediction_high=40, prediction_low=10), 3.0))
    ml_rules = [rule for rule in alerts() if rule["alert"] in ML_ALERTS]
    assert {rule["alert"] for rule in ml_rules} == ML_ALERTS
    for rule in ml_rules:
        used = set(re.findall(r'mlapi:threshold:max\{threshold="(\w+)"\}', rule["expr"]))
        assert used, f"{rule['alert']} compares against no threshold gauge"
        assert used <= exported, (
            f"{rule['alert']} reads thresholds nobody exports: {used - exported}"
        )


def test_psi_rule_floors_fractions_with_the_python_epsilon() -> None:
    (psi_rule,) = [r for r in all_rules() if r.get("record") == "mlapi:drift_psi:1h"]
    floors = re.findall(r"clamp_min\([^,]+,\s*([0-9.eE+-]+)\)", psi_rule["expr"])
    assert len(floors) == 4
    assert {float(f) for f in floors} == {PSI_EPSILON}


def test_every_rule_has_a_firing_and_a_silent_unit_test() -> None:
    expr_tests = []
    alert_tests = []
    for path in RULE_TEST_FILES:
        for group in load(path)["tests"]:
            expr_tests += group.get("promql_expr_test", [])
            alert_tests += group.get("alert_rule_test", [])
    for record in {r["record"] for r in all_rules() if "record" in r}:
        mentions = re.compile(rf"(?<![\w:]){re.escape(record)}(?![\w:])")
        cases = [
            [s["value"] for s in t["exp_samples"]] for t in expr_tests if mentions.search(t["expr"])
        ]
        assert any(any(v != 0 for v in values) for values in cases), f"{record}: no producing case"
        assert any(all(v == 0 for v in values) for values in cases), f"{record}: no silent case"
    for name in {r["alert"] for r in alerts()}:
        cases = [t for t in alert_tests if t["alertname"] == name]
        assert any(t["exp_alerts"] for t in cases), f"{name}: no case where it fires"
        assert any(not t["exp_alerts"] for t in cases), f"{name}: no case where it stays silent"


def test_firing_alert_tests_check_every_annotation() -> None:
    for path in RULE_TEST_FILES:
        for group in load(path)["tests"]:
            for case in group.get("alert_rule_test", []):
                for alert in case["exp_alerts"]:
                    assert set(alert["exp_annotations"]) == {
                        "summary",
                        "description",
                        "runbook_url",
                    }
                    assert "severity" in alert["exp_labels"]


def test_readme_has_a_runbook_section_per_alert() -> None:
    readme = (REPO / "README.md").read_text()
    headings = set(re.findall(r"^#+ Runbook: (\w+)\s*$", readme, flags=re.MULTILINE))
    missing = {rule["alert"] for rule in alerts()} - headings
    assert not missing, f"README.md lacks '### Runbook: NAME' sections for {sorted(missing)}"
