"""The compose stack as a user runs it: its containers, images, ports, volumes and shutdown.

Compose mode only (`make compose-e2e`), after every other e2e test: the later tests here restart
Prometheus, stop the API and take the whole stack down and up again, each leaving it healthy.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devstack.compose_stack import ComposeStack
from devstack.stack import http_get_json, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.compose_only(reason="checks the compose containers")]

API_IMAGE = "monitoring-ml-api/api:local"
STATE_TIMEOUT_S = 300.0
# `docker compose stop --timeout`: past this, docker sends SIGKILL (exit code 137).
STOP_DEADLINE_S = 5
SIGKILLED = 137
# A row of the training data (the card's feature order), for requests built by hand.
ROW = {"CRIM": 0.1, "ZN": 0.0, "INDUS": 8.0, "CHAS": 0, "NOX": 0.5, "RM": 6.2, "AGE": 60.0}
ROW |= {"DIS": 4.0, "RAD": 4, "TAX": 300.0, "PTRATIO": 18.0, "B": 390.0, "LSTAT": 12.0}
PREDICTED = 'mlapi_prediction_rows_total{job="mlapi", outcome="ok"}'
FOOTPRINT_RATE = 200
FOOTPRINT_S = 40
FOOTPRINT_SAMPLES = 4


@pytest.fixture(scope="module")
def compose(stack: ComposeStack) -> ComposeStack:
    return stack


def ps(compose: ComposeStack) -> dict[str, dict[str, Any]]:
    """`docker compose ps --all` by service (one JSON object per line, or one JSON array)."""
    text = compose.run_compose("ps", "--all", "--format", "json").strip()
    rows = json.loads(text) if text.startswith("[") else [json.loads(s) for s in text.splitlines()]
    return {row["Service"]: row for row in rows}


def expected_services(compose: ComposeStack) -> set[str]:
    """The default profile's services, but those whose image cannot be had here (Grafana)."""
    config = json.loads(compose.run_compose("config", "--format", "json"))
    unavailable = set(compose.env.get("MLAPI_UNAVAILABLE_IMAGES", "").split())
    return {
        name
        for name, service in config["services"].items()
        if service.get("image") not in unavailable and not service.get("profiles")
    }


def running_and_healthy(compose: ComposeStack) -> dict[str, str]:
    """Expected services not (yet) running or healthy, with their state; {} when all are."""
    rows = ps(compose)
    problems = {}
    for name in expected_services(compose):
        row = rows.get(name)
        if row is None:
            problems[name] = "no container"
        elif row["State"] != "running":
            problems[name] = row["State"]
        elif row.get("Health") not in ("", "healthy"):
            problems[name] = f"health {row['Health']}"
    return problems


def wait_healthy(compose: ComposeStack) -> None:
    wait_for(
        lambda: not running_and_healthy(compose),
        STATE_TIMEOUT_S,
        interval=2.0,
        what=f"every service running and healthy (now: {running_and_healthy(compose)})",
    )
    compose.start()  # and every endpoint the tests reach answers


