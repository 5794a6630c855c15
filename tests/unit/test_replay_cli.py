"""Command-line contract: option checks, exit codes and one-line reasons (no tracebacks)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from replay.cli import (
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    build_parser,
    config_from_args,
    main,
    split_endpoint,
)
from replay.csv_format import WHITESPACE


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
    # Guessed from the file unless given; the target column from the card unless given.
    assert (config.delimiter, config.header, config.columns) == (None, None, None)
    assert (config.target_column, config.feedback_delay, config.force) == (None, None, False)
    assert _config("a.csv", "--target", "http://h", "--insecure").verify is False
    given = _config(
        "a.csv", "--target", "http://h", "--delimiter", "whitespace", "--no-header",
        "--columns", "RM, LSTAT", "--force", "--target-column", "PRICE", "--feedback-delay", "0",
    )  # fmt: skip
    assert (given.delimiter, given.header, given.columns) == (WHITESPACE, False, ("RM", "LSTAT"))
    assert (given.target_column, given.feedback_delay, given.force) == ("PRICE", 0.0, True)


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
        ["--delimiter", "ab"],
        ["--columns", "A,,B"],
        ["--columns", "A,A"],
    ],
)
def test_bad_options_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["a.csv", "--target", "http://127.0.0.1:1", *argv])
    assert exc.value.code == EXIT_USAGE


@pytest.mark.parametrize("target", ["127.0.0.1:8000", "http://h:8000/?x=1", "http://h/#top"])
def test_target_must_be_an_http_base_url(target):
    with pytest.raises(SystemExit):
        _config("a.csv", "--target", target)


@pytest.mark.parametrize(
    ("given", "base", "endpoint"),
    [
        ("http://h:8000/predict", "http://h:8000", "/predict"),
        ("http://gw/predict/", "http://gw/predict", None),  # a slash: a prefix after all
        ("http://gw/model", "http://gw/model", None),
        ("https://h/api/feedback", "https://h/api", "/feedback"),
        ("http://h:8000/healthz", "http://h:8000", "/healthz"),
        ("http://h:8000/api", "http://h:8000/api", None),
        ("http://h:8000", "http://h:8000", None),
    ],
)
def test_a_target_ending_in_an_endpoint_is_its_base_url(given, base, endpoint, capsys):
    assert split_endpoint(given) == (base, endpoint)
    assert _config("a.csv", "--target", given).target == base
    err = capsys.readouterr().err
    assert (f"using {base} as its base URL" in err) is (endpoint is not None)


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "cannot open CSV"), ("", "has no rows"), ("A,B\n1\n", "no usable data rows")],
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


def test_a_headerless_file_against_an_unreachable_target_exits_3(tmp_path, capsys):
    """Its column names would come from the card: nothing can be sent without it."""
    path = tmp_path / "in.txt"
    path.write_text(" 1  2  3\n 4  5  6\n")
    assert main([str(path), "--target", "http://127.0.0.1:9"]) == EXIT_UNREACHABLE
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(
        "replay: target http://127.0.0.1:9 unreachable: GET http://127.0.0.1:9/model failed: "
        "connect:"
    )


def test_columns_must_match_the_width_of_the_file(tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text(" 1  2  3\n 4  5  6\n")
    assert main([str(path), "--target", "http://127.0.0.1:9", "--columns", "A,B"]) == EXIT_USAGE
    assert capsys.readouterr().err.strip().endswith("--columns names 2 columns, " + f"{path} has 3")
