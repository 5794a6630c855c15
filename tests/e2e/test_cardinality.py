"""Random clients cannot grow the number of metric series: both export paths stay under a ceiling.

Every label this service exports takes its values from code or from the model card, never from
the request: `http.route` is the Flask rule (empty for a 404 or 405), `http.request.method` is
one of the known methods or `_OTHER`, `http.response.status_code` is one of the few statuses the
API answers, rejection reasons are capped and unknown feature names become `_unknown`, drift
bins are fixed by the card. So after normal traffic has created the series a healthy deployment has,
RANDOM_REQUESTS requests with random paths, methods (nonsense ones too), header values
(traceparent garbage, User-Agent, Content-Type) and feature values (out of range, extreme,
missing, unknown) may only add the few series of statuses and methods normal traffic did not use.
Span names are labels too (span metrics): a request no route matched is named by its method
alone, never by its raw path.

Ceilings (measured Nov 2026 with the default model: see MEASURED_* and README "Cardinality"):
- embedded `/metrics`, 1 worker: series = sample lines of the exposition;
- OTLP -> collector -> Prometheus, 2 workers: series of this deployment's job in Prometheus
  (service metrics and span metrics, recording rules excluded). Every worker exports its own
  series, so this path scales with the worker count; the ceiling is for 2 workers
  (deployment.WORKERS).
"""

from __future__ import annotations

import json
import random
import string
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from devstack.server import ServerProcess
from devstack.stack import Stack
from service.model.dataset import FEATURES
from tests.e2e.deployment import client_env, deploy, replay

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.binaries_only(reason="deploys its own services, one with embedded /metrics"),
]

SEED = 20261127
RANDOM_REQUESTS = 3000
SENDERS = 8
# Series after normal traffic (holdout replay with feedback, drifted rows, client mistakes),
# measured Nov 2026 over six runs: embedded /metrics with 1 worker: 495 every run; collector
# path with 2 workers: 1086-1130 (whether both workers see every status varies).
MEASURED_NORMAL_EMBEDDED = 495
MEASURED_NORMAL_COLLECTOR = 1130
# What RANDOM_REQUESTS more added: the unrouted (404, 405) and refused (400, 415) requests of
# the HTTP duration histogram, by method (7 known ones + `_OTHER`) and status, 21 series each
# (19 buckets, sum, count), per worker; on the collector path also their span metrics (span
# name = the method alone, 16 series each). Embedded: 588 every run (one worker sees it all).
# Collector: 1577-1702 (which worker gets a rare method x status pair varies).
MEASURED_ADDED_EMBEDDED = 588
MEASURED_ADDED_COLLECTOR = 1702
# Asserted: measured + 10 % (15 % where it varies), room for the methods random traffic did not
# send (TRACE, CONNECT: 84 series per worker) and a model card with a few more drift bins.
MAX_ADDED_EMBEDDED = round(MEASURED_ADDED_EMBEDDED * 1.1)
MAX_ADDED_COLLECTOR = round(MEASURED_ADDED_COLLECTOR * 1.15)
CEILING_EMBEDDED = round((MEASURED_NORMAL_EMBEDDED + MEASURED_ADDED_EMBEDDED) * 1.1)
CEILING_COLLECTOR = round((MEASURED_NORMAL_COLLECTOR + MEASURED_ADDED_COLLECTOR) * 1.1)
# Longer than the span metrics' flush interval (5 s in the test stack).
SETTLE_S = 7.0

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")
# The service's routes (healthz, readyz and metrics are not measured, but answer).
PATHS = ("/predict", "/feedback", "/model", "/healthz", "/readyz", "/openapi.json", "/metrics")


def random_token(rng: random.Random, size: int) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits + "-_.~%", k=size))


def random_value(rng: random.Random) -> object:
    """A feature value: plausible, far out of range, extreme, or not a number at all."""
    kind = rng.randrange(6)
    if kind == 0:
        return rng.uniform(-1e6, 1e6)
    if kind == 1:
        return rng.choice([1e308, -1e308, 5e-324, 0.0, -0.0])
    if kind == 2:
        return random_token(rng, rng.randrange(1, 12))
    if kind == 3:
        return rng.choice([None, True, [], {}])
    return rng.uniform(0, 700)


def random_body(rng: random.Random) -> bytes:
    row: dict[str, object] = {name: random_value(rng) for name in FEATURES}
    if rng.random() < 0.2:
        row.pop(rng.choice(FEATURES))
    if rng.random() < 0.2:
        row[random_token(rng, rng.randrange(1, 40))] = rng.random()
    if rng.random() < 0.1:
        return random_token(rng, rng.randrange(1, 200)).encode()
    return json.dumps({"records": [row]}).encode()


@dataclass(frozen=True)
class RandomRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None


def random_requests(rng: random.Random, count: int) -> list[RandomRequest]:
    """`count` requests; about half are POST /predict with random rows and random headers."""
    made = []
    for _ in range(count):
        if rng.random() < 0.5:
            method, path = "POST", "/predict"
        else:
            method = rng.choice(METHODS) if rng.random() < 0.7 else random_method(rng)
            path = rng.choice(PATHS) if rng.random() < 0.3 else random_path(rng)
        headers = {
            "User-Agent": random_token(rng, rng.randrange(1, 60)),
            "Content-Type": rng.choice(
                [
                    "application/json",
                    "text/plain",
                    "application/json; charset=latin-1",
                    f"{random_token(rng, 5)}/{random_token(rng, 8)}",
                ]
            ),
            "traceparent": random_traceparent(rng),
        }
        made.append(RandomRequest(method, path, headers, random_body(rng)))
    return made