def docker(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def prom_sample_at(compose: ComposeStack, expr: str, at: float) -> list[dict[str, Any]]:
    return compose.prom_api("query", query=expr, time=f"{at:.3f}")["result"]


def test_every_service_but_the_unobtainable_ones_runs_healthy(compose: ComposeStack) -> None:
    services = expected_services(compose)
    assert {"api", "otel-collector", "prometheus", "alertmanager", "jaeger"} <= services
    assert running_and_healthy(compose) == {}
    rows = ps(compose)
    # Every service with a healthcheck (Dockerfile or compose) reports it, and it passed.
    with_health = {name for name in services if rows[name].get("Health")}
    assert {"api", "otel-collector", "prometheus", "alertmanager", "jaeger"} <= with_health
    left_out = set(rows) - services
    assert not left_out & {"grafana", "grafana-secret"} or "grafana" in compose.env.get(
        "MLAPI_UNAVAILABLE_IMAGES", ""
    )


def test_every_process_in_every_container_runs_as_non_root(compose: ComposeStack) -> None:
    processes = {}
    for name, row in ps(compose).items():
        result = docker("top", row["ID"], "-o", "uid,pid,args")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.strip().splitlines()[1:]
        assert lines, f"{name}: no process"
        processes[name] = [line.split(None, 2) for line in lines]
    as_root = {
        name: [p for p in procs if p[0] in ("0", "root")] for name, procs in processes.items()
    }
    assert {name: procs for name, procs in as_root.items() if procs} == {}, processes


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def test_ports_are_published_on_loopback_only(compose: ComposeStack) -> None:
    published = {}
    for name, row in ps(compose).items():
        for publisher in row.get("Publishers") or []:
            if publisher.get("PublishedPort"):
                published[(name, publisher["PublishedPort"])] = publisher["URL"]
    assert published, "no published port"
    assert {key: url for key, url in published.items() if url != "127.0.0.1"} == {}
    # And on the host: nothing listens on a published port but on loopback.
    exposed = {
        port: addresses - {"127.0.0.1"}
        for (_, port) in published
        if (addresses := listening_addresses(port)) - {"127.0.0.1"}
    }
    assert exposed == {}


def test_the_image_holds_its_trained_model_read_only_and_verified(compose: ComposeStack) -> None:
    """Trained at build into a root-owned directory the service user cannot write; the served
    card (the API verified the artifact's sha256 against it at start) names that artifact."""
    card = http_get_json(f"{compose.service.url}/model")
    inspected = docker(
        "run", "--rm", "--network=none", "--entrypoint=sh", API_IMAGE, "-c",
        'cd "$(dirname "$MLAPI_MODEL_PATH")" && id -un && stat -c "%U %a %n" . * && '
        'sha256sum "$MLAPI_MODEL_PATH" && '
        'for f in . *; do test ! -w "$f" || echo "writable: $f"; done',
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr
    user, *owners, checksum = inspected.stdout.strip().splitlines()
    assert user == "mlapi"
    assert {line.split()[0] for line in owners} == {"root"}, owners
    assert "writable" not in inspected.stdout
    assert checksum.split()[0] == card["artifact_sha256"]


def test_the_image_refuses_a_tampered_model_at_start(compose: ComposeStack) -> None:
    tampered = docker(
        "run", "--rm", "--network=none", "--entrypoint=sh", API_IMAGE, "-c",
        "cp -r /opt/mlapi/model /tmp/model && printf x >> /tmp/model/model.skops"
        " && exec mlapi serve --model /tmp/model/model.skops",
    )  # fmt: skip
    assert tampered.returncode == 2, tampered.stderr
    assert "modified, truncated or replaced" in tampered.stderr
    assert "Traceback" not in tampered.stderr and "Starting gunicorn" not in tampered.stderr


def test_the_replay_profile_drives_traffic_into_prometheus(compose: ComposeStack) -> None:
    before = compose.settled_total(PREDICTED, compose.settle_s, STATE_TIMEOUT_S)
    compose.env |= {"REPLAY_RATE": "20", "REPLAY_DURATION": "30"}
    try:
        compose.run_compose("--profile", "replay", "up", "--detach", "--no-build", "replay")
        compose.wait_for(
            lambda: (compose.prom_total(PREDICTED) or 0.0) >= before + 100,
            STATE_TIMEOUT_S,
            what=f"sum({PREDICTED}) >= {before} + 100",
        )
        compose.wait_for(
            lambda: "replay" in http_get_json(f"{compose.jaeger_query_url}/api/services")["data"],
            STATE_TIMEOUT_S,
            what="the replay client's traces in Jaeger",
        )
    finally:
        compose.run_compose("--profile", "replay", "rm", "--stop", "--force", "replay")
        for name in ("REPLAY_RATE", "REPLAY_DURATION"):
            compose.env.pop(name)


def container_stats(compose: ComposeStack) -> dict[str, tuple[float, float]]:
    """(memory MiB, CPU %) per service, from one `docker stats --no-stream`."""
    ids = {row["ID"][:12]: name for name, row in ps(compose).items() if row["State"] == "running"}
    result = docker("stats", "--no-stream", "--format", "{{json .}}", *ids)
    assert result.returncode == 0, result.stderr
    stats = {}
    for line in result.stdout.splitlines():
        row = json.loads(line)
        used = row["MemUsage"].split("/")[0].strip()
        number, unit = re.fullmatch(r"([\d.]+)\s*([KMG]i?B|B)", used).groups()
        scale = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]
        stats[ids[row["ID"][:12]]] = (float(number) * scale, float(row["CPUPerc"].rstrip("%")))
    return stats


def test_footprint_idle_and_under_replay(
    compose: ComposeStack, record_property: pytest.RecordProperty
) -> None:
    """Measured, not asserted beyond sanity: the README's table comes from this output."""
    idle = container_stats(compose)
    record_property("idle MiB / CPU% per container", _table(idle))
    record_property("idle MiB total", round(sum(mem for mem, _ in idle.values())))
    compose.env |= {"REPLAY_RATE": str(FOOTPRINT_RATE), "REPLAY_DURATION": str(FOOTPRINT_S)}
    peak: dict[str, tuple[float, float]] = {}
    try:
        compose.run_compose("--profile", "replay", "up", "--detach", "--no-build", "replay")
        replay_id = ps(compose)["replay"]["ID"]
        for _ in range(FOOTPRINT_SAMPLES):
            time.sleep(FOOTPRINT_S / (FOOTPRINT_SAMPLES + 1))
            for name, (mem, cpu) in container_stats(compose).items():
                old_mem, old_cpu = peak.get(name, (0.0, 0.0))
                peak[name] = (max(mem, old_mem), max(cpu, old_cpu))
        exited = docker("wait", replay_id, timeout=FOOTPRINT_S + STATE_TIMEOUT_S)
        summary = compose.run_compose("logs", "--no-color", "replay")
    finally:
        compose.run_compose("--profile", "replay", "rm", "--stop", "--force", "replay")
        for name in ("REPLAY_RATE", "REPLAY_DURATION"):
            compose.env.pop(name)
    record_property(f"peak MiB / CPU% per container, replay {FOOTPRINT_RATE} req/s", _table(peak))
    achieved = re.search(r"rate\s+([\d.]+)/s achieved", summary)
    record_property("replay's achieved rate (req/s)", achieved[1] if achieved else summary[-500:])
    assert exited.stdout.strip() == "0", summary[-2000:]
    assert set(idle) >= {"api", "otel-collector", "prometheus", "alertmanager", "jaeger"}
    assert all(mem > 0 for mem, _ in idle.values()), idle


def _table(stats: dict[str, tuple[float, float]]) -> str:
    return ", ".join(
        f"{name} {mem:.0f} MiB {cpu:.0f}%" for name, (mem, cpu) in sorted(stats.items())
    )


def test_prometheus_keeps_its_series_across_a_restart(compose: ComposeStack) -> None:
    at = time.time() - 5
    before = prom_sample_at(compose, 'up{job="otel-collector"}', at)
    assert before, "no sample to compare"
    compose.run_compose("restart", "prometheus")
    wait_healthy(compose)
    assert prom_sample_at(compose, 'up{job="otel-collector"}', at) == before


class SlowUpload:
    """A POST /predict whose body is held back: in flight, on the server, until `finish`."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        body = json.dumps({"records": [ROW]}).encode()
        self.head, self.tail = body[:10], body[10:]
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        request = (
            f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self.sock.sendall(request + self.head)

    def finish(self) -> str:
        """Send the rest of the body; the status line of the response."""
        with self.sock:
            self.sock.sendall(self.tail)
            response = b""
            while chunk := self.sock.recv(65536):
                response += chunk
        return response.split(b"\r\n", 1)[0].decode()


def logged_since(compose: ComposeStack, service: str, since: str, text: str) -> bool:
    return text in compose.run_compose("logs", "--no-color", f"--since={since}", service)


def test_sigterm_answers_in_flight_requests_and_stops_in_time(compose: ComposeStack) -> None:
    api_id = ps(compose)["api"]["ID"]
    # One held-back upload per worker (sync workers: each serves one request at a time).
    uploads = [SlowUpload(compose.service.url) for _ in range(2)]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    stopper = threading.Thread(
        target=compose.run_compose, args=("stop", f"--timeout={STOP_DEADLINE_S}", "api")
    )
    stopper.start()
    try:
        # The master has the signal before the bodies complete: these are in flight at SIGTERM.
        wait_for(
            lambda: logged_since(compose, "api", since, "Handling signal: term"),
            STOP_DEADLINE_S,
            interval=0.2,
            what="gunicorn to log SIGTERM",
        )
        with ThreadPoolExecutor(len(uploads)) as pool:
            statuses = list(pool.map(SlowUpload.finish, uploads))
    finally:
        stopper.join(timeout=STATE_TIMEOUT_S)
    exit_code = docker("inspect", "--format", "{{.State.ExitCode}}", api_id).stdout.strip()
    compose.run_compose("start", "api")
    wait_healthy(compose)
    assert statuses == ["HTTP/1.1 200 OK"] * len(uploads)
    # Not SIGKILLed at the deadline: gunicorn finished its requests and exited by itself.
    assert exit_code == "0", f"api exited {exit_code} (137: killed after {STOP_DEADLINE_S} s)"


def test_stop_then_down_then_up_comes_back_healthy_with_prometheus_history(
    compose: ComposeStack,
) -> None:
    at = time.time() - 5
    before = prom_sample_at(compose, 'up{job="otel-collector"}', at)
    assert before, "no sample to compare"
    services = sorted(expected_services(compose))
    orphans_before = dangling_volumes()
    compose.run_compose("stop", f"--timeout={STOP_DEADLINE_S}", *services)
    # Each one exited by itself on SIGTERM: none waited out the deadline to be killed.
    exit_codes = {name: row["ExitCode"] for name, row in ps(compose).items() if name in services}
    assert exit_codes == dict.fromkeys(services, 0), f"{SIGKILLED}: killed at the deadline"
    compose.run_compose("down", "--timeout=10")
    assert ps(compose) == {}
    compose.run_compose("up", "--detach", "--no-build", "--wait", "--wait-timeout=300", *services)
    wait_healthy(compose)
    assert prom_sample_at(compose, 'up{job="otel-collector"}', at) == before
    # The named volumes are in use again, and no anonymous one (an image's VOLUME) was orphaned.
    assert dangling_volumes() == orphans_before


def dangling_volumes() -> set[str]:
    result = docker("volume", "ls", "--quiet", "--filter", "dangling=true")
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())
