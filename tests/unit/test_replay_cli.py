"""Command-line contract: option checks, exit codes and one-line reasons (no tracebacks)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from replay.cli import EXIT_USAGE, build_parser, config_from_args, main


def _config(*argv: str):
    parser = build_parser()
    return config_from_args(parser, parser.parse_args(list(argv)))


def test_defaults_and_options_map_onto_the_run_config(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    config = _config(
        "a.csv", "--target", "https://staging.example.com/api/", "--header", "X-A: 1",
        "--shift", "RM=1.2", "--ca-cert", str(ca), "--shuffle", "--seed", "3",
    )  # fmt: skip
    assert config.target == "https://staging.example.com/api"
    assert config.headers == {"X-A": "1"}
    assert config.shifts == {"RM": 1.2}
    assert config.verify == str(ca)
    assert config.shuffle_seed == 3
    assert len(config.run_id) == 32
    assert _config("a.csv", "--target", "http://h", "--insecure").verify is False


@pytest.mark.parametrize(
    "argv",
    [
        ["--loop"],  # a run must end
        ["--seed", "1"],  # only with --shuffle
        ["--duration", "1", "--count", "2"],
        ["--insecure", "--ca-cert", "x.pem"],
        ["--rate", "0"],
        ["--max-error-rate", "1.5"],
        ["--header", "no-colon"],
        ["--shift", "RM"],
        ["--ca-cert", "missing.pem"],
    ],
)
def test_bad_options_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["a.csv", "--target", "http://127.0.0.1:1", *argv])
    assert exc.value.code == EXIT_USAGE


def test_target_must_be_an_http_base_url():
    with pytest.raises(SystemExit):
        _config("a.csv", "--target", "127.0.0.1:8000")


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "cannot open CSV"), ("", "header is required"), ("A,B\n1\n", "no usable data rows")],
)
def test_unusable_csv_exits_2_with_one_line_and_no_traceback(tmp_path, content, reason):
    path = tmp_path / "in.csv"
    if content is not None:
        path.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "replay", str(path), "--target", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_USAGE
    assert "Traceback" not in proc.stderr
    assert reason in proc.stderr.strip().splitlines()[-1]


def test_shift_of_a_missing_column_exits_2(tmp_path, capsys):
    path = tmp_path / "in.csv"
    path.write_text("RM\n6.0\n")
    assert main([str(path), "--target", "http://127.0.0.1:9", "--shift", "LSTAT=2"]) == EXIT_USAGE
    assert "LSTAT" in capsys.readouterr().err
