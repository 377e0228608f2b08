#!/usr/bin/python3
"""The helpers of bench/fleet_bench.sh; see that script's header for what is measured.

  fleet_bench.py nodes FROM TO NODES_JSON        create Nodes FROM..TO-1 (webhook_bench.py's
                                                  fleet), write the list of Nodes 0..TO-1
  fleet_bench.py farm NODES_JSON PORT PERIOD STATS_FILE WORKER WORKERS KIND=URL...
                                                  one worker process of the phased agent farm
                                                  (see PhasedFarm); WORKERS of them share PORT
  fleet_bench.py snap OUT [NAME=pid:PID | NAME=url:URL[@CA] | farm=URL]...
                                                  a snapshot: CPU ticks and memory of each
                                                  process, the text of each /metrics, the farm's
                                                  counters, the kernel's listen-queue counters
  fleet_bench.py idle OUT SECONDS OPERATOR_METRICS_URL ARGS...
                                                  a snapshot, SECONDS of waiting (sampling the
                                                  operator's round gauge every 0.25 s), another
                                                  snapshot: {"before", "after", "rounds"}
  fleet_bench.py result N DESIGN INTERVAL IDLE_JSON WRK_BEFORE WRK_AFTER WRK_OUT CHECK_RC EXTRA_JSON
                                                  the figures of one (N, design) as one JSON line
  fleet_bench.py row RESULT_JSON                  one line of progress for that result
  fleet_bench.py report RESULTS_JSONL             the summary tables

Reuses webhook_bench.py (the Nodes, their EndpointSlices, the bodies, wrk's figures).
"""
import asyncio, bisect, calendar, http.client, json, math, mmap, os, re, ssl, sys, threading, time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webhook_bench as wb  # noqa: E402

MIB = 1024.0


# ---------------------------------------------------------------------------------------------
# Nodes

def create_nodes(args):
    lo, hi, out = int(args[0]), int(args[1]), args[2]
    api = wb.Api()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    specs = [wb.node_spec(i) for i in range(hi)]

    def create(spec):
        obj = wb.node_object(spec, now)
        made = api.request("POST", "/api/v1/nodes", obj, ok=(409,))
        # As webhook_bench.py: the taints again (TaintNodesByCondition adds not-ready); the status
        # through its subresource only when the create did not keep it (a Node's create does).
        api.request("PATCH", "/api/v1/nodes/%s" % spec["name"],
                    {"spec": {"taints": spec["taints"] or None}},
                    ctype="application/merge-patch+json")
        if made is None or (made.get("status") or {}).get("allocatable") != obj["status"]["allocatable"]:
            api.request("PATCH", "/api/v1/nodes/%s/status" % spec["name"],
                        {"status": obj["status"]}, ctype="application/merge-patch+json")

    t0 = time.time()
    wb.parallel(create, specs[lo:hi], threads=24)
    took = time.time() - t0
    print("created Nodes %d..%d in %.1f s (%.0f/s)" % (lo, hi - 1, took, (hi - lo) / max(took, 1e-9)),
          flush=True)
    json.dump([{k: s[k] for k in ("name", "ip", "pool", "profile")} for s in specs], open(out, "w"))


# ---------------------------------------------------------------------------------------------
# The phased agent farm

# The shared counters: per worker SLOT doubles (its counters, then a histogram of how long after
# its sample each node was read, READ_LAG_BOUNDS in seconds), then per node the time of its last
# read and the gap between its last two (CLOCK_MONOTONIC seconds, shared by the workers).
POLLS, BYTES, REFUSED, LAG_TICKS, LAG_SUM, LAG_LATE, LAG_MAX = range(7)
READ_LAG_BOUNDS = [0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, float("inf")]
READ_LAG_AT = 8
SLOT = READ_LAG_AT + len(READ_LAG_BOUNDS)


class Shared:
    def __init__(self, path, nodes, workers):
        self.nodes, self.workers = nodes, workers
        size = 8 * (workers * SLOT + 2 * nodes)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
            self.map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.d = memoryview(self.map).cast("d")
        self.last_at = workers * SLOT
        self.gap_at = self.last_at + nodes

    def slot(self, worker):
        return worker * SLOT

    def stats(self, within):
        d, n = self.d, self.nodes
        total = [0.0] * SLOT
        lag_max = 0.0
        for w in range(self.workers):
            base = w * SLOT
            for k in range(SLOT):
                total[k] += d[base + k]
            lag_max = max(lag_max, d[base + LAG_MAX])
        now = time.monotonic()
        last = d[self.last_at:self.last_at + n]
        fresh = never = 0
        for t in last:
            if not t:
                never += 1
            elif now - t <= within:
                fresh += 1
        gaps = sorted(g for g in d[self.gap_at:self.gap_at + n] if g)
        return {"nodes": n, "fresh": fresh, "never": never, "polls": int(total[POLLS]),
                "read_lag": [int(v) for v in total[READ_LAG_AT:]],
                "bytes": int(total[BYTES]), "refused": int(total[REFUSED]),
                "lag_ticks": int(total[LAG_TICKS]), "lag_sum": total[LAG_SUM],
                "lag_late": int(total[LAG_LATE]), "lag_max": lag_max,
                "gap_median": gaps[len(gaps) // 2] if gaps else None,
                "gap_p99": gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))] if gaps else None,
                "gap_max": gaps[-1] if gaps else None}


TARGETS = wb.TARGETS
MARKERS = {
    "node": re.compile(rb'"node":"[^"]*"'),
    "interval": re.compile(rb'"intervalSeconds":[0-9.eE+-]+'),
    "timestamp": re.compile(rb'"timestamp":"[^"]*"'),
}


