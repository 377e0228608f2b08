-- wrk script for bench/webhook_bench.sh: POSTs AdmissionReview bodies round-robin to the URL's
-- path with Content-Type application/json over kept-alive connections, and prints one line
--   WRK_RESULT {"requests":...,"duration_us":...,"p50":...,...,"errors":{...}}
-- with latencies in microseconds (wrk's own histogram; a request's latency is from writing it
-- to reading the whole answer, on a connection already open and past its TLS handshake).
--
--   wrk -t2 -c32 -d10s -s bench/webhook_wrk.lua https://127.0.0.1:8443/validate-pods -- A.json B.json
--
-- Each thread starts at another body, so that with several threads the mix stays even.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local requests = {}
local next_request = 1

function init(args)
  local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
  for _, path in ipairs(args) do
    local file = assert(io.open(path, "rb"))
    local body = file:read("*a")
    file:close()
    table.insert(requests, wrk.format("POST", nil, headers, body))
  end
  assert(#requests > 0, "webhook_wrk.lua: give the bodies after --")
  next_request = (id % #requests) + 1
end

function request()
  local r = requests[next_request]
  next_request = next_request % #requests + 1
  return r
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"mean":%.1f,"min":%d,"max":%d,' ..
    '"p50":%d,"p90":%d,"p99":%d,"p999":%d,"errors":{"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration, summary.bytes, latency.mean, latency.min, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), e.connect, e.read, e.write, e.status, e.timeout))
end
