"""`replay CSV --target URL ...`: argument parsing, exit codes and one-line failure reasons."""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from replay.columns import ColumnsError, parse_columns
from replay.csv_format import CsvUnreadable, parse_delimiter
from replay.csv_source import DEFAULT_SHUFFLE_BUFFER
from replay.feedback import FEEDBACK_PATH
from replay.report import summary_table, write_report
from replay.run import PREDICT_PATH, RunConfig, TargetUnreachable, execute
from replay.sender import parse_header, sets_authorization
from replay.shift import ShiftError, parse_shifts
from replay.tracing import TracingConfigError

EXIT_OK = 0
EXIT_ERROR_BUDGET = 1  # the run finished but more requests failed than --max-error-rate allows
EXIT_USAGE = 2  # bad arguments or an unreadable CSV (argparse also exits 2)
EXIT_UNREACHABLE = 3  # the target refused every first connection, or has no /predict (404)
EXIT_INTERRUPTED = 130
# A bearer token from the environment stays out of the process list, where --header shows it.
AUTH_TOKEN_ENV = "REPLAY_AUTH_TOKEN"
# The API's endpoints a --target may have been copied with: taken as its base URL. Not /model,
# a plausible gateway prefix; a trailing slash (http://gw/predict/) keeps any path a prefix.
ENDPOINT_PATHS = (PREDICT_PATH, FEEDBACK_PATH, "/healthz", "/readyz", "/openapi.json", "/metrics")

EPILOG = """\
Requests go to <target>/predict with {"records": [...]} bodies, due at fixed intervals for --rate
(open loop; latency is measured from each request's due time). Without --duration/--count the run
ends at the end of the CSV; --loop restarts the file and needs --duration or --count.

The CSV's delimiter (comma, semicolon, tab or runs of spaces) and header are guessed from its
first lines; a file without a header takes its column names from the model card (GET
<target>/model) when it has as many columns as the model has features, or one more: the target,
last. One line on stderr says how the file was read; --delimiter, --no-header and --columns
override the guesses. Columns that do not fit the model card are refused before sending, unless
--force.

An API with bearer auth: set REPLAY_AUTH_TOKEN (sent as 'Authorization: Bearer <token>' unless a
--header sets Authorization). Header values are never printed.

exit codes: 0 error rate within --max-error-rate; 1 error rate above it; 2 bad arguments, an
unreadable CSV, or columns that do not fit the model; 3 target unreachable (first connections
refused) or not the API (its /predict answers 404); 130 interrupted.
"""


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _base_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"expected http(s)://host[:port][/prefix], got {text!r}")
    if parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(
            f"expected the API's base URL http(s)://host[:port][/prefix], without ?query or "
            f"#fragment, got {text!r}"
        )
    return text


def split_endpoint(target: str) -> tuple[str, str | None]:
    """(base URL, the endpoint path it ended in, or None): `http://h:8000/predict` is taken as
    `http://h:8000`, not as a prefix that would make every request a 404; with a trailing slash
    the path stays a prefix."""
    if not target.endswith("/"):
        for path in ENDPOINT_PATHS:
            if target.endswith(path):
                return target.removesuffix(path), path
    return target.rstrip("/"), None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replay",
        description="Replay CSV rows against a model API at a held rate and report what happened.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "csv", type=Path, help="CSV (or whitespace-aligned) table; one request row per line"
    )
    parser.add_argument(
        "--target",
        required=True,
        type=_base_url,
        help="base URL of the API, e.g. http://127.0.0.1:8000 (requests go to <target>/predict; "
        "a URL ending in /predict is taken as its base, unless it ends in a slash)",
    )
    parser.add_argument("--rate", type=_positive_float, default=10.0, help="requests/s (10)")
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument("--duration", type=_positive_float, help="stop after S seconds")
    bound.add_argument("--count", type=_positive_int, help="stop after N requests")
    parser.add_argument(
        "--concurrency", type=_positive_int, default=10, help="max requests in flight (10)"
    )
    parser.add_argument("--batch-size", type=_positive_int, default=1, help="rows per request (1)")
    parser.add_argument("--loop", action="store_true", help="restart the CSV at its end")
    parser.add_argument("--shuffle", action="store_true", help="shuffle rows (bounded buffer)")
    parser.add_argument("--seed", type=int, help="shuffle seed, for a repeatable order")
    parser.add_argument(
        "--shuffle-buffer",
        type=_positive_int,
        default=DEFAULT_SHUFFLE_BUFFER,
        help=f"rows held for shuffling; bounds memory ({DEFAULT_SHUFFLE_BUFFER})",
    )
    parser.add_argument(
        "--delimiter",
        help="comma, semicolon, tab, whitespace (runs of spaces) or one character (guessed)",
    )
    parser.add_argument("--no-header", action="store_true", help="the first row is data (guessed)")
    parser.add_argument(
        "--columns",
        metavar="A,B,...",
        help="column names, replacing the header if there is one (header, else the model card)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="send even when the columns do not fit the model card",
    )
    parser.add_argument(
        "--target-column",
        help="column held back from requests and sent as ground truth (the card's target, MEDV)",
    )
    parser.add_argument(
        "--feedback-delay",
        type=_non_negative_float,
        help="seconds between a prediction and its ground-truth POST /feedback (0)",
    )
    parser.add_argument(
        "--header", action="append", default=[], metavar="'K: V'", help="extra request header"
    )
    parser.add_argument("--timeout", type=_positive_float, default=10.0, help="seconds (10)")
    parser.add_argument(
        "--max-error-rate",
        type=_fraction,
        default=0.0,
        help="failed/sent above this exits 1 (0)",
    )
    parser.add_argument("--report", type=Path, metavar="PATH.json", help="write the run report")
    parser.add_argument("--run-id", help="replay marker sent as header and baggage (random)")
    parser.add_argument(
        "--max-retries",
        type=int,
        default=2,
        help="retries for connect errors and 429/503 with Retry-After (2)",
    )
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    tls.add_argument("--ca-cert", type=Path, metavar="PATH", help="CA bundle to verify TLS with")
    parser.add_argument(
        "--shift",
        action="append",
        default=[],
        metavar="FEATURE=factor",
        help="multiply a numeric feature before sending (drift demos); repeatable",
    )
    return parser