def parse_time(text):
    """ISO 8601 UTC with optional fractional seconds ('2026-12-06T11:39:30.464Z') to epoch ms."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", text)
    if not m:
        raise ValueError("timestamp %r" % text)
    whole = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = (m.group(2) or "0")[:3].ljust(3, "0")
    return int(whole) * 1000 + int(frac)


class PhasedFarm:
    """A stand-in for one pi0-agent per Node whose agents sample at phases of their own.

    As webhook_bench.py's AgentFarm, node i's agent is the loopback address node_ip(i) on PORT,
    answering GET /fingerprint (and ?detail=resources: TARGETS) with the body of the real pi0-agent
    of its profile (light, heavy, gpu) for that target under node i's name, one connection per
    answer. Unlike it, the node's agent
    samples every PERIOD seconds at a phase of its own (phase_i = frac(i x 0.618...) x PERIOD,
    in whole milliseconds), as a fleet of agents started at different times does: at time t its
    last sample was taken at s_i = the latest phase_i + k x PERIOD <= t. It answers the real
    agent's fingerprint taken at or before s_i (the farm reads the three real agents, which
    sample every 100 ms, every 50 ms and keeps the last 4 PERIODs of them), with "timestamp" set
    to s_i and "intervalSeconds" to PERIOD. So a poller that follows the agents' samples sees
    each node sample once per PERIOD at its own phase, and the age of a decision's data (the
    webhook's pi0_webhook_decision_data_age_seconds, from the fingerprint's timestamp) is the
    age since s_i; the signals' values themselves are the real agent's at most about 150 ms
    before s_i (its 100 ms interval plus this farm's 50 ms reads).

    WORKERS processes serve the same port (SO_REUSEPORT) and count into one shared file
    (Shared): polls, bytes answered, requests refused, each node's last poll and the gap
    between its last two, and how late each worker's event loop ran (a tick every 50 ms). GET
    /farm-stats?within=S on 127.0.0.1 answers those counters summed over the workers.
    """

    def __init__(self, nodes, agents, period_s, shared, worker):
        self.by_ip = {n["ip"]: (i, n["name"].encode(), n["profile"]) for i, n in enumerate(nodes)}
        self.period_ms = max(1, int(round(period_s * 1000)))
        golden = (math.sqrt(5) - 1) / 2
        self.phase = [int((i * golden) % 1.0 * self.period_ms) for i in range(len(nodes))]
        self.agents = agents
        # (profile, target) -> (real sample ms, parts)
        self.ring = {(p, t): ([], []) for p in agents for t in TARGETS}
        self.keep_ms = 4 * self.period_ms + 2000
        self.interval_bytes = b'"intervalSeconds":' + repr(float(period_s)).encode()
        self.shared, self.base = shared, shared.slot(worker)
        self.ts_cache = {}
        self.conns = {}

    def fetch(self, profile, target):
        conn = self.conns.get(profile)
        if conn is None:
            u = urllib.parse.urlsplit(self.agents[profile])
            conn = self.conns[profile] = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        try:
            conn.request("GET", target.decode())
            r = conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self.conns.pop(profile, None)
            raise
        if r.status != 200:
            raise RuntimeError("the %s agent answered HTTP %d" % (profile, r.status))
        return body

    def refresh(self):
        for profile, target in self.ring:
            body = self.fetch(profile, target)
            found = []
            for what, rx in MARKERS.items():
                ms = list(rx.finditer(body))
                if len(ms) != 1:
                    raise RuntimeError("%d %s fields in the %s fingerprint" % (len(ms), what,
                                                                               profile))
                found.append((ms[0].start(), ms[0].end(), what, ms[0].group()))
            found.sort()
            if b'"ready":true' not in body:
                raise RuntimeError("the %s agent is not ready yet" % profile)
            ts = parse_time(dict((w, g) for _, _, w, g in found)["timestamp"]
                            .split(b'"')[3].decode())
            stamps, parts = self.ring[profile, target]
            if stamps and stamps[-1] >= ts:
                continue  # no new sample
            segments, at = [], 0
            for start, end, what, _ in found:
                segments.append(body[at:start])
                segments.append(what)
                at = end
            segments.append(body[at:])
            stamps.append(ts)
            parts.append(segments)
            while len(stamps) > 2 and stamps[0] < ts - self.keep_ms:
                del stamps[0], parts[0]

    def refresher(self):
        while True:
            time.sleep(0.05)
            try:
                self.refresh()
            except (OSError, ValueError, RuntimeError, http.client.HTTPException) as e:
                print("farm: refresh failed: %s" % e, file=sys.stderr, flush=True)

    def timestamp(self, ms):
        b = self.ts_cache.get(ms)
        if b is None:
            if len(self.ts_cache) > 20000:
                self.ts_cache.clear()
            b = self.ts_cache[ms] = (b'"timestamp":"' + time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)).encode() + b".%03dZ\"" % (ms % 1000))
        return b

    def fingerprint(self, i, name, profile, target):
        now_ms = int(time.time() * 1000)
        p, ph = self.period_ms, self.phase[i]
        sampled = (now_ms - ph) // p * p + ph
        stamps, parts = self.ring[profile, target]
        k = max(0, bisect.bisect_right(stamps, sampled) - 1)
        fill = {"node": b'"node":"' + name + b'"', "interval": self.interval_bytes,
                "timestamp": self.timestamp(sampled)}
        return (b"".join(fill[s] if isinstance(s, str) else s for s in parts[k]),
                (now_ms - sampled) / 1000.0)

    def answer(self, ip, target):
        d, base = self.shared.d, self.base
        if target.startswith(b"/farm-stats"):
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(target.decode()).query)
            return 200, json.dumps(self.shared.stats(float(q.get("within", ["3"])[0]))).encode()
        node = self.by_ip.get(ip)
        if node is None or target not in TARGETS:
            d[base + REFUSED] += 1
            return 404, b"not an agent address\n"
        i, name, profile = node
        body, lag = self.fingerprint(i, name, profile, target)
        d[base + READ_LAG_AT + bisect.bisect_left(READ_LAG_BOUNDS, lag)] += 1
        now = time.monotonic()
        last = self.shared.last_at + i
        if d[last]:
            d[self.shared.gap_at + i] = now - d[last]
        d[last] = now
        d[base + POLLS] += 1
        d[base + BYTES] += len(body)
        return 200, body

    async def ticker(self):
        d, base = self.shared.d, self.base
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(0.05)
            lag = loop.time() - t - 0.05
            d[base + LAG_TICKS] += 1
            d[base + LAG_SUM] += lag
            if lag > 0.1:
                d[base + LAG_LATE] += 1
            if lag > d[base + LAG_MAX]:
                d[base + LAG_MAX] = lag

    def serve(self, port):
        deadline = time.monotonic() + 30
        while True:
            try:
                self.refresh()
                break
            except (OSError, ValueError, RuntimeError, http.client.HTTPException) as e:
                if time.monotonic() > deadline:
                    raise
                print("farm: waiting for the agents: %s" % e, file=sys.stderr, flush=True)
                time.sleep(0.5)
        threading.Thread(target=self.refresher, daemon=True).start()
        farm = self

        class Conn(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport, self.buf = transport, b""

            def data_received(self, data):
                self.buf += data
                if b"\r\n\r\n" not in self.buf:
                    if len(self.buf) > 16384:
                        self.transport.close()
                    return
                parts = self.buf.split(b"\r\n", 1)[0].split(b" ")
                ip = self.transport.get_extra_info("sockname")[0]
                status, body = farm.answer(ip, parts[1] if len(parts) == 3 else b"")
                self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                                     b"Connection: close\r\n\r\n%s" % (
                                         status, b"OK" if status == 200 else b"Not Found",
                                         b"application/json" if status == 200 else b"text/plain",
                                         len(body), body))
                self.transport.close()

        async def main():
            server = await asyncio.get_running_loop().create_server(
                Conn, host="0.0.0.0", port=port, backlog=4096, reuse_address=True,
                reuse_port=True)
            asyncio.get_running_loop().create_task(self.ticker())
            print("farm: serving %d agents on port %d, sampling every %d ms" % (
                len(self.phase), port, self.period_ms), flush=True)
            async with server:
                await server.serve_forever()

        asyncio.run(main())


def farm(args):
    nodes, port, period = json.load(open(args[0])), int(args[1]), float(args[2])
    stats_file, worker, workers = args[3], int(args[4]), int(args[5])
    agents = dict(a.split("=", 1) for a in args[6:])
    shared = Shared(stats_file, len(nodes), workers)
    PhasedFarm(nodes, agents, period, shared, worker).serve(port)


# ---------------------------------------------------------------------------------------------
# Snapshots

def proc_figures(pid):
    """utime+stime (ticks), VmRSS and VmHWM (KiB) of PID, or None when it is gone."""
    try:
        stat = open("/proc/%d/stat" % pid).read()
        status = open("/proc/%d/status" % pid).read()
    except OSError:
        return None
    fields = stat.rsplit(") ", 1)[1].split()
    vm = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M))
    return {"ticks": int(fields[11]) + int(fields[12]), "rss": int(vm.get("VmRSS", 0)),
            "hwm": int(vm.get("VmHWM", 0))}


def fetch(url, ca=None, timeout=10):
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout,
                                           context=ssl.create_default_context(cafile=ca))
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path + ("?" + u.query if u.query else ""))
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError("GET %s: HTTP %d" % (url, r.status))
        return body.decode()
    finally:
        conn.close()


def netstat():
    """The kernel's TcpExt ListenOverflows and ListenDrops (connections a full accept queue
    refused), machine-wide."""
    lines = [l.split() for l in open("/proc/net/netstat") if l.startswith("TcpExt:")]
    if len(lines) < 2:
        return {}
    row = dict(zip(lines[0][1:], lines[1][1:]))
    return {k: int(row.get(k, 0)) for k in ("ListenOverflows", "ListenDrops")}


def snapshot(specs):
    """specs: NAME=pid:PID[,PID...] | NAME=url:URL[@CA] | NAME=stats:URL."""
    out = {"t": time.time(), "mono": time.monotonic(), "procs": {}, "metrics": {}, "farm": None,
           "netstat": netstat(), "errors": [],
           "load1": float(open("/proc/loadavg").read().split()[0])}
    for spec in specs:
        name, what = spec.split("=", 1)
        kind, arg = what.split(":", 1)
        try:
            if kind == "pid":
                figs = [proc_figures(int(p)) for p in arg.split(",")]
                alive = [f for f in figs if f]
                out["procs"][name] = {
                    "alive": len(alive) == len(figs), "ticks": sum(f["ticks"] for f in alive),
                    "rss": sum(f["rss"] for f in alive), "hwm": sum(f["hwm"] for f in alive)}
            elif kind == "url":
                url, _, ca = arg.partition("@")
                out["metrics"][name] = fetch(url, ca or None)
            elif kind == "stats":
                out["farm"] = json.loads(fetch(arg))
            else:
                raise ValueError("unknown kind %r" % kind)
        except (OSError, ValueError, RuntimeError, http.client.HTTPException) as e:
            out["errors"].append("%s: %s" % (name, e))
    return out


def snap(args):
    json.dump(snapshot(args[1:]), open(args[0], "w"))


SERIES = re.compile(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?) (\S+)$")


def series(text):
    """{'name{labels}': value} of a Prometheus text exposition."""
    out = {}
    for line in (text or "").splitlines():
        m = SERIES.match(line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def idle(args):
    """A snapshot, SECONDS of waiting while the operator's round gauge is read every 0.25 s,
    another snapshot."""
    out, seconds, op_url, specs = args[0], float(args[1]), args[2], args[3:]
    before = snapshot(specs)
    rounds, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            v = series(fetch(op_url, timeout=2)).get("pi0_operator_fleet_poll_round_seconds")
            if v is not None:
                rounds.append(v)
        except (OSError, RuntimeError, http.client.HTTPException):
            pass
        time.sleep(max(0.0, min(0.25, end - time.monotonic())))
    after = snapshot(specs)
    json.dump({"before": before, "after": after, "rounds": rounds}, open(out, "w"))


# ---------------------------------------------------------------------------------------------
# The figures of one (N, design)

def quantile_of(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))] if v else None


def window(before, after):
    """Helpers over two snapshots: counter rates and CPU shares."""
    dt = after["mono"] - before["mono"]
    tck = os.sysconf("SC_CLK_TCK")
    mb = {k: series(v) for k, v in before["metrics"].items()}
    ma = {k: series(v) for k, v in after["metrics"].items()}

    def rate(who, name):
        if who not in ma or who not in mb:
            return None
        return (ma[who].get(name, 0.0) - mb[who].get(name, 0.0)) / dt

    def rates(who, prefix):
        """{label value: per second} of every series NAME{label="value"}."""
        if who not in ma:
            return {}
        out = {}
        for k, v in ma[who].items():
            m = re.fullmatch(re.escape(prefix) + r'\{\w+="([^"]*)"\}', k)
            if m:
                out[m.group(1)] = (v - mb.get(who, {}).get(k, 0.0)) / dt
        return out

    def cpu(who):
        a, b = after["procs"].get(who), before["procs"].get(who)
        if not a or not b:
            return None
        return (a["ticks"] - b["ticks"]) / tck / dt

    def gauge(who, name):
        return ma.get(who, {}).get(name)

    return dt, rate, rates, cpu, gauge


def result(args):
    n, design, interval = int(args[0]), args[1], float(args[2])
    idle_w = json.load(open(args[3]))
    wb0, wb1 = json.load(open(args[4])), json.load(open(args[5]))
    wrk_out, check_rc, extra = args[6], int(args[7]), json.loads(args[8])
    r = {"nodes": n, "design": design, "interval": interval, "check_ok": check_rc == 0}
    r.update(extra)
    b, a = idle_w["before"], idle_w["after"]
    dt, rate, rates, cpu, gauge = window(b, a)
    r["window_s"] = dt
    r["errors"] = b["errors"] + a["errors"] + wb0["errors"] + wb1["errors"]
    r["alive"] = {k: v["alive"] for k, v in a["procs"].items()}
    # The farm: every agent's answers, whoever asked.
    fb, fa = b["farm"] or {}, a["farm"] or {}
    if fa and fb:
        polls = (fa["polls"] - fb["polls"]) / dt
        r["farm"] = {
            "requests_per_s": polls, "bytes_per_s": (fa["bytes"] - fb["bytes"]) / dt,
            "bytes_per_request": (fa["bytes"] - fb["bytes"]) / max(1, fa["polls"] - fb["polls"]),
            "refused": fa["refused"] - fb["refused"],
            "lag_mean_ms": 1000 * (fa["lag_sum"] - fb["lag_sum"]) /
                           max(1, fa["lag_ticks"] - fb["lag_ticks"]),
            "late_ticks": fa["lag_late"] - fb["lag_late"],
            "lag_ticks": fa["lag_ticks"] - fb["lag_ticks"],
            "fresh": fa["fresh"], "never": fa["never"], "gap_median": fa["gap_median"],
            "gap_p99": fa["gap_p99"], "gap_max": fa["gap_max"], "cpu": cpu("farm"),
            "read_lag": read_lag(fb, fa)}
    nb, na = b.get("netstat", {}), a.get("netstat", {})
    r["listen_overflows"] = na.get("ListenOverflows", 0) - nb.get("ListenOverflows", 0)
    r["listen_drops"] = na.get("ListenDrops", 0) - nb.get("ListenDrops", 0)
    # Each consumer's own polls of the agents.
    r["consumers"] = {}
    for who, prefix in (("operator", "pi0_operator"), ("standby", "pi0_operator"),
                        ("webhook", "pi0_webhook")):
        if who not in a["procs"]:
            continue
        c = {"cpu": cpu(who), "rss_kib": a["procs"][who]["rss"], "hwm_kib": a["procs"][who]["hwm"],
             "polls_per_s": rates(who, prefix + "_fleet_polls_total"),
             "source_feed": gauge(who, prefix + '_fleet_source{source="feed"}'),
             "source_agents": gauge(who, prefix + '_fleet_source{source="agents"}'),
             "feed_bytes_per_s": rate(who, prefix + "_fleet_feed_bytes_total"),
             "feed_pages_per_s": rates(who, prefix + "_fleet_feed_pages_total"),
             "feed_errors_per_s": rate(who, prefix + "_fleet_feed_errors_total"),
             "round_gauge": gauge(who, prefix + "_fleet_poll_round_seconds")}
        if who == "webhook":
            c["nodes"] = {k: gauge(who, 'pi0_webhook_fleet_nodes{state="%s"}' % k) for k in
                          ("usable", "stale", "failed", "unknown")}
            c["nodes"] = {k: v for k, v in c["nodes"].items() if v is not None}
            for k, v in series(a["metrics"].get("webhook")).items():
                m = re.fullmatch(r'pi0_webhook_fleet_nodes\{state="(\w+)"\}', k)
                if m:
                    c["nodes"][m.group(1)] = v
        else:
            c["feed_answers_per_s"] = rates(who, "pi0_operator_fleet_feed_answers_total")
            c["feed_sent_bytes_per_s"] = rate(who, "pi0_operator_fleet_feed_sent_bytes_total")
        r["consumers"][who] = c
    r["load1_at"] = {"idle": b.get("load1"), "wrk": wb0.get("load1")}
    rounds = idle_w["rounds"]
    r["round_s"] = {"samples": len(rounds), "median": quantile_of(rounds, 0.5),
                    "p90": quantile_of(rounds, 0.9), "max": max(rounds) if rounds else None}
    # The reviews: wrk, the webhook's CPU over the run, the age of the decisions' data.
    w = wb.read_wrk(wrk_out)
    dt2, rate2, rates2, cpu2, gauge2 = window(wb0, wb1)
    r["wrk"] = {"rps": w["rps"], "p50_ms": w["p50"] / 1000, "p99_ms": w["p99"] / 1000,
                "non2xx": w["errors"]["status"], "socket_errors": w["socket_errors"],
                "requests": w["requests"], "webhook_cpu": cpu2("webhook"),
                "operator_cpu": cpu2("operator"), "farm_cpu": cpu2("farm"),
                "polls_per_s": {"operator": rates2("operator", "pi0_operator_fleet_polls_total"),
                                "webhook": rates2("webhook", "pi0_webhook_fleet_polls_total")}}
    usable = lambda s: series(s["metrics"].get("webhook")).get('pi0_webhook_fleet_nodes{state="usable"}')
    r["usable_before_wrk"], r["usable_after_wrk"] = usable(wb0), usable(wb1)
    r["usable_idle"] = usable(a)
    name = "pi0_webhook_decision_data_age_seconds"
    age = wb.summarize(wb.delta(wb.histogram(wb1["metrics"].get("webhook", ""), name, {}),
                                wb.histogram(wb0["metrics"].get("webhook", ""), name, {})))
    r["age"] = {k: age[k] for k in ("p50", "p99", "p50_bucket", "p99_bucket", "buckets")}
    s0, s1 = series(wb0["metrics"].get("webhook")), series(wb1["metrics"].get("webhook"))
    count = s1.get(name + "_count", 0.0) - s0.get(name + "_count", 0.0)
    r["age"]["count"] = count
    r["age"]["mean"] = (s1.get(name + "_sum", 0.0) - s0.get(name + "_sum", 0.0)) / count if count else None
    r["wrk"]["read_lag"] = read_lag(wb0["farm"] or {}, wb1["farm"] or {})
    stale = 0.0
    for k, v in series(wb1["metrics"].get("webhook")).items():
        if k.startswith("pi0_webhook_decisions_total") and 'reason="StaleData"' in k:
            stale += v - series(wb0["metrics"].get("webhook")).get(k, 0.0)
    r["stale_decisions"] = stale
    p = wb1["procs"].get("webhook") or {}
    r["webhook_after_wrk"] = {"rss_kib": p.get("rss"), "hwm_kib": p.get("hwm")}
    print(json.dumps(r))


def read_lag(before, after):
    """How long after its sample the farm's nodes were read, between two of its stats: p50 and
    p99 interpolated within READ_LAG_BOUNDS, and the count."""
    if not before.get("read_lag") or not after.get("read_lag"):
        return None
    counts = [a - b for a, b in zip(after["read_lag"], before["read_lag"])]
    cumulative, total = {}, 0
    for bound, c in zip(READ_LAG_BOUNDS, counts):
        total += c
        cumulative[bound] = total
    out = wb.summarize((cumulative, 0.0, total))
    return {"count": total, "p50": out["p50"], "p99": out["p99"], "p99_bucket": out["p99_bucket"]}


def notes_of(r):
    """What says that the machine, the farm or a program did not keep up, in words."""
    at = "%d Nodes every %gs, %s" % (r["nodes"], r["interval"], r["design"])
    notes = []
    usable = [r.get(k) for k in ("usable_idle", "usable_before_wrk", "usable_after_wrk")]
    if any(u is not None and u < r["nodes"] for u in usable):
        notes.append("%s: not every Node usable in the webhook's view: %s after the idle window, "
                     "%s before wrk, %s after, of %d" % (
                         at, *(num(u, "%d") for u in usable), r["nodes"]))
    f = r.get("farm") or {}
    if f.get("late_ticks", 0) >= max(2, 0.01 * f.get("lag_ticks", 0)):
        notes.append("%s: the farm's event loops ran over 100 ms late %d times in %d ticks (mean "
                     "lateness %.1f ms): the farm is short of CPU" % (
                         at, f["late_ticks"], f["lag_ticks"], f["lag_mean_ms"]))
    if r["listen_overflows"] or r["listen_drops"]:
        notes.append("%s: the kernel refused %d connections (listen queue overflows; drops %d)" % (
            at, r["listen_overflows"], r["listen_drops"]))
    for who, c in r["consumers"].items():
        p = c["polls_per_s"]
        bad = p.get("error", 0) + p.get("timeout", 0)
        if bad > 0:
            notes.append("%s: the %s's polls failed: %.1f/s errors, %.1f/s timeouts (of %.0f/s)" % (
                at, who, p.get("error", 0), p.get("timeout", 0), polls_of(c)))
        if c.get("feed_errors_per_s"):
            notes.append("%s: the %s's feed requests failed %.2f/s" % (at, who,
                                                                       c["feed_errors_per_s"]))
        if r["design"] == "feed" and who != "operator" and c.get("source_feed") != 1:
            notes.append("%s: the %s does not read the feed at the end of the idle window" % (at, who))
    need = r["nodes"] / r["interval"]
    for who in ("operator", "webhook"):
        c = r["consumers"].get(who)
        if c and c.get("source_agents") == 1 and polls_of(c) < 0.9 * need:
            notes.append("%s: the %s read %.0f agents/s; one read per Node per interval is %.0f/s" %
                         (at, who, polls_of(c), need))
    if r["round_s"]["median"] and r["round_s"]["median"] > r["interval"] / 4:
        notes.append("%s: the operator's poll rounds took %.2f s (median), longer than the quarter "
                     "interval between them: it read the due agents more slowly than they became "
                     "due" % (at, r["round_s"]["median"]))
    for who, alive in r["alive"].items():
        if not alive:
            notes.append("%s: the %s exited" % (at, who))
    if r["stale_decisions"]:
        notes.append("%s: %d decisions during wrk found no fresh data (StaleData)" % (
            at, r["stale_decisions"]))
    if not r["check_ok"]:
        notes.append("%s: a body did not get its expected answer (see the log above)" % at)
    if r["wrk"]["non2xx"] or r["wrk"]["socket_errors"]:
        notes.append("%s: wrk saw %d non-2xx answers and %d socket errors" % (
            at, r["wrk"]["non2xx"], r["wrk"]["socket_errors"]))
    return notes


def row(args):
    r = json.loads(open(args[0]).read().splitlines()[-1])
    f, wh, op = r.get("farm") or {}, r["consumers"].get("webhook", {}), r["consumers"]["operator"]
    print("%s, %d nodes: agents %.0f req/s, %.2f MB/s; operator %.0f %% of a core; webhook idle "
          "%.0f %% (feed %.0f kB/s), RSS %.1f MiB; %.0f reviews/s; data age p50 %s p99 %s s; "
          "usable %s/%s/%s of %d" % (
              r["design"], r["nodes"], f.get("requests_per_s", 0), f.get("bytes_per_s", 0) / 1e6,
              100 * (op["cpu"] or 0), 100 * (wh.get("cpu") or 0),
              (wh.get("feed_bytes_per_s") or 0) / 1e3, (wh.get("hwm_kib") or 0) / MIB,
              r["wrk"]["rps"], fmt(r["age"]["p50"], "%.2f"), fmt(r["age"]["p99"], "%.2f"),
              fmt(r["usable_idle"], "%d"), fmt(r["usable_before_wrk"], "%d"),
              fmt(r["usable_after_wrk"], "%d"), r["nodes"]), flush=True)


def fmt(v, f):
    return "n/a" if v is None else f % v


# ---------------------------------------------------------------------------------------------
# The summary

def polls_of(c):
    """A consumer's polls of the agents per second, whatever their result."""
    p = (c or {}).get("polls_per_s") or {}
    return sum(v for k, v in p.items() if k != "skipped_open")


