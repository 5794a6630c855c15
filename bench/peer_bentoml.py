"""Peer: BentoML 1.4.40, a `@bentoml.service` class (bench/peer_apps/bentoml_service.py) whose
`@bentoml.api` predict takes an ndarray, `workers` = our gunicorn worker count, served by
`bentoml serve` with its defaults (Prometheus metrics and per-request access log on; tracing off
unless an exporter is configured)."""

from __future__ import annotations

from pathlib import Path

from bench.peer import MODEL_FILE, Peer, PeerLaunch, app_source, rows_body
from devstack.ports import free_ports

VERSION = "1.4.40"
APP = "bentoml_service.py"


def launch(env_dir: Path, repo_dir: Path, workers: int) -> PeerLaunch:
    (port,) = free_ports(1)
    (repo_dir / APP).write_text(app_source(APP).read_text())
    argv = [
        str(env_dir / "bin" / "python"), "-m", "bentoml", "serve", "bentoml_service:Housing",
        "--working-dir", str(repo_dir), "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    return PeerLaunch(
        argv=argv,
        port=port,
        ready_path="/readyz",
        infer_path="/predict",
        env={
            "BENCH_MODEL": str(repo_dir / MODEL_FILE),
            "BENCH_WORKERS": str(workers),
            # Its model store and logs default to ~/bentoml; usage tracking would call out.
            "BENTOML_HOME": str(repo_dir / "bentoml-home"),
            "BENTOML_DO_NOT_TRACK": "True",
        },
    )


BENTOML = Peer(
    variant="bentoml",
    label=f"BentoML {VERSION}",
    name="bentoml",
    version=VERSION,
    requirements=(f"bentoml=={VERSION}",),
    reported=("bentoml", "starlette", "uvicorn", "pydantic"),
    launch=launch,
    # The api method's parameter is named `input`.
    infer_body=rows_body("input"),
)
