"""`replay` against the real service (gunicorn on loopback): the seed-shaped CSV at a held rate,
batches, ground-truth feedback, ragged rows, invalid cells, the error budget, an unreachable
target, and our traceparent arriving at (and being joined by) the server."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from devstack.ports import free_port

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 120


def run_replay(csv_path: Path, target: str, *args: str, report: Path | None = None):
    """`python -m replay` as a user runs it; returns (exit code, stderr, report dict)."""
    argv = [sys.executable, "-m", "replay", str(csv_path), "--target", target, *args]
    if report is not None:
        argv += ["--report", str(report)]
    # Inherited OTEL_* settings must not send this test's spans anywhere.
    env = {"PATH": "/usr/bin:/bin", "OTEL_TRACES_EXPORTER": "none"}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(report.read_text()) if report is not None and report.exists() else {}
    return proc.returncode, proc.stderr, data


@pytest.fixture(scope="module")
def holdout_rows(trained_model) -> tuple[list[str], list[list[str]]]:
    """The holdout CSV (features + MEDV) as header and rows of text cells."""
    with Path(trained_model.holdout_path).open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert "MEDV" in rows[0]
    return rows[0], rows[1:]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def seed_shaped_csv(holdout_rows, tmp_path_factory) -> Path:
    """Like the seed's newHousing.csv: the 13 feature columns, a header, no target."""
    header, rows = holdout_rows
    target = header.index("MEDV")
    keep = [i for i in range(len(header)) if i != target]
    return write_csv(
        tmp_path_factory.mktemp("replay") / "newHousing.csv",
        [header[i] for i in keep],
        [[row[i] for i in keep] for row in rows],
    )


def test_seed_shaped_csv_at_a_held_rate(server, seed_shaped_csv, tmp_path):
    code, stderr, report = run_replay(
        seed_shaped_csv, server.url, "--rate", "50", "--duration", "4", "--loop",
        "--concurrency", "8", report=tmp_path / "r.json",
    )  # fmt: skip
    assert code == 0, stderr
    # Within 2 % of rate * duration, asserted on counts.
    assert 196 <= report["sent"] <= 204, report
    assert report["succeeded"] == report["sent"]
    assert report["status_counts"] == {"200": report["sent"]}
    assert report["skipped_rows"] == 0
    assert report["feedback_sent"] == 0  # no target column, no feedback


def test_batches_send_several_rows_per_request(server, holdout_rows, tmp_path):
    header, rows = holdout_rows
    path = write_csv(tmp_path / "holdout.csv", header, rows[:20])
    code, stderr, report = run_replay(
        path, server.url, "--rate", "20", "--batch-size", "5", "--feedback-delay", "0",
        report=tmp_path / "r.json",
    )  # fmt: skip
    assert code == 0, stderr
    assert (report["sent"], report["rows_sent"], report["succeeded"]) == (4, 20, 4)


def test_ground_truth_feedback_reaches_the_feedback_endpoint(
    server, trained_model, holdout_rows, tmp_path
):
    header, rows = holdout_rows
    path = write_csv(tmp_path / "holdout.csv", header, rows[:10])
    version = trained_model.card.version
    before = feedback_rows(server.url, version)
    code, stderr, report = run_replay(
        path, server.url, "--rate", "20", "--feedback-delay", "0.5", report=tmp_path / "r.json"
    )
    assert code == 0, stderr
    # Every signed id the server issued came back with its actual value and was accepted.
    assert (report["feedback_sent"], report["feedback_failed"]) == (10, 0), report
    assert report["feedback_dropped"] == 0
    assert set(report["feedback_status_counts"]) == {"200"}
    assert feedback_rows(server.url, version) - before == 10