def figures(r):
    """The figures of the summary table, by name (None where not measured)."""
    f, c = r.get("farm") or {}, r["consumers"]
    op, wh, sb = c.get("operator", {}), c.get("webhook", {}), c.get("standby")
    return {
        "agent_rps": f.get("requests_per_s"), "agent_mbps": (f.get("bytes_per_s") or 0) / 1e6,
        "op_cpu": op.get("cpu"), "op_rss": (op.get("rss_kib") or 0) / MIB,
        "round_med": r["round_s"]["median"], "round_max": r["round_s"]["max"],
        "gap_p99": f.get("gap_p99"),
        "wh_cpu": wh.get("cpu"), "wh_hwm": (r["webhook_after_wrk"]["hwm_kib"] or 0) / MIB,
        "wh_rss": (r["webhook_after_wrk"]["rss_kib"] or 0) / MIB,
        "feed_kbps": (wh.get("feed_bytes_per_s") or 0) / 1e3,
        "age_p50": r["age"]["p50"], "age_p99": r["age"]["p99"], "rps": r["wrk"]["rps"],
        "sb_cpu": sb.get("cpu") if sb else None,
    }


def report(args):
    runs = [json.loads(l) for l in open(args[0]) if l.strip()]
    if not runs:
        sys.exit("no results in %s" % args[0])
    first = runs[0]
    iv = lambda s: ("%gs" % s) if s >= 1 else ("%gms" % (s * 1000))
    pct = lambda v: "n/a" if v is None else "%.1f%%" % (100 * v)
    print()
    print("=== issue 17, the fleet view read once per cluster: design poll against design feed ===")
    print("%d CPUs, shared by the control plane, the agent farm, wrk and the programs measured "
          "(load1 %.2f at the start); a figure's window is %.0f s idle (no reviews), then wrk "
          "-c%d for %.0f s" % (first["cpus"], first["load1"], first["window_s"],
                               first["connections"], first["wrk_seconds"]))
    print("agents: the phased farm (fleet_bench.py PhasedFarm, %d Python worker processes) stands "
          "in for one pi0-agent per Node; each node samples once per poll interval at its own "
          "phase" % first["farm_workers"])
    print("poll: pi0-operator (leader) and pi0-webhook each poll every agent themselves (no "
          "--fleet-* flags); feed: the operator leader alone polls and serves GET /fleet, the "
          "webhook%s reads it every interval/8" % (
              " and a standby pi0-operator" if any("standby" in r["consumers"] for r in runs)
              else ""))
    for r in runs:
        detail(r)

    print()
    print("=== summary ===")
    cols = [("nodes", "%6d", lambda r, f: r["nodes"]),
            ("every", "%5s", lambda r, f: iv(r["interval"])),
            ("design", "%6s", lambda r, f: r["design"]),
            ("agent req/s", "%11s", lambda r, f: num(f["agent_rps"], "%.0f")),
            ("agent MB/s", "%10s", lambda r, f: num(f["agent_mbps"], "%.2f")),
            ("op CPU", "%6s", lambda r, f: pct(f["op_cpu"])),
            ("op RSS", "%6s", lambda r, f: num(f["op_rss"], "%.0fM")),
            ("round s med/max", "%15s", lambda r, f: "%s/%s" % (num(f["round_med"], "%.2f"),
                                                                 num(f["round_max"], "%.2f"))),
            ("wh CPU", "%6s", lambda r, f: pct(f["wh_cpu"])),
            ("wh HWM/RSS MiB", "%14s", lambda r, f: "%.1f/%.1f" % (f["wh_hwm"], f["wh_rss"])),
            ("feed kB/s", "%9s", lambda r, f: num(f["feed_kbps"], "%.1f") if r["design"] == "feed"
             else "-"),
            ("age s p50/p99", "%13s", lambda r, f: "%s/%s" % (num(f["age_p50"], "%.2f"),
                                                              num(f["age_p99"], "%.2f"))),
            ("reviews/s", "%9s", lambda r, f: num(f["rps"], "%.0f")),
            ("usable bef/aft", "%14s", lambda r, f: "%s/%s" % (num(r["usable_before_wrk"], "%d"),
                                                               num(r["usable_after_wrk"], "%d")))]
    print("  ".join(h.rjust(int(re.sub(r"\D", "", w))) for h, w, _ in cols))
    for r in runs:
        f = figures(r)
        print("  ".join(w % g(r, f) for _, w, g in cols))
    print("agent req/s, MB/s: every /fingerprint the farm answered, idle window; op: the operator "
          "leader, CPU as a share of one core (utime+stime), VmRSS; round: "
          "pi0_operator_fleet_poll_round_seconds read every 0.25 s (a round every quarter "
          "interval reads the agents due); wh: the webhook, CPU idle (no reviews); HWM/RSS after "
          "wrk; feed: the feed's bodies to that webhook; age: pi0_webhook_decision_data_age_"
          "seconds during wrk (interpolated in its buckets); usable: pi0_webhook_fleet_nodes"
          "{state=\"usable\"} before and after wrk")

    # feed / poll, per (N, interval)
    pairs = {}
    for r in runs:
        pairs.setdefault((r["nodes"], r["interval"]), {})[r["design"]] = figures(r)
    print()
    print("=== feed / poll (the same N and interval) ===")
    keys = [("agent_rps", "agent requests/s"), ("agent_mbps", "agent bytes/s"),
            ("op_cpu", "operator CPU"), ("op_rss", "operator RSS"), ("wh_cpu", "webhook CPU idle"),
            ("wh_hwm", "webhook VmHWM"), ("wh_rss", "webhook VmRSS"),
            ("age_p50", "data age p50"), ("age_p99", "data age p99"), ("rps", "reviews/s")]
    print("%-22s" % "" + "".join("%16s" % ("%d @ %s" % (n, iv(i))) for n, i in pairs))
    for k, label in keys:
        cells = []
        for p in pairs.values():
            a, b = (p.get("feed") or {}).get(k), (p.get("poll") or {}).get(k)
            cells.append("%16s" % (ratio(a, b)))
        print("%-22s" % label + "".join(cells))

    # growth from the smallest N to the largest, per design and interval
    print()
    print("=== growth from the smallest to the largest N (the same design and interval) ===")
    by = {}
    for r in runs:
        by.setdefault((r["design"], r["interval"]), []).append(r)
    grown = False
    for (design, interval), rs in by.items():
        rs = sorted(rs, key=lambda r: r["nodes"])
        if len(rs) < 2 or rs[0]["nodes"] == rs[-1]["nodes"]:
            continue
        grown = True
        lo, hi = figures(rs[0]), figures(rs[-1])
        print("%s every %s, %d -> %d Nodes (x%.1f): %s" % (
            design, iv(interval), rs[0]["nodes"], rs[-1]["nodes"], rs[-1]["nodes"] / rs[0]["nodes"],
            ", ".join("%s x%s" % (label, ratio(hi[k], lo[k])) for k, label in keys)))
    if not grown:
        print("(one N per design and interval: nothing to compare)")
    intervals = sorted({r["interval"] for r in runs})
    if len(intervals) > 1:
        print("(runs at other intervals are compared only with runs at the same interval)")

    # the chart's shape
    print()
    print("=== cluster-wide, multiplied out for the chart's default shape: 3 pi0-webhook + 2 "
          "pi0-operator ===")
    print("(each consumer's rate as measured here, where it may have read fewer agents than one "
          "per Node per interval; in brackets what that would be)")
    for r in runs:
        c, f = r["consumers"], r.get("farm") or {}
        per = f.get("bytes_per_request") or 0
        op, wh, sb = polls_of(c.get("operator")), polls_of(c.get("webhook")), c.get("standby")
        head = "%d Nodes every %s, %s:" % (r["nodes"], iv(r["interval"]), r["design"])
        need = r["nodes"] / r["interval"]
        consumers = 5 if r["design"] == "poll" else 1
        demand = " [one read per Node per interval would be %d x %.0f = %.0f req/s, %.2f MB/s]" % (
            consumers, need, consumers * need, consumers * need * per / 1e6)
        if r["design"] == "poll":
            total = 3 * wh + 2 * op
            print("%s agent req/s = 3 x webhook %.0f + 2 x operator %.0f (the standby polls as "
                  "the leader does) = %.0f; bytes/s = that x %.0f B = %.2f MB/s (measured here, "
                  "1 + 1: %.0f req/s, %.2f MB/s)%s" % (
                      head, wh, op, total, per, total * per / 1e6, f.get("requests_per_s", 0),
                      f.get("bytes_per_s", 0) / 1e6, demand))
        else:
            sbp = polls_of(sb) if sb else 0.0
            fw = c.get("webhook", {}).get("feed_bytes_per_s") or 0
            fs = (sb or {}).get("feed_bytes_per_s")
            fs_used = fs if fs is not None else fw
            total = op + 3 * wh + 1 * sbp
            print("%s agent req/s = leader %.0f + 3 x webhook %.0f + 1 x standby %.0f (their "
                  "fallback polls) = %.0f; bytes/s = that x %.0f B = %.2f MB/s; feed bytes/s = "
                  "3 x webhook %.1f kB/s + 1 x standby %.1f kB/s%s = %.1f kB/s (measured here: "
                  "%.0f req/s, %.2f MB/s)%s" % (
                      head, op, wh, sbp, total, per, total * per / 1e6, fw / 1e3, fs_used / 1e3,
                      "" if fs is not None else " (not run: the webhook's figure)",
                      (3 * fw + fs_used) / 1e3, f.get("requests_per_s", 0),
                      f.get("bytes_per_s", 0) / 1e6, demand))

    # the goals
    print()
    print("=== the goals of issue 17 beside the figures (figures only: nothing here passes or "
          "fails) ===")
    for r in runs:
        f = figures(r)
        print("%d Nodes every %s, %s:" % (r["nodes"], iv(r["interval"]), r["design"]))
        print("  fleet round: every agent read within %s s (the farm's p99 gap between two reads "
              "of a node%s), rounds %s s median, %s s max; operator CPU %s  [goal at 5,000 Nodes: "
              "within 1 s, at most 25%% of a core]" % (
                  num(f["gap_p99"], "%.2f"), ", any consumer" if r["design"] == "poll" else "",
                  num(f["round_med"], "%.3f"), num(f["round_max"], "%.3f"), pct(f["op_cpu"])))
        print("  freshness: data age p99 %s s, p50 %s s  [goal: p99 within two sampling intervals, "
              "%g s]" % (num(f["age_p99"], "%.2f"), num(f["age_p50"], "%.2f"), 2 * r["interval"]))
        print("  webhook memory: VmHWM %.1f MiB, VmRSS %.1f MiB  [goal: under 64 MiB]" % (
            f["wh_hwm"], f["wh_rss"]))
        print("  reviews: %.0f/s with %s of %d Nodes usable before and %s after  [goal: at least "
              "10,000/s with the fleet fresh]" % (
                  f["rps"], num(r["usable_before_wrk"], "%d"), r["nodes"],
                  num(r["usable_after_wrk"], "%d")))
    # The script's notes (what was not run, a view never whole), then what the figures say.
    notes = [n for r in runs for n in r.get("notes", []) + notes_of(r)]
    if notes:
        print()
        print("=== NOTES (what was not run, and where the machine, the farm or a program did not "
              "keep up) ===")
        for n in notes:
            print("- " + n)