def random_method(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_uppercase, k=rng.randrange(3, 12)))


def random_path(rng: random.Random) -> str:
    parts = [random_token(rng, rng.randrange(1, 16)) for _ in range(rng.randrange(1, 4))]
    if rng.random() < 0.3:
        parts.insert(0, rng.choice(PATHS).strip("/"))
    query = f"?{random_token(rng, 6)}={random_token(rng, 10)}" if rng.random() < 0.3 else ""
    return "/" + "/".join(parts) + query


def random_traceparent(rng: random.Random) -> str:
    """Malformed most of the time; a well-formed one with random ids otherwise."""
    return rng.choice(
        [
            random_token(rng, rng.randrange(0, 80)),
            f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-0{rng.randrange(2)}",
            f"ff-{rng.getrandbits(100):x}-zz-01",
            "00-" + "0" * 32 + "-" + "0" * 16 + "-01",
        ]
    )


def send_random_traffic(url: str, made: list[RandomRequest]) -> Counter[int]:
    """Send every request (SENDERS at a time); the count of each status answered."""
    local = threading.local()

    def send(request: RandomRequest) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        response = local.session.request(
            request.method,
            url + request.path,
            headers=request.headers,
            data=request.body,
            timeout=30,
            allow_redirects=False,
        )
        return response.status_code

    with ThreadPoolExecutor(SENDERS) as pool:
        return Counter(pool.map(send, made))


def normal_traffic(trained_model, url: str, reports: Path, env: dict[str, str]) -> None:
    """What a healthy deployment sees: predictions with feedback, drifted rows, client mistakes."""
    holdout = trained_model.holdout_path
    common = ("--rate=100", "--concurrency=8", "--loop")
    replay(holdout, url, reports / "normal.json", *common, "--count=300", "--batch-size=3", env=env)
    shifted = (*common, "--count=50", "--shift=RM=1.5", "--shift=LSTAT=0.1")
    replay(holdout, url, reports / "shifted.json", *shifted, env=env)
    mistakes = [{"records": 7}, {"records": [{"RM": "six"}]}, [{"CRIM": 1.0, "ROOMS": 2}]]
    for body in mistakes:
        assert requests.post(url + "/predict", json=body, timeout=10).status_code == 422


def exposition_series(url: str) -> int:
    """Sample lines of a Prometheus text exposition: one per series."""
    text = requests.get(url, timeout=10).text
    return sum(1 for line in text.splitlines() if line and not line.startswith("#"))


def assert_no_5xx(statuses: Counter[int]) -> None:
    assert not [code for code in statuses if code >= 500], statuses


@pytest.fixture(scope="module")
def random_traffic() -> list[RandomRequest]:
    return random_requests(random.Random(SEED), RANDOM_REQUESTS)


@pytest.fixture(scope="module")
def embedded_service(trained_model, tmp_path_factory) -> Iterator[ServerProcess]:
    """One worker serving its own /metrics: no OTLP variables at all."""
    log_path = tmp_path_factory.mktemp("cardinality-embedded") / "service.log"
    env = {"MLAPI_MODEL_PATH": str(trained_model.artifact_path)}
    with ServerProcess(log_path, env=env, workers=1) as process:
        yield process


def test_embedded_metrics_series_stay_under_the_ceiling(
    embedded_service: ServerProcess, trained_model, random_traffic, tmp_path: Path, record_property
) -> None:
    url = embedded_service.url
    normal_traffic(trained_model, url, tmp_path, env={})
    normal = exposition_series(url + "/metrics")
    statuses = send_random_traffic(url, random_traffic)
    after = exposition_series(url + "/metrics")
    record_property("embedded_series_normal", normal)
    record_property("embedded_series_after_random", after)
    record_property("random_statuses", dict(sorted(statuses.items())))
    assert_no_5xx(statuses)
    assert after - normal <= MAX_ADDED_EMBEDDED, (normal, after)
    assert after <= CEILING_EMBEDDED, after


def test_collector_path_series_stay_under_the_ceiling(
    stack: Stack, trained_model, random_traffic, tmp_path: Path, record_property
) -> None:
    job = f"mlapi-cardinality-{uuid.uuid4().hex[:8]}"
    series = f'count({{job="{job}", __name__!~".*:.*"}})'  # recording rules excluded
    with deploy(stack, trained_model.artifact_path, job, tmp_path / "service.log") as service:
        normal_traffic(trained_model, service.url, tmp_path, env=client_env(stack, "replay-card"))
        normal = stack.settled_total(series, SETTLE_S)
        statuses = send_random_traffic(service.url, random_traffic)
        after = stack.settled_total(series, SETTLE_S)
    record_property("collector_series_normal", normal)
    record_property("collector_series_after_random", after)
    assert_no_5xx(statuses)
    # Span names are labels of the span metrics: a raw request path in one is unbounded.
    calls = stack.prom_query(f'traces_span_metrics_calls_total{{job="{job}"}}')
    span_names = {one["metric"]["span_name"] for one in calls}
    unrouted = {name for name in span_names if " /" in name and name.split(" ")[1] not in PATHS}
    assert not unrouted, f"{len(unrouted)} span names carry a raw path, e.g. {sorted(unrouted)[:5]}"
    assert after - normal <= MAX_ADDED_COLLECTOR, (normal, after)
    assert after <= CEILING_COLLECTOR, after
