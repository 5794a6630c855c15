"""The real programs on loopback, for the test suites and the benchmarks alike.

- `stack`: the collector, Prometheus, Alertmanager and Jaeger from the pinned binaries, with the
  configs the repo ships; ports, processes, polling.
- `compose_stack`: the same queries against a running `docker compose up` (MLAPI_E2E_STACK=compose).
- `server`: the real `mlapi serve` (gunicorn) on a free port.
- `ports`: the loopback address every one of them listens on, and free ports there.

Not part of the wheel (pyproject.toml lists the shipped packages); importable from the repository
root, which pytest puts on its path.
"""