def num(v, f):
    return "n/a" if v is None else f % v


def ratio(a, b):
    if a is None or b is None or not b:
        return "n/a"
    return "%.2f" % (a / b)


def lag_text(lag):
    b = lag["p99_bucket"]
    return "p50 %s s, p99 %s s%s over %d reads" % (
        num(lag["p50"], "%.2f"), num(lag["p99"], "%.2f"),
        "" if not b else " (in %g-%s s)" % (b[0], "inf" if b[1] is None else "%g" % b[1]),
        lag["count"])


def detail(r):
    iv = lambda s: ("%gs" % s) if s >= 1 else ("%gms" % (s * 1000))
    pct = lambda v: "n/a" if v is None else "%.1f%%" % (100 * v)
    mib = lambda k: "n/a" if k is None else "%.1f MiB" % (k / MIB)
    c, f = r["consumers"], r.get("farm") or {}
    print()
    print("--- %d Nodes, every %s, design %s: %s ---" % (
        r["nodes"], iv(r["interval"]), r["design"],
        "pi0-operator (leader) and pi0-webhook, each polling every agent" if r["design"] == "poll"
        else "pi0-operator (leader) polls and publishes, pi0-webhook%s reads the feed" % (
            " and a standby pi0-operator" if "standby" in c else "")))
    print("start: webhook ready %.1f s after start; %s; load1 %s at the idle window, %s at wrk" % (
        r["ready_s"], "every Node usable %.1f s after start" % r["usable_s"]
        if r.get("usable_s") is not None else "NOT every Node usable after %.0f s" % r["settle_s"],
        num(r["load1_at"]["idle"], "%.2f"), num(r["load1_at"]["wrk"], "%.2f")))
    print("agents (the farm, %.0f s idle): %.0f requests/s, %.0f bytes each, %.2f MB/s; farm CPU "
          "%s of a core (%d workers); its event loops %.1f ms late on average, %d of %d ticks "
          "over 100 ms late; %d refused; kernel listen overflows %d, drops %d; %s of %d nodes "
          "read within 3 intervals, %s never; gap between two reads of a node: median %s s, p99 "
          "%s s, max %s s" % (
              r["window_s"], f.get("requests_per_s", 0), f.get("bytes_per_request", 0),
              f.get("bytes_per_s", 0) / 1e6, pct(f.get("cpu")), r["farm_workers"],
              f.get("lag_mean_ms", 0), f.get("late_ticks", 0), f.get("lag_ticks", 0),
              f.get("refused", 0), r["listen_overflows"], r["listen_drops"],
              num(f.get("fresh"), "%d"), r["nodes"], num(f.get("never"), "%d"),
              num(f.get("gap_median"), "%.2f"), num(f.get("gap_p99"), "%.2f"),
              num(f.get("gap_max"), "%.2f")))
    if f.get("read_lag"):
        print("  read after the node's sample (the farm's clock): %s" % lag_text(f["read_lag"]))
    for who in ("operator", "standby", "webhook"):
        x = c.get(who)
        if not x:
            continue
        p = x["polls_per_s"]
        line = "%s: CPU %s of a core idle, VmRSS %s, VmHWM %s; source %s; agent polls/s ok %.0f, " \
               "error %.0f, timeout %.0f, skipped_open %.0f" % (
                   {"operator": "operator (leader)", "standby": "operator (standby)",
                    "webhook": "webhook"}[who], pct(x["cpu"]), mib(x["rss_kib"]),
                   mib(x["hwm_kib"]),
                   "feed" if x["source_feed"] == 1 else "agents" if x["source_agents"] == 1
                   else "?", p.get("ok", 0), p.get("error", 0), p.get("timeout", 0),
                   p.get("skipped_open", 0))
        if x.get("feed_bytes_per_s"):
            pages = x["feed_pages_per_s"]
            line += "; feed %.1f kB/s, pages/s delta %.1f full %.2f, errors/s %.2f" % (
                x["feed_bytes_per_s"] / 1e3, pages.get("delta", 0), pages.get("full", 0),
                x.get("feed_errors_per_s") or 0)
        if who == "operator":
            line += "; poll round (gauge, %d reads) median %s s, p90 %s s, max %s s" % (
                r["round_s"]["samples"], num(r["round_s"]["median"], "%.3f"),
                num(r["round_s"]["p90"], "%.3f"), num(r["round_s"]["max"], "%.3f"))
            if r["design"] == "feed":
                ans = x.get("feed_answers_per_s") or {}
                line += "; feed answers/s %s, sent %.1f kB/s" % (
                    ", ".join("%s %.1f" % kv for kv in sorted(ans.items()) if kv[1]) or "none",
                    (x.get("feed_sent_bytes_per_s") or 0) / 1e3)
        if who == "webhook":
            line += "; fleet nodes %s" % ", ".join("%s %d" % kv for kv in sorted(x["nodes"].items()))
        print(line)
    w, age = r["wrk"], r["age"]
    bucket = lambda b: "" if not b else " (in %g-%s s)" % (b[0], "inf" if b[1] is None else
                                                          "%g" % b[1])
    print("reviews (wrk -c%d, %.0f s): %.0f/s, p50 %.2f ms, p99 %.2f ms, %d non-2xx, %d socket "
          "errors; webhook CPU %s, operator %s, farm %s; data age over %d decisions: p50 %s s%s, "
          "p99 %s s%s, mean %s s; StaleData decisions %d; usable %s before, %s after; webhook "
          "VmHWM %s, VmRSS %s; each body once: %s" % (
              r["connections"], r["wrk_seconds"], w["rps"], w["p50_ms"], w["p99_ms"], w["non2xx"],
              w["socket_errors"], pct(w["webhook_cpu"]), pct(w["operator_cpu"]),
              pct(w["farm_cpu"]), age["count"] or 0, num(age["p50"], "%.2f"),
              bucket(age["p50_bucket"]), num(age["p99"], "%.2f"), bucket(age["p99_bucket"]),
              num(age["mean"], "%.2f"), r["stale_decisions"], num(r["usable_before_wrk"], "%d"),
              num(r["usable_after_wrk"], "%d"), mib(r["webhook_after_wrk"]["hwm_kib"]),
              mib(r["webhook_after_wrk"]["rss_kib"]),
              "as expected" if r["check_ok"] else "NOT as expected (above)"))
    if w.get("read_lag"):
        print("  during wrk, nodes read after their sample: %s; agent polls/s: %s" % (
            lag_text(w["read_lag"]), "; ".join(
                "%s %s" % (who, ", ".join("%s %.0f" % kv for kv in sorted(p.items()) if kv[1]) or "none")
                for who, p in sorted(w["polls_per_s"].items()))))
    if age.get("buckets"):
        prev, parts = 0.0, []
        for le, v in age["buckets"].items():
            if v - prev:
                parts.append("<=%s: %d" % (le, v - prev))
            prev = v
        print("  data age, decisions per bucket (s): %s" % ", ".join(parts))
    if r["errors"]:
        print("snapshot errors: %s" % "; ".join(r["errors"][:5]))


if __name__ == "__main__":
    {"nodes": create_nodes, "farm": farm, "snap": snap, "idle": idle, "result": result, "row": row,
     "report": report}[sys.argv[1]](sys.argv[2:])