def config_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RunConfig:
    """Cross-option checks argparse cannot express; errors exit 2 through parser.error."""
    if args.loop and args.duration is None and args.count is None:
        parser.error("--loop needs --duration or --count (a run must end)")
    if args.seed is not None and not args.shuffle:
        parser.error("--seed only applies with --shuffle")
    if args.max_retries < 0:
        parser.error("--max-retries must be >= 0")
    if args.ca_cert is not None and not args.ca_cert.is_file():
        parser.error(f"--ca-cert {args.ca_cert}: no such file")
    try:
        headers = dict(parse_header(text) for text in args.header)
        shifts = parse_shifts(args.shift)
        delimiter = None if args.delimiter is None else parse_delimiter(args.delimiter)
        columns = None if args.columns is None else parse_columns(args.columns)
    except ValueError as err:
        parser.error(str(err))
    headers = with_env_token(headers, os.environ)
    target, endpoint = split_endpoint(args.target)
    if endpoint is not None:
        print(
            f"replay: --target ends in {endpoint}, an endpoint of the API: using {target} as "
            "its base URL",
            file=sys.stderr,
        )
    shuffle_seed = None
    if args.shuffle:
        shuffle_seed = args.seed if args.seed is not None else random.randrange(2**31)
    return RunConfig(
        csv_path=args.csv,
        target=target,
        run_id=args.run_id or uuid.uuid4().hex,
        rate=args.rate,
        duration=args.duration,
        count=args.count,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        loop=args.loop,
        shuffle_seed=shuffle_seed,
        shuffle_buffer=args.shuffle_buffer,
        target_column=args.target_column,
        feedback_delay=args.feedback_delay,
        headers=headers,
        timeout=args.timeout,
        verify=str(args.ca_cert) if args.ca_cert else not args.insecure,
        shifts=shifts,
        max_retries=args.max_retries,
        delimiter=delimiter,
        header=False if args.no_header else None,
        columns=columns,
        force=args.force,
    )


def with_env_token(headers: dict[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """``headers`` plus ``Authorization: Bearer $REPLAY_AUTH_TOKEN``, unless a --header already
    sets Authorization (the explicit flag wins) or the variable is unset."""
    token = env.get(AUTH_TOKEN_ENV, "").strip()
    if not token or sets_authorization(headers):
        return headers
    return {**headers, "Authorization": f"Bearer {token}"}


def _fail(code: int, reason: str) -> int:
    print(f"replay: {reason}", file=sys.stderr)
    return code


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_from_args(parser, args)
    # SIGTERM (docker stop, CI timeouts) ends the run like Ctrl-C: in-flight requests finish
    # and the summary and report are still written.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        outcome = execute(config)
    except (CsvUnreadable, ColumnsError, ShiftError, TracingConfigError) as err:
        return _fail(EXIT_USAGE, str(err))
    except TargetUnreachable as err:
        return _fail(EXIT_UNREACHABLE, f"target {config.target} {err}")
    except KeyboardInterrupt:
        return _fail(EXIT_INTERRUPTED, "interrupted")
    finally:
        signal.signal(signal.SIGTERM, previous)
    report = outcome.report
    print(summary_table(report))
    if args.report is not None:
        try:
            write_report(args.report, report)
        except OSError as err:
            return _fail(EXIT_USAGE, f"cannot write report {args.report}: {err.strerror or err}")
    if outcome.stopped:
        return _fail(EXIT_UNREACHABLE, f"target {config.target} {outcome.stopped}")
    if outcome.interrupted:
        return _fail(EXIT_INTERRUPTED, "interrupted; the summary covers what was sent")
    if report["sent"] == 0:
        return _fail(EXIT_USAGE, f"CSV {config.csv_path} has no usable data rows")
    if report["error_rate"] > args.max_error_rate:
        return _fail(
            EXIT_ERROR_BUDGET,
            f"error rate {report['error_rate']:.2%} ({report['failed']}/{report['sent']}) "
            f"exceeds --max-error-rate {args.max_error_rate:g}",
        )
    return EXIT_OK