def feedback_rows(url: str, model_version: str) -> float:
    """mlapi_feedback_rows_total of the served version, from the embedded /metrics."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        if (
            line.startswith("mlapi_feedback_rows_total{")
            and f'model_version="{model_version}"' in line
        ):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no mlapi_feedback_rows_total series for the served model version")


def test_ragged_rows_are_skipped_with_their_line_numbers(server, seed_shaped_csv, tmp_path):
    lines = seed_shaped_csv.read_text().splitlines()[:6]
    lines[2] += ",1.0"  # line 3: one field too many
    lines[4] = lines[4].rsplit(",", 1)[0]  # line 5: one field short
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")
    code, stderr, report = run_replay(path, server.url, "--rate", "50", report=tmp_path / "r.json")
    assert code == 0, stderr
    assert report["skipped_rows"] == 2
    assert (report["sent"], report["succeeded"]) == (3, 3)
    assert f"{path}:3: expected 13 fields, got 14" in stderr
    assert f"{path}:5: expected 13 fields, got 12" in stderr


def test_non_numeric_cells_are_sent_and_counted_as_4xx(server, seed_shaped_csv, tmp_path):
    lines = seed_shaped_csv.read_text().splitlines()[:9]
    for i in (2, 5):
        cells = lines[i].split(",")
        cells[5] = "six"  # RM
        lines[i] = ",".join(cells)
    path = tmp_path / "strings.csv"
    path.write_text("\n".join(lines) + "\n")
    code, stderr, report = run_replay(path, server.url, "--rate", "50", report=tmp_path / "r.json")
    assert report["status_counts"] == {"200": 6, "422": 2}
    assert report["failed"] == 2
    # Default error budget is 0: two failures fail the run, with one line saying why.
    assert code == 1
    assert stderr.strip().splitlines()[-1] == (
        "replay: error rate 25.00% (2/8) exceeds --max-error-rate 0"
    )
    code, stderr, _ = run_replay(path, server.url, "--rate", "50", "--max-error-rate", "0.25")
    assert code == 0, stderr


def test_unreachable_target_exits_3_with_one_line(seed_shaped_csv, tmp_path):
    target = f"http://127.0.0.1:{free_port()}"
    code, stderr, report = run_replay(
        seed_shaped_csv, target, "--rate", "50", "--loop", "--duration", "60",
        report=tmp_path / "r.json",
    )  # fmt: skip
    assert code == 3
    assert stderr.strip().splitlines()[-1].startswith(f"replay: target {target} unreachable:")
    assert "refused" in stderr.lower()
    assert report["succeeded"] == 0
    assert report["sent"] < 50  # it stopped, it did not keep hammering for 60 s


def test_traceparent_arrives_and_the_server_joins_the_trace(server, seed_shaped_csv, tmp_path):
    code, stderr, report = run_replay(
        seed_shaped_csv, server.url, "--rate", "20", "--count", "5", "--run-id", "it-trace",
        report=tmp_path / "r.json",
    )  # fmt: skip
    assert code == 0, stderr
    assert report["run_id"] == "it-trace"
    assert len(report["slowest_trace_ids"]) == 5
    # The server's response trace_id equals the trace id of the traceparent we sent, and its
    # access log carries the same ids.
    assert (report["traces_joined"], report["traces_not_joined"]) == (5, 0)
    access_log = server.log_text()
    assert all(trace in access_log for trace in report["slowest_trace_ids"])


def test_shifted_features_are_accepted_and_unknown_ones_refused(server, seed_shaped_csv, tmp_path):
    """The wire values are checked in the unit tests; here the real server takes shifted rows."""
    code, stderr, report = run_replay(
        seed_shaped_csv, server.url, "--count", "3", "--rate", "20", "--shift", "RM=1.5",
        "--shift", "LSTAT=0.5", report=tmp_path / "r.json",
    )  # fmt: skip
    assert code == 0, stderr
    assert report["succeeded"] == 3
    code, stderr, _ = run_replay(seed_shaped_csv, server.url, "--shift", "NOPE=2")
    assert code == 2
    assert stderr.strip().splitlines()[-1] == "replay: --shift names columns not in the CSV: NOPE"


def write_aligned(path: Path, rows: list[list[str]]) -> Path:
    """Shaped like the seed's housing.csv: no header, columns aligned with runs of spaces."""
    path.write_text("".join("".join(f"{cell:>12}" for cell in row) + "\n" for row in rows))
    return path


def test_a_headerless_aligned_table_with_its_target_replays_as_it_is(
    server, trained_model, holdout_rows, tmp_path
):
    """No flags: the delimiter, the missing header and the names (from GET /model) are found,
    and the last column, the target, goes back as feedback."""
    _, rows = holdout_rows
    path = write_aligned(tmp_path / "housing.csv", rows[:12])
    code, stderr, report = run_replay(
        path, server.url, "--rate", "50", "--feedback-delay", "0.2", report=tmp_path / "r.json"
    )
    assert code == 0, stderr
    card = trained_model.card
    assert (
        f"replay: reading {path}: whitespace-separated, no header; 14 columns named by the "
        f"model card ({card.name} {card.version}), target MEDV (column 14)"
    ) in stderr.splitlines()
    assert report["status_counts"] == {"200": 12}
    assert (report["feedback_sent"], report["feedback_failed"]) == (12, 0)


