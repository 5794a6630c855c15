-- wrk script: POST the file named by BENCH_BODY as JSON, then print one JSON summary line
-- (non-2xx answers are not in the summary table; bench/wrk.py reads wrk's own line for them).
-- Run by bench/wrk.py; by hand (repository root):
--   BENCH_BODY=body.json wrk -t1 -c8 -d10s -s bench/wrk_post.lua http://127.0.0.1:8000/predict

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = assert(io.open(assert(os.getenv("BENCH_BODY"), "BENCH_BODY is not set"), "rb"))
wrk.body = file:read("*a")
file:close()

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_s": %.3f, "rps": %.2f, "p50_ms": %.3f, "p90_ms": %.3f, '
      .. '"p99_ms": %.3f, "max_ms": %.3f, "socket_errors": %d}\n',
    summary.requests, seconds, summary.requests / seconds, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3,
    errors.connect + errors.read + errors.write + errors.timeout))
end
