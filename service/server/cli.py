"""The mlapi command: serve the model under gunicorn, or train one.

Operator mistakes (bad settings, a missing or tampered artifact) end in one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from gunicorn.app.base import Application

from service.api.app import create_app, load_configured_model
from service.model.card import CardError
from service.model.dataset import DatasetError, load_housing
from service.model.store import LoadedModel, ModelLoadError
from service.model.thresholds import ThresholdsError
from service.model.training import train as train_model
from service.server.preflight import bind_problem, settings_problems
from service.settings import ConfigError, Settings

GUNICORN_CONFIG = Path(__file__).with_name("gunicorn.conf.py")
EXIT_USAGE = 2
# Settings fields whose flag has another name.
_FLAGS = {"model_path": "model"}


def _say(message: str) -> None:
    print(f"mlapi: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.command(args))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"mlapi: invalid configuration: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except ModelLoadError as exc:
        print(f"mlapi: cannot load model: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (DatasetError, CardError) as exc:
        print(f"mlapi: cannot train: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ThresholdsError as exc:
        print(f"mlapi: invalid --threshold: {exc}", file=sys.stderr)
        return EXIT_USAGE


def serve(args: argparse.Namespace) -> int:
    overrides = {
        name: value
        for name in ("host", "port", "workers", "threads")
        if (value := getattr(args, name)) is not None
    }
    if args.model is not None:
        overrides["model_path"] = args.model
    # A refusal names the flag when a flag gave the value.
    flags = {name: f"--{_FLAGS.get(name, name)} {value}" for name, value in overrides.items()}
    settings = Settings.from_env().replace(labels=flags, **overrides)
    # Every refusal comes before gunicorn logs a line: alone, and fast.
    problems = settings_problems(settings, os.environ, flags)
    if problems:
        raise ConfigError(problems)
    # Load (and verify) once here, before any socket is bound: a bad artifact fails fast with one
    # line, and the built-in default is trained once instead of racing in every worker.
    # The workers inherit the loaded model through fork; each warms it up and builds its app.
    try:
        model = load_configured_model(settings, announce=_say)
    except DatasetError as exc:  # the built-in default model is trained on first start
        raise ModelLoadError(str(exc)) from exc
    # Last, so that the address is as free as it was when gunicorn binds it.
    if (problem := bind_problem(settings.host, settings.port)) is not None:
        print(f"mlapi: {problem}", file=sys.stderr)
        return EXIT_USAGE
    # gunicorn.conf.py and every worker read the same settings back from the environment (the
    # master adds a shared feedback key there when none is set).
    os.environ.update(settings.to_env())
    try:
        GunicornServer(model).run()
    except SystemExit as stop:
        _exit_without_teardown(stop.code)
    return 0


def _exit_without_teardown(code: object) -> NoReturn:
    """Leave a gunicorn process (master, or a worker: both unwind through here) at once.

    gunicorn has already drained requests, run its worker_exit hook and closed its sockets.
    What is left, the interpreter's teardown of scikit-learn/scipy/pandas, takes one to two
    seconds on a busy 2-core host and would count against the 5 s SIGTERM budget. atexit
    handlers do not run: per-process flushing (telemetry) belongs in gunicorn's worker_exit.
    """
    if isinstance(code, str):
        print(code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else int(code is not None))


def train(args: argparse.Namespace) -> int:
    result = train_model(
        load_housing(),
        args.out,
        seed=args.seed,
        version=args.version,
        threshold_overrides=args.threshold,
    )
    holdout = result.card.holdout
    print(f"model {result.card.name} {result.card.version}")
    print(f"holdout MAE={holdout.mae:.3f} RMSE={holdout.rmse:.3f} R2={holdout.r2:.3f}")
    print(f"artifact   {result.artifact_path}")
    print(f"card       {result.card_path}")
    print(f"holdout    {result.holdout_path}")
    return 0


class GunicornServer(Application):
    """gunicorn configured only from service/server/gunicorn.conf.py, serving ``create_app`` with
    the model the master loaded (each worker inherits it through fork)."""

    def __init__(self, model: LoadedModel) -> None:
        self._model = model
        super().__init__(prog="mlapi serve")

    def init(self, parser: Any, opts: Any, args: Any) -> None:
        """Unused: gunicorn's own command line is never parsed."""

    def load_config(self) -> None:
        self.load_config_from_file(str(GUNICORN_CONFIG))

    def load(self) -> Any:
        return create_app(Settings.from_env(), self._model)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlapi", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve_cmd = commands.add_parser(
        "serve", help="serve the model API under gunicorn (defaults from MLAPI_* variables)"
    )
    serve_cmd.add_argument("--host", help="bind address (MLAPI_HOST, default 127.0.0.1)")
    serve_cmd.add_argument("--port", type=int, help="TCP port (MLAPI_PORT, default 8000)")
    serve_cmd.add_argument("--workers", type=int, help="worker processes (MLAPI_WORKERS)")
    serve_cmd.add_argument("--threads", type=int, help="threads per worker (MLAPI_THREADS)")
    serve_cmd.add_argument(
        "--model",
        type=Path,
        metavar="PATH",
        help="model artifact (MLAPI_MODEL_PATH; default: the built-in model)",
    )
    serve_cmd.set_defaults(command=serve)

    train_cmd = commands.add_parser("train", help="train the housing model and write its card")
    train_cmd.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="directory for the artifact, card and holdout CSV",
    )
    train_cmd.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    train_cmd.add_argument("--version", help="model version (default: derived by training)")
    train_cmd.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an alert threshold in the card (repeatable), e.g. prediction_high=45; "
        "unset ones are derived from the training target (see README, Setting thresholds)",
    )
    train_cmd.set_defaults(command=train)
    return parser
