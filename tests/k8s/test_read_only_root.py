"""The containers' filesystems as the chart sets them up: the root read-only
(readOnlyRootFilesystem), writable only where the Deployment mounts an emptyDir. The real
`mlapi serve` (2 workers, as the chart runs it) and the real collector start that way, each in a
mount namespace of its own, as the pods' unprivileged uid, and serve; without its emptyDirs the
API cannot start. So the emptyDir list is what the service needs, not a guess. (Needs root for
unshare, as CI has.)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.ports import free_ports
from devstack.server import ServerProcess
from devstack.stack import REPO_ROOT, ManagedProcess
from service.model.dataset import FEATURES
from tests.k8s.chart import one

pytestmark = pytest.mark.k8s

# uid and gid of the chart's pods (podSecurityContext runAsUser/runAsGroup).
POD_UID = 10001
# Arguments: the directories the program runs from, `--`, a (path, size) pair per tmpfs, `--`,
# the command. Mount a tmpfs at each path, make / read-only, then exec the command as the pod's
# user. A tmpfs must not hide the program itself (a checkout under /tmp, where the image has
# /opt/mlapi): such a directory is bound to a staging point first and moved back, read-only,
# onto its own path inside the tmpfs. The namespace is private: nobody outside sees these mounts.
READ_ONLY_ROOT = f"""set -e
program_dirs=""
while [ "$1" != -- ]; do program_dirs="$program_dirs $1"; shift; done
shift
mount -t tmpfs tmpfs /mnt
while [ "$1" != -- ]; do
    carried=""
    for dir in $program_dirs; do
        case "$dir/" in "$1"/*) carried="$carried $dir" ;; esac
    done
    n=0
    for dir in $carried; do n=$((n + 1)); mkdir "/mnt/$n"; mount --bind "$dir" "/mnt/$n"; done
    mount -t tmpfs -o "size=$2,mode=1777" tmpfs "$1"
    n=0
    for dir in $carried; do
        n=$((n + 1)); mkdir -p "$dir"; mount --move "/mnt/$n" "$dir"
        mount -o remount,bind,ro "$dir"
    done
    shift 2
done
shift
umount /mnt
mount -o remount,bind,ro /
exec setpriv --reuid={POD_UID} --regid={POD_UID} --clear-groups "$@"
"""


def writable_mounts(deployment: dict[str, Any], container_name: str) -> list[tuple[str, str]]:
    """(mountPath, tmpfs size) of every emptyDir the container mounts."""
    spec = deployment["spec"]["template"]["spec"]
    empty_dirs = {v["name"]: v["emptyDir"] for v in spec["volumes"] if "emptyDir" in v}
    container = next(c for c in spec["containers"] if c["name"] == container_name)
    return [
        (mount["mountPath"], empty_dirs[mount["name"]].get("sizeLimit", "64Mi").removesuffix("i"))
        for mount in container["volumeMounts"]
        if mount["name"] in empty_dirs
    ]


def uid_of(pid: int) -> int:
    """The real uid of a running process (after the wrapper's setpriv)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


def wrapper(mounts: list[tuple[str, str]]) -> tuple[str, ...]:
    pairs = [part for mount in mounts for part in mount]
    return ("unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", READ_ONLY_ROOT, "sh", *program_dirs(), "--", *pairs, "--")  # fmt: skip


def program_dirs() -> list[str]:
    """Where this test's programs come from: the checkout (an editable install), its venv and
    the Python it was made from; a directory inside another is carried with it."""
    dirs = {REPO_ROOT, Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()}
    return sorted(str(d) for d in dirs if not any(o != d and d.is_relative_to(o) for o in dirs))


@pytest.fixture(scope="module")
def readable_dir(rendered: dict[str, list[dict[str, Any]]], trained_model: Any) -> Iterator[Path]:
    """The session's model and the rendered collector config, where a tmpfs on /tmp cannot hide
    them and the pods' uid can read them (the image keeps its model under /opt/mlapi, root-owned
    and world-readable; the collector reads its ConfigMap)."""
    directory = Path(tempfile.mkdtemp(prefix="mlapi-k8s-", dir="/var/tmp"))
    try:
        directory.chmod(0o755)
        for path in trained_model.artifact_path.parent.iterdir():
            shutil.copy(path, directory / path.name)
        config_map = one(rendered["defaults"], "ConfigMap", "-collector")
        (directory / "collector-config.yaml").write_text(config_map["data"]["config.yaml"])
        yield directory
    finally:
        shutil.rmtree(directory)


def server(log: Path, readable_dir: Path, mounts: list[tuple[str, str]]) -> ServerProcess:
    env = {
        "MLAPI_MODEL_PATH": str(readable_dir / "model.skops"),
        # As in the image: no bytecode writes, and a home that does not exist.
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/nonexistent",
        "XDG_RUNTIME_DIR": "",
        # The chart's pods export over OTLP (several workers need it); nothing listens here.
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
    }
    return ServerProcess(log, env=env, workers=2, wrapper=wrapper(mounts))


def test_the_service_serves_with_a_read_only_root_and_the_charts_empty_dirs(
    rendered: dict[str, list[dict[str, Any]]], readable_dir: Path, tmp_path: Path
) -> None:
    mounts = writable_mounts(one(rendered["defaults"], "Deployment", "-api"), "api")
    assert [path for path, _ in mounts] == ["/tmp"]
    process = server(tmp_path / "server.log", readable_dir, mounts)
    with process:
        assert uid_of(process.pid) == POD_UID
        row = dict.fromkeys(FEATURES, 1.0)
        response = requests.post(f"{process.url}/predict", json=row, timeout=10)
        assert response.status_code == 200, response.text
    assert "Read-only file system" not in process.log_text()


def test_without_the_empty_dirs_the_service_cannot_start(
    readable_dir: Path, tmp_path: Path
) -> None:
    """The control: the same start with nothing writable fails (gunicorn's worker heartbeat
    needs a temporary directory)."""
    process = server(tmp_path / "server.log", readable_dir, [])
    with pytest.raises(RuntimeError, match="No usable temporary directory"):
        process.start()


def test_the_collector_runs_with_a_read_only_root(
    rendered: dict[str, list[dict[str, Any]]],
    binaries: dict[str, Path],
    readable_dir: Path,
    tmp_path: Path,
) -> None:
    """The chart gives the collector no writable path at all; it needs none."""
    deployment = one(rendered["defaults"], "Deployment", "-collector")
    assert writable_mounts(deployment, "collector") == []
    grpc, http, exporter, telemetry, health = free_ports(5)
    collector = ManagedProcess(
        name="otelcol",
        argv=[
            *wrapper([]),
            str(binaries["otelcol"]),
            f"--config={readable_dir}/collector-config.yaml",
        ],
        log_path=tmp_path / "otelcol.log",
        ready_url=f"http://127.0.0.1:{health}/",
        env={
            "OTELCOL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}",
            "OTELCOL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
            "OTELCOL_PROMETHEUS_ENDPOINT": f"127.0.0.1:{exporter}",
            "OTELCOL_TELEMETRY_HOST": "127.0.0.1",
            "OTELCOL_TELEMETRY_PORT": str(telemetry),
            "OTELCOL_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
            "OTELCOL_JAEGER_OTLP_ENDPOINT": "127.0.0.1:9",
        },
    )
    try:
        collector.start()
        assert collector.popen is not None
        assert uid_of(collector.popen.pid) == POD_UID
        assert requests.get(f"http://127.0.0.1:{telemetry}/metrics", timeout=5).status_code == 200
    finally:
        collector.stop()
    assert "read-only file system" not in collector.log_tail(500).lower()