def test_a_semicolon_file_with_a_header_replays(server, holdout_rows, tmp_path):
    header, rows = holdout_rows
    path = tmp_path / "semi.csv"
    path.write_text("\n".join(";".join(row) for row in [header, *rows[:5]]) + "\n")
    code, stderr, report = run_replay(path, server.url, "--rate", "50", report=tmp_path / "r.json")
    assert code == 0, stderr
    assert (
        f"replay: reading {path}: semicolon-separated, header; 14 columns named by the header, "
        "target MEDV (column 14)"
    ) in stderr.splitlines()
    assert report["status_counts"] == {"200": 5}


def test_feedback_delay_without_a_target_column_warns_at_start(server, holdout_rows, tmp_path):
    _, rows = holdout_rows
    path = write_aligned(tmp_path / "features.txt", [row[:-1] for row in rows[:3]])
    assert holdout_rows[0][-1] == "MEDV"
    code, stderr, report = run_replay(
        path, server.url, "--rate", "50", "--feedback-delay", "2", report=tmp_path / "r.json"
    )
    assert code == 0, stderr
    assert (
        f"replay: --feedback-delay 2 has no effect: {path} has no MEDV column, so no ground "
        "truth is sent (see --target-column)"
    ) in stderr.splitlines()
    assert report["status_counts"] == {"200": 3}
    assert report["feedback_sent"] == 0


def test_a_header_that_does_not_fit_the_model_is_refused_unless_forced(
    server, trained_model, holdout_rows, tmp_path
):
    header, rows = holdout_rows
    typo = ["LSTATT" if name == "LSTAT" else name for name in header]
    path = write_csv(tmp_path / "typo.csv", typo, rows[:4])
    code, stderr, report = run_replay(path, server.url, "--rate", "50", report=tmp_path / "r.json")
    assert code == 2
    card = trained_model.card
    assert stderr.strip().splitlines()[-1] == (
        f"replay: {path}: the columns do not fit the model {card.name} {card.version}: missing "
        "LSTAT; not features of the model: LSTATT; the server would refuse every row. Fix the "
        "header, name the columns with --columns, or send anyway with --force"
    )
    assert report == {}  # refused before anything was sent
    code, stderr, report = run_replay(
        path, server.url, "--rate", "50", "--force", report=tmp_path / "r.json"
    )
    assert code == 1, stderr  # the documented exit for an error rate above --max-error-rate
    (kind,) = report["error_codes"]
    assert (kind["status"], kind["code"], kind["count"]) == (422, "missing_field", 4)
    assert kind["example"].startswith("LSTAT: is required"), kind
    summary_line = next(line for line in stderr.splitlines() if "sending anyway" in line)
    assert summary_line.endswith("LSTATT; sending anyway (--force)")


def test_columns_option_renames_a_headerless_file(server, holdout_rows, tmp_path):
    header, rows = holdout_rows
    path = write_aligned(tmp_path / "t.txt", rows[:2])
    code, stderr, report = run_replay(
        path, server.url, "--rate", "50", "--columns", ",".join(header), report=tmp_path / "r.json"
    )
    assert code == 0, stderr
    assert "14 columns named by --columns, target MEDV (column 14)" in stderr
    assert report["feedback_sent"] == 2


def test_a_target_url_ending_in_predict_is_used_as_the_base(server, seed_shaped_csv, tmp_path):
    code, stderr, report = run_replay(
        seed_shaped_csv, f"{server.url}/predict", "--count", "3", "--rate", "50",
        report=tmp_path / "r.json",
    )  # fmt: skip
    assert code == 0, stderr
    assert report["target"] == server.url
    assert report["status_counts"] == {"200": 3}


def test_a_wrong_prefix_stops_after_three_404s(server, seed_shaped_csv, tmp_path):
    target = f"{server.url}/api"
    code, stderr, report = run_replay(
        seed_shaped_csv, target, "--rate", "50", "--duration", "30", "--loop",
        report=tmp_path / "r.json",
    )  # fmt: skip
    assert code == 3
    lines = stderr.strip().splitlines()
    assert (
        f"replay: columns not checked against the model card: GET {target}/model answered 404 "
        "not_found"
    ) in lines
    assert lines[-1].startswith(f"replay: target {target} has no /predict: it answered 404 3 times")
    assert report["status_counts"]["404"] < 30, report  # not 30 s of 404s
