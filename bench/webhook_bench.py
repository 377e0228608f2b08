#!/usr/bin/python3
"""The helpers of bench/webhook_bench.sh; see that script's header for what is measured.

  webhook_bench.py nodes N NODES_JSON            create N Nodes (16 threads), write their list
  webhook_bench.py slices NODES_JSON NS SVC PORT  a Service and its EndpointSlices, one endpoint
                                                  per Node at its own loopback address
  webhook_bench.py farm NODES_JSON PORT KIND=URL...
                                                  the agent farm (a stand-in, see AgentFarm)
  webhook_bench.py reviews NS DIR [POD...]        the pods (all eight, or those named),
                                                  defaulted by the apiserver (dry run), as
                                                  AdmissionReview bodies in DIR
  webhook_bench.py check URL CA DIR [--any]       POST each body once; 200, the uid echoed and
                                                  the expected answer (--any: either answer, for
                                                  a peer that decides on its own nodes)
  webhook_bench.py wrk-result FILE CONNS THREADS CPU_TICKS FLEET_JSON IDLE_TICKS_5S
                                                  wrk's figures (webhook_wrk.lua) as one JSON line
  webhook_bench.py side-run FILE SERVER ROUND CONNS THREADS CPU_TICKS LOAD1
                                                  one run of the side-by-side, as one JSON line
  webhook_bench.py side-by-side JSONL             its runs, medians and the ratio pi0/go
  webhook_bench.py apiserver NS DIR N CLIENTS WEBHOOK_NAME METRICS_URL CA OUT
                                                  N dry-run pod creations by CLIENTS clients; the
                                                  apiserver's and the webhook's histograms
  webhook_bench.py report RESULTS_JSON            the summary table

The apiserver is reached with $PI0_APISERVER, $PI0_TOKEN and $PI0_CA_FILE (tests/e2e/lib.sh).
"""
import asyncio, concurrent.futures, http.client, itertools, json, math, os, re, socket, ssl, sys
import threading, time, urllib.parse, urllib.request, zlib

GIB = 2**30


# ---------------------------------------------------------------------------------------------
# The apiserver

class Api:
    """Bearer token, the cluster CA, one kept-alive connection per thread."""

    def __init__(self):
        self.server = urllib.parse.urlsplit(os.environ["PI0_APISERVER"])
        self.token = os.environ["PI0_TOKEN"]
        self.ctx = ssl.create_default_context(cafile=os.environ["PI0_CA_FILE"])
        self.local = threading.local()

    def connect(self, timeout=60):
        return http.client.HTTPSConnection(self.server.hostname, self.server.port,
                                           context=self.ctx, timeout=timeout)

    def raw(self, method, path, data=None, ctype="application/json"):
        """(status, body bytes); retries a lost connection, not an HTTP answer."""
        for attempt in range(6):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = self.connect()
            headers = {"Authorization": "Bearer " + self.token, "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = ctype
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self.local.conn = None
                if attempt == 5:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def request(self, method, path, body=None, ctype="application/json", ok=()):
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(6):
            status, payload = self.raw(method, path, data, ctype)
            if status == 429 or status >= 500:
                time.sleep(0.2 * (attempt + 1))
                continue
            if status in ok:
                return None
            if status >= 300:
                raise RuntimeError("%s %s: HTTP %d: %s" % (method, path, status,
                                                           payload[:300].decode(errors="replace")))
            return json.loads(payload) if payload else None
        raise RuntimeError("%s %s: the apiserver kept answering 429/5xx" % (method, path))

    def text(self, path):
        status, body = self.raw("GET", path)
        if status != 200:
            raise RuntimeError("GET %s: HTTP %d" % (path, status))
        return body.decode()


def parallel(fn, items, threads=16):
    pool = concurrent.futures.ThreadPoolExecutor(threads)
    try:
        for f in concurrent.futures.as_completed([pool.submit(fn, i) for i in items]):
            f.result()
    except BaseException:  # a failure or Ctrl-C: drop what has not started
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


# ---------------------------------------------------------------------------------------------
# Nodes: a fleet as a cloud provider's node pools make it

POOLS = {
    # pool: (instance types, allocatable cpu, allocatable memory, GPUs, agent profile)
    "general": (["m5.2xlarge", "m5.4xlarge"], ["7910m", "15890m"], ["29Gi", "59Gi"], 0, "light"),
    "highmem": (["r5.4xlarge"], ["15890m"], ["123Gi"], 0, "light"),
    # A batch pool running hot: every node's agent reports cpu at 0.9.
    "batch": (["c5.4xlarge"], ["15890m"], ["29Gi"], 0, "heavy"),
    "gpu": (["p3.8xlarge"], ["31850m"], ["236Gi"], 4, "gpu"),
}
ZONES = ["zone-a", "zone-b", "zone-c"]


def node_ip(i):
    """The agent address of node i: a loopback address of its own (127.0.0.0/8 is all local)."""
    return "127.%d.%d.%d" % (1 + i // 62500, (i // 250) % 250 + 1, i % 250 + 1)


def node_spec(i):
    """Node i of the fleet: 5 % GPU, 10 % batch (hot), 20 % high-memory, the rest general;
    2 % tainted for infrastructure, 1 % cordoned."""
    pool = ("gpu" if i % 20 == 19 else "batch" if i % 10 == 5 else
            "highmem" if i % 10 in (2, 8) else "general")
    types, cpus, mems, gpus, profile = POOLS[pool]
    k = i % len(types)
    name = "ip-10-%d-%d-%d.%s.compute.internal" % (i // 65536 + 20, (i // 256) % 256, i % 256,
                                                   "region-1")
    zone = ZONES[i % 3]
    labels = {
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/region": "region-1", "topology.kubernetes.io/zone": zone,
        "failure-domain.beta.kubernetes.io/region": "region-1",
        "failure-domain.beta.kubernetes.io/zone": zone,
        "node.kubernetes.io/instance-type": types[k], "beta.kubernetes.io/instance-type": types[k],
        "node.pi0.io/pool": pool, "node-role.kubernetes.io/worker": "",
    }
    taints = []
    unschedulable = i % 100 == 42
    if pool == "gpu":
        labels["nvidia.com/gpu.present"] = "true"
        labels["nvidia.com/gpu.product"] = "Tesla-V100-SXM2-16GB"
        taints.append({"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"})
    if i % 50 == 13:
        taints.append({"key": "dedicated", "value": "infra", "effect": "NoSchedule"})
    if unschedulable:
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    allocatable = {"cpu": cpus[k], "memory": mems[k], "pods": "110",
                   "ephemeral-storage": "95551679124", "hugepages-2Mi": "0"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    return {"name": name, "index": i, "pool": pool, "profile": profile, "ip": node_ip(i),
            "labels": labels, "taints": taints, "unschedulable": unschedulable,
            "allocatable": allocatable}


def node_object(spec, now):
    cond = lambda t, s, reason: {"type": t, "status": s, "reason": reason,
                                 "message": "set by webhook_bench", "lastHeartbeatTime": now,
                                 "lastTransitionTime": now}
    capacity = dict(spec["allocatable"])
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": spec["name"], "labels": spec["labels"]},
        "spec": {"taints": spec["taints"] or None, "unschedulable": spec["unschedulable"] or None,
                 "providerID": "aws:///%s/i-%017x" % (spec["labels"]["topology.kubernetes.io/zone"],
                                                      spec["index"] + 0x0abc000000000000)},
        "status": {
            "capacity": capacity, "allocatable": spec["allocatable"],
            "conditions": [cond("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                           cond("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                           cond("PIDPressure", "False", "KubeletHasSufficientPID"),
                           cond("Ready", "True", "KubeletReady")],
            "addresses": [{"type": "InternalIP", "address": "10.%d.%d.%d" % (
                              20 + spec["index"] // 65536, (spec["index"] // 256) % 256,
                              spec["index"] % 256)},
                          {"type": "Hostname", "address": spec["name"]},
                          {"type": "InternalDNS", "address": spec["name"]}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
                         "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "containerd://1.4.3",
                         "osImage": "Bench Linux", "kernelVersion": "5.4.0",
                         "machineID": "%032x" % spec["index"], "systemUUID": "",
                         "bootID": ""},
            "images": [{"names": ["app/web:1.4.2"], "sizeBytes": 86123456},
                       {"names": ["infra/envoy:1.17.0"], "sizeBytes": 51234567}],
        },
    }


def create_nodes(args):
    count, out = int(args[0]), args[1]
    api = Api()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    specs = [node_spec(i) for i in range(count)]

    def create(spec):
        obj = node_object(spec, now)
        api.request("POST", "/api/v1/nodes", obj, ok=(409,))
        # The apiserver's TaintNodesByCondition admission adds node.kubernetes.io/not-ready to a
        # new Node (a kubelet's first status update removes it): set the taints again.
        api.request("PATCH", "/api/v1/nodes/%s" % spec["name"],
                    {"spec": {"taints": spec["taints"] or None}},
                    ctype="application/merge-patch+json")
        # A create keeps the status as a kubelet's registration does; written again through the
        # status subresource in case it did not.
        api.request("PATCH", "/api/v1/nodes/%s/status" % spec["name"], {"status": obj["status"]},
                    ctype="application/merge-patch+json")

    t0 = time.time()
    parallel(create, specs)
    took = time.time() - t0
    pools = {}
    for s in specs:
        pools[s["pool"]] = pools.get(s["pool"], 0) + 1
    print("created %d Nodes in %.1f s (%.0f/s): %s; %d tainted, %d cordoned" % (
        count, took, count / took, ", ".join("%s %d" % kv for kv in sorted(pools.items())),
        sum(1 for s in specs if s["taints"]), sum(1 for s in specs if s["unschedulable"])),
        flush=True)
    json.dump([{k: s[k] for k in ("name", "ip", "pool", "profile")} for s in specs],
              open(out, "w"))


def create_slices(args):
    nodes, ns, service, port = json.load(open(args[0])), args[1], args[2], int(args[3])
    api = Api()
    api.request("POST", "/api/v1/namespaces/%s/services" % ns, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": service, "namespace": ns},
        # No selector: the endpoints are the ones written here, not a controller's.
        "spec": {"ports": [{"name": "http", "port": port, "targetPort": port}]}}, ok=(409,))
    per = 1000  # the most endpoints one slice may hold
    slices = []
    for k in range(0, len(nodes), per):
        slices.append({
            "apiVersion": "discovery.k8s.io/v1beta1", "kind": "EndpointSlice",
            "metadata": {"name": "%s-%03d" % (service, k // per), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service,
                                    "endpointslice.kubernetes.io/managed-by": "webhook-bench"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [n["ip"]], "conditions": {"ready": True},
                           # 1.20's v1beta1 has no nodeName (alpha, off): the topology says it.
                           "topology": {"kubernetes.io/hostname": n["name"]}}
                          for n in nodes[k:k + per]]})
    for s in slices:
        api.request("POST", "/apis/discovery.k8s.io/v1beta1/namespaces/%s/endpointslices" % ns, s,
                    ok=(409,))
    print("%d EndpointSlices of Service %s/%s list %d endpoints on port %d" % (
        len(slices), ns, service, len(nodes), port), flush=True)


# ---------------------------------------------------------------------------------------------
# The agent farm

# What the programs ask the agents for: the summary, or (pi0's pollers) only what admission reads.
TARGETS = (b"/fingerprint", b"/fingerprint?detail=resources")


class AgentFarm:
    """A stand-in for one pi0-agent per Node, for fleets larger than one machine can run.

    Listens on 0.0.0.0:PORT, so every address of 127.0.0.0/8 reaches it; a connection to the
    address of node i (node_ip) is node i's agent. GET /fingerprint (and ?detail=resources:
    TARGETS) answers the body that a real pi0-agent serves for it (one per profile: light, heavy,
    gpu; fetched again every second), with "node" replaced by node i's name, as the webhook's poller requires. Each
    answer closes its connection, as the poller asks. GET /farm-stats on any other address:
    how many nodes were polled within ?within=SECONDS, the polls so far, the answers refused.
    """

    def __init__(self, nodes, agents):
        self.by_ip = {n["ip"]: (i, n["name"].encode(), n["profile"]) for i, n in enumerate(nodes)}
        self.last = [0.0] * len(nodes)  # when each node was last polled (monotonic)
        self.gap = [0.0] * len(nodes)  # the time between its last two polls
        self.polls = 0
        self.refused = 0
        self.agents = agents  # profile -> base URL of a real pi0-agent
        self.templates = {}  # (profile, target) -> (before, after) the node's name
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def refresh(self):
        templates = {}
        for (profile, url), target in itertools.product(self.agents.items(), TARGETS):
            with self.opener.open(url + target.decode(), timeout=5) as r:
                body = r.read()
            doc = json.loads(body)
            if not doc.get("ready"):
                raise RuntimeError("the %s agent is not ready yet" % profile)
            marker = b'"node":' + json.dumps(doc["node"]).encode()
            parts = body.split(marker)
            if len(parts) != 2:
                raise RuntimeError("cannot find %r in the %s fingerprint" % (marker, profile))
            templates[profile, target] = (parts[0] + b'"node":"', b'"' + parts[1])
        self.templates = templates

    def refresher(self):
        while True:
            time.sleep(1)
            try:
                self.refresh()
            except (OSError, ValueError, RuntimeError) as e:
                print("farm: refresh failed: %s" % e, file=sys.stderr, flush=True)

    def answer(self, ip, target):
        if target.startswith(b"/farm-stats"):
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(target.decode()).query)
            within = float(q.get("within", ["3"])[0])
            now = time.monotonic()
            fresh = sum(1 for t in self.last if t and now - t <= within)
            gaps = sorted(g for g in self.gap if g)
            body = json.dumps({"nodes": len(self.last), "fresh": fresh,
                               "never": sum(1 for t in self.last if not t),
                               "polls": self.polls, "refused": self.refused,
                               "gap_median": gaps[len(gaps) // 2] if gaps else None,
                               "gap_max": gaps[-1] if gaps else None}).encode()
            return 200, body
        node = self.by_ip.get(ip)
        if node is None or target not in TARGETS:
            self.refused += 1
            return 404, b"not an agent address\n"
        i, name, profile = node
        before, after = self.templates[profile, target]
        now = time.monotonic()
        if self.last[i]:
            self.gap[i] = now - self.last[i]
        self.last[i] = now
        self.polls += 1
        return 200, before + name + after

    def serve(self, port):
        self.refresh()
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
                Conn, host="0.0.0.0", port=port, backlog=4096, reuse_address=True)
            print("farm: serving %d agents on port %d" % (len(self.last), port), flush=True)
            async with server:
                await server.serve_forever()

        asyncio.run(main())


def farm(args):
    nodes, port = json.load(open(args[0])), int(args[1])
    agents = dict(a.split("=", 1) for a in args[2:])
    AgentFarm(nodes, agents).serve(port)


# ---------------------------------------------------------------------------------------------
# The pods under review

PROBE = {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10,
         "timeoutSeconds": 1, "failureThreshold": 3}


def container(name, image, cpu, memory, limits=True, ports=(), env=(), mounts=(), probes=False):
    c = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent",
         "resources": {"requests": {"cpu": cpu, "memory": memory}},
         "env": [{"name": k, "value": v} for k, v in env],
         "ports": [{"name": p[0], "containerPort": p[1], "protocol": "TCP"} for p in ports],
         "volumeMounts": [{"name": m[0], "mountPath": m[1], "readOnly": True} for m in mounts]}
    if limits:
        c["resources"]["limits"] = {"cpu": cpu, "memory": memory}
    if probes:
        c["readinessProbe"] = PROBE
        c["livenessProbe"] = dict(PROBE, initialDelaySeconds=15)
    return c


def affinity(*expressions):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": k, "operator": op, "values": vs} for k, op, vs in expressions]}]}}}


def owned_pod(app, rs_hash, labels, spec):
    labels = dict({"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop",
                   "pod-template-hash": rs_hash, "version": "v1.4.2"}, **labels)
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "%s-%s-" % (app, rs_hash), "labels": labels,
                         "annotations": {"prometheus.io/scrape": "true",
                                         "prometheus.io/port": "9090"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "%s-%s" % (app, rs_hash),
                                              "uid": "6f1c2b7e-3d4a-4f5e-9a8b-%012x" % zlib.crc32(
                                                  app.encode()), "controller": True,
                                              "blockOwnerDeletion": True}]},
            "spec": dict({"restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
                          "volumes": [{"name": "config", "configMap": {"name": app + "-config"}}]},
                         **spec)}


def sidecars():
    return [container("envoy", "infra/envoy:1.17.0", "100m", "128Mi",
                      ports=[("admin", 15000)], mounts=[("config", "/etc/envoy")]),
            container("log-shipper", "infra/fluent-bit:1.7", "50m", "64Mi",
                      env=[("OUTPUT", "loki"), ("LEVEL", "info")])]


def pods(ns):
    """(name, expected allowed, pod). Round-robin, 5 of 8 pass."""
    web = owned_pod("web-frontend", "7d9f8b6c4", {"tier": "frontend"}, {
        "initContainers": [container("migrate", "app/web:1.4.2", "200m", "128Mi",
                                     env=[("MODE", "migrate")])],
        "containers": [container("app", "app/web:1.4.2", "500m", "512Mi",
                                 ports=[("http", 8080), ("metrics", 9090)],
                                 env=[("LOG_LEVEL", "info"), ("CACHE_URL", "redis://cache:6379")],
                                 mounts=[("config", "/etc/web")], probes=True)] + sidecars(),
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "affinity": affinity(("topology.kubernetes.io/zone", "In", ["zone-a", "zone-b"]),
                             ("node.kubernetes.io/instance-type", "In",
                              ["m5.2xlarge", "m5.4xlarge"])),
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 300}]})
    checkout = owned_pod("checkout-api", "5c6d7e8f9", {"tier": "backend",
                                                       "stability.pi0.io/channel": "checkout"}, {
        "initContainers": [container("wait-db", "infra/wait:1.0", "10m", "16Mi",
                                     limits=False)],
        "containers": [container("api", "app/checkout:2.3.0", "1", "1Gi",
                                 ports=[("http", 8080)], probes=True,
                                 env=[("DB_HOST", "postgres"), ("DB_POOL", "20")]),
                       container("worker", "app/checkout:2.3.0", "250m", "256Mi",
                                 env=[("ROLE", "worker")])] + sidecars(),
        "nodeSelector": {"node.pi0.io/pool": "general", "topology.kubernetes.io/zone": "zone-c"}})
    cache = owned_pod("session-cache", "68b7c9d5f", {"tier": "data"}, {
        "containers": [container("redis", "data/redis:6.2", "2", "16Gi",
                                 ports=[("redis", 6379)]),
                       container("exporter", "data/redis-exporter:1.20", "50m",
                                 "64Mi", ports=[("metrics", 9121)])] + sidecars()[1:],
        "nodeSelector": {"node.pi0.io/pool": "highmem"},
        "affinity": affinity(("node.kubernetes.io/instance-type", "In", ["r5.4xlarge"]))})
    trainer = owned_pod("trainer", "9f8e7d6c5", {"tier": "ml"}, {
        "initContainers": [container("fetch-data", "ml/fetch:0.9", "500m",
                                     "1Gi")],
        "containers": [dict(container("train", "ml/trainer:3.1", "4", "32Gi",
                                      env=[("EPOCHS", "40")]),
                            resources={"requests": {"cpu": "4", "memory": "32Gi",
                                                    "nvidia.com/gpu": "1"},
                                       "limits": {"nvidia.com/gpu": "1"}})] + sidecars()[1:],
        "nodeSelector": {"node.pi0.io/pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]})
    worker = owned_pod("queue-worker", "4b5c6d7e8", {"tier": "backend"}, {
        "containers": [container("worker", "app/worker:1.9", "300m", "384Mi",
                                 env=[("QUEUE", "orders")]),
                       container("metrics", "infra/statsd:0.9", "20m", "32Mi")]
        + sidecars()})
    report = owned_pod("batch-report", "1a2b3c4d5", {"tier": "batch"}, {
        "initContainers": [container("fetch", "batch/fetch:1.0", "100m",
                                     "128Mi")],
        "containers": [container("report", "batch/report:5.0", "4", "8Gi"),
                       container("upload", "batch/upload:5.0", "100m", "128Mi")]
        + sidecars()[1:],
        "affinity": affinity(("node.pi0.io/pool", "In", ["batch"]))})
    legacy = owned_pod("legacy-billing", "2c3d4e5f6", {"tier": "backend"}, {
        "containers": [container("billing", "app/billing:0.7", "500m", "1Gi",
                                 probes=True)] + sidecars(),
        "nodeSelector": {"topology.kubernetes.io/zone": "zone-d"}})
    nightly = owned_pod("nightly-export", "3d4e5f6a7", {"tier": "batch",
                                                        "stability.pi0.io/channel": "nightly"}, {
        "containers": [container("export", "batch/export:2.0", "1", "2Gi"),
                       container("upload", "batch/upload:5.0", "100m", "128Mi")]
        + sidecars()[1:]})
    out = [("web-frontend", True, web), ("checkout-api", True, checkout),
           ("batch-report", False, report), ("session-cache", True, cache),
           ("legacy-billing", False, legacy), ("trainer-gpu", True, trainer),
           ("nightly-export", False, nightly), ("queue-worker", True, worker)]
    for _, _, p in out:
        p["metadata"]["namespace"] = ns
    return out


def reviews(args):
    """Each pod created with dryRun=All (before the webhook is registered): the apiserver answers
    the object as a validating webhook would receive it (defaulted, service account mounted,
    name generated), which goes into an AdmissionReview as the apiserver writes one."""
    ns, out, only = args[0], args[1], args[2:]
    known = [name for name, _, _ in pods(ns)]
    unknown = [name for name in only if name not in known]
    if unknown:
        sys.exit("no pod named %s; the pods are %s" % (", ".join(unknown), ", ".join(known)))
    os.makedirs(out, exist_ok=True)
    api = Api()
    index = []
    for k, (name, allowed, pod) in enumerate(pods(ns)):
        if only and name not in only:
            continue
        obj = api.request("POST", "/api/v1/namespaces/%s/pods?dryRun=All" % ns, pod)
        json.dump(pod, open(os.path.join(out, "%d-%s.pod.json" % (k, name)), "w"))
        review = {
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "0b6c3f0e-8a1d-4d5e-9c7b-%012d" % k,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                "name": obj["metadata"]["name"], "namespace": ns, "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                             "uid": "1f0c9a2e-7b6d-4c3e-8a9f-0e1d2c3b4a59",
                             "groups": ["system:serviceaccounts",
                                        "system:serviceaccounts:kube-system",
                                        "system:authenticated"]},
                "object": obj, "oldObject": None, "dryRun": False,
                "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}}}
        path = os.path.join(out, "%d-%s.json" % (k, name))
        with open(path, "w") as f:
            json.dump(review, f, separators=(",", ":"))
        index.append({"name": name, "allowed": allowed, "file": path,
                      "pod": os.path.join(out, "%d-%s.pod.json" % (k, name)),
                      "bytes": os.path.getsize(path)})
    json.dump(index, open(os.path.join(out, "index.json"), "w"))
    sizes = [i["bytes"] for i in index]
    print("%d AdmissionReview bodies, %d to %d bytes (%d of them should be allowed)" % (
        len(index), min(sizes), max(sizes), sum(1 for i in index if i["allowed"])), flush=True)


def check(args):
    url, ca, directory = urllib.parse.urlsplit(args[0]), args[1], args[2]
    either = args[3:] == ["--any"]
    ctx = ssl.create_default_context(cafile=ca)
    bad = 0
    for item in json.load(open(os.path.join(directory, "index.json"))):
        review = open(item["file"], "rb").read()
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=10)
        conn.request("POST", url.path, body=review, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        answer = json.loads(body)["response"] if resp.status == 200 else {}
        allowed = answer.get("allowed")
        expected = item["allowed"] if not either else allowed
        uid = json.loads(review)["request"]["uid"]
        message = (answer.get("status") or {}).get("message", "")
        warnings = answer.get("warnings") or []
        ok = (resp.status == 200 and isinstance(allowed, bool) and allowed == expected and
              answer.get("uid") == uid and not warnings)
        bad += not ok
        print("  %-15s %5d bytes: HTTP %d, allowed %s%s%s%s%s" % (
            item["name"], item["bytes"], resp.status, allowed,
            " (expected %s)" % expected if allowed != expected else "",
            "" if resp.status != 200 or answer.get("uid") == uid else
            " (uid %r, not the request's %r)" % (answer.get("uid"), uid),
            ": " + message[:110] if message else "",
            "; warnings: %s" % warnings if warnings else ""), flush=True)
    if bad:
        print("%d bodies did not get the expected answer" % bad, flush=True)
        sys.exit(1)


# ---------------------------------------------------------------------------------------------
# Figures

def read_wrk(path):
    """The figures webhook_wrk.lua printed (latencies in µs), with reviews/s."""
    line = next((l for l in open(path) if l.startswith("WRK_RESULT ")), None)
    if line is None:
        sys.exit("no WRK_RESULT line in %s" % path)
    r = json.loads(line[len("WRK_RESULT "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["socket_errors"] = sum(v for k, v in r["errors"].items() if k != "status")
    return r


def wrk_result(args):
    """The line webhook_wrk.lua printed, with the webhook's CPU over the run."""
    path, conns, threads, ticks = args[0], int(args[1]), int(args[2]), int(args[3])
    fleet, idle_ticks_5s = json.loads(args[4]), int(args[5])
    r = read_wrk(path)
    r["connections"], r["threads"], r["fleet"] = conns, threads, fleet
    tck, seconds = os.sysconf("SC_CLK_TCK"), r["duration_us"] / 1e6
    r["webhook_cpu_us_per_request"] = ticks / tck * 1e6 / max(1, r["requests"])
    # Less what the webhook spends without reviews (its poller), at the rate measured idle.
    r["review_cpu_us_per_request"] = (max(0.0, ticks - idle_ticks_5s / 5.0 * seconds) / tck *
                                      1e6 / max(1, r["requests"]))
    print(json.dumps(r))


def side_run(args):
    """One run of the side-by-side: wrk's figures and the server's CPU per review."""
    path, server, round_, conns, threads, ticks = (args[0], args[1], int(args[2]), int(args[3]),
                                                   int(args[4]), int(args[5]))
    r = read_wrk(path)
    r.update(server=server, round=round_, connections=conns, threads=threads, cpu_ticks=ticks,
             load1=float(args[6]))
    r["cpu_us_per_request"] = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / max(1, r["requests"])
    print(json.dumps(r))


def median(values):
    v = sorted(values)
    n = len(v)
    return (v[n // 2] + v[(n - 1) // 2]) / 2.0


def side_by_side(args):
    """The runs of bench_side_by_side (webhook_lib.sh), their medians per server, and the
    ratios pi0/go against the goal of issue 13."""
    runs = [json.loads(l) for l in open(args[0]) if l.strip()]
    if not runs:
        sys.exit("no side-by-side runs in %s" % args[0])
    servers = []
    for r in runs:
        if r["server"] not in servers:
            servers.append(r["server"])
    ms = lambda us: us / 1000.0
    first = runs[0]
    print()
    print("=== side by side: wrk -t%d -c%d, %.0f s per run, the same bodies, alternating %s ===" % (
        first["threads"], first["connections"], first["duration_us"] / 1e6, "/".join(servers)))
    print("%-6s %5s %9s %7s %7s %7s %8s %6s %6s %8s %6s" % (
        "server", "round", "reviews/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "non2xx",
        "errors", "cpu µs/r", "load1"))
    for r in runs:
        print("%-6s %5d %9.0f %7.3f %7.3f %7.3f %8.3f %6d %6d %8.0f %6.2f" % (
            r["server"], r["round"], r["rps"], ms(r["p50"]), ms(r["p90"]), ms(r["p99"]),
            ms(r["p999"]), r["errors"]["status"], r["socket_errors"], r["cpu_us_per_request"],
            r["load1"]))
    med = {}
    for s in servers:
        mine = [r for r in runs if r["server"] == s]
        med[s] = {k: median([r[k] for r in mine])
                  for k in ("rps", "p50", "p99", "cpu_us_per_request")}
        print("%-6s %5s %9.0f %7.3f %7s %7.3f %8s %6d %6d %8.0f" % (
            s, "median", med[s]["rps"], ms(med[s]["p50"]), "", ms(med[s]["p99"]), "",
            sum(r["errors"]["status"] for r in mine), sum(r["socket_errors"] for r in mine),
            med[s]["cpu_us_per_request"]))
    print("cpu µs/r: the server's CPU time (utime+stime) over the run per review answered, all "
          "its threads (pi0-webhook's poller included); load1: the machine's 1-minute load "
          "average when the run began")
    if "pi0" in med and "go" in med and med["go"]["rps"] > 0 and med["go"]["p99"] > 0:
        rps = med["pi0"]["rps"] / med["go"]["rps"]
        p99 = med["pi0"]["p99"] / med["go"]["p99"]
        print("pi0/go reviews/s = %.2f (goal >= 2.0: %s)" % (rps, "met" if rps >= 2.0 else
                                                             "not met"))
        print("p99 pi0/go = %.2f (goal < 1.0, pi0's p99 lower: %s)" % (
            p99, "met" if p99 < 1.0 else "not met"))


HIST = re.compile(r'^(\w+)_(bucket|sum|count)\{(.*)\} (\S+)$')


def histogram(text, name, match):
    """{le: cumulative count}, sum, count of the series of `name` whose labels include `match`
    (summed over the other labels)."""
    buckets, total, count = {}, 0.0, 0.0
    for line in text.splitlines():
        m = HIST.match(line)
        if not m or m.group(1) != name:
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3)))
        if any(labels.get(k) != v for k, v in match.items()):
            continue
        v = float(m.group(4))
        if m.group(2) == "bucket":
            le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
            buckets[le] = buckets.get(le, 0.0) + v
        elif m.group(2) == "sum":
            total += v
        else:
            count += v
    return buckets, total, count


def delta(after, before):
    b1, s1, c1 = after
    b0, s0, c0 = before
    return {le: v - b0.get(le, 0.0) for le, v in b1.items()}, s1 - s0, c1 - c0


def quantile(buckets, q):
    """Prometheus' histogram_quantile: linear within the bucket that holds the q-th value."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank, prev_bound, prev_count = q * buckets[bounds[-1]], 0.0, 0.0
    for b in bounds:
        if buckets[b] >= rank:
            if math.isinf(b):
                return prev_bound  # beyond the last finite bound: that bound, at least
            inside = buckets[b] - prev_count
            return prev_bound + (b - prev_bound) * ((rank - prev_count) / inside if inside else 0)
        prev_bound, prev_count = b, buckets[b]
    return prev_bound


def bounds(buckets, q):
    """The bucket that holds the q-th value: (lower bound, upper bound), exact."""
    if not buckets or buckets[max(buckets)] <= 0:
        return None
    lower = 0.0
    for b in sorted(buckets):
        if buckets[b] >= q * buckets[max(buckets)]:
            return [lower, None if math.isinf(b) else b]
        lower = b
    return None


def summarize(h):
    buckets, total, count = h
    return {"count": count, "mean": total / count if count else None,
            "p50": quantile(buckets, 0.5), "p99": quantile(buckets, 0.99),
            "p50_bucket": bounds(buckets, 0.5), "p99_bucket": bounds(buckets, 0.99),
            "buckets": {("+Inf" if math.isinf(le) else repr(le)): v
                        for le, v in sorted(buckets.items())}}


def fetch_webhook_metrics(url, ca, timeout=120):
    """(text, seconds it took). Generous: a new connection waits for one of the webhook's
    server threads, which the apiserver's kept-alive connections may all hold."""
    ctx = ssl.create_default_context(cafile=ca)
    u = urllib.parse.urlsplit(url)
    t = time.monotonic()
    conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=timeout)
    conn.request("GET", u.path)
    text = conn.getresponse().read().decode()
    conn.close()
    return text, time.monotonic() - t


def established(port):
    """TCP connections in state ESTABLISHED whose local port is `port` (IPv4)."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


class ConnectionSampler(threading.Thread):
    """The most connections to `port` seen at once, sampled every 200 ms."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.peak, self.done = port, 0, threading.Event()

    def run(self):
        while not self.done.wait(0.2):
            self.peak = max(self.peak, established(self.port))


def apiserver(args):
    ns, directory, n, clients, hook = args[0], args[1], int(args[2]), int(args[3]), args[4]
    metrics_url, ca, out = args[5], args[6], args[7]
    api = Api()
    # The control namespace is excluded from admission: every pod is allowed there.
    control = ns != "bench"
    bodies = []
    for item in json.load(open(os.path.join(directory, "index.json"))):
        pod = json.load(open(item["pod"]))
        pod["metadata"]["namespace"] = ns
        bodies.append((item["name"], item["allowed"] or control, json.dumps(pod).encode()))
    name = "apiserver_admission_webhook_admission_duration_seconds"
    own = "pi0_webhook_request_duration_seconds"
    a0 = histogram(api.text("/metrics"), name, {"name": hook})
    w0 = histogram(fetch_webhook_metrics(metrics_url, ca)[0], own, {"endpoint": "pods"})
    statuses, latencies, wrong = {}, [], []
    lock = threading.Lock()
    path = "/api/v1/namespaces/%s/pods?dryRun=All" % ns

    def one(i):
        pod, allowed, body = bodies[i % len(bodies)]
        t = time.monotonic()
        status, payload = api.raw("POST", path, body)
        took = time.monotonic() - t
        with lock:
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(took)
            if (status == 201) != allowed:
                wrong.append("%s: HTTP %d: %s" % (pod, status, payload[:200].decode(errors="replace")))

    sampler = ConnectionSampler(urllib.parse.urlsplit(metrics_url).port)
    sampler.start()
    t0 = time.monotonic()
    # One connection per client (thread), each kept alive, as many controllers would hold.
    parallel(one, range(n), threads=clients)
    took = time.monotonic() - t0
    sampler.done.set()
    sampler.join()
    print("  %d dry-run creations by %d clients in %.1f s (%.0f/s), answers %s%s" % (
        n, clients, took, n / took, ", ".join("HTTP %d: %d" % kv for kv in sorted(statuses.items())),
        "; %d not as expected, e.g. %s" % (len(wrong), wrong[0]) if wrong else ""), flush=True)
    a1 = histogram(api.text("/metrics"), name, {"name": hook})
    text, scrape = fetch_webhook_metrics(metrics_url, ca)
    w1 = histogram(text, own, {"endpoint": "pods"})
    print("  at most %d connections to the webhook at once; its /metrics answered %.1f s after "
          "the last creation" % (sampler.peak, scrape), flush=True)
    latencies.sort()
    result = {"requests": n, "clients": clients, "seconds": took, "statuses": statuses,
              "wrong": len(wrong), "wrong_examples": wrong[:3],
              "client_p50": latencies[len(latencies) // 2],
              "client_p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
              "apiserver": summarize(delta(a1, a0)), "webhook": summarize(delta(w1, w0)),
              "metrics_scrape_seconds": scrape, "peak_connections": sampler.peak}
    json.dump(result, open(out, "w"))


def report(args):
    r = json.load(open(args[0]))
    ms = lambda us: us / 1000.0
    n = r["nodes"]
    print()
    print("=== pi0-webhook: %d Nodes, a fleet view of %d agents (a stand-in farm), %s per run ==="
          % (n, n, r["duration"]))
    print("wrk %s over HTTPS keep-alive to 127.0.0.1, %d AdmissionReview bodies round-robin "
          "(%d of %d allowed), %d-%d bytes" % (r["wrk_version"], r["bodies"], r["allowed"],
                                               r["bodies"], r["min_bytes"], r["max_bytes"]))
    print("wrk, the webhook, the agent farm and the control plane share this machine's %d CPUs"
          % r["cpus"])
    print()
    print("%5s %3s %9s %7s %7s %7s %8s %7s %6s %6s %8s %8s %11s %7s" % (
        "conns", "thr", "reviews/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
        "non2xx", "errors", "cpu µs/r", "net µs/r", "fleet fresh", "gap max"))
    for w in r["wrk"]:
        errors = sum(w["errors"][k] for k in ("connect", "read", "write", "timeout"))
        f = w["fleet"]
        print("%5d %3d %9.0f %7.3f %7.3f %7.3f %8.3f %7.1f %6d %6d %8.0f %8.0f %11s %6.1fs" % (
            w["connections"], w["threads"], w["rps"], ms(w["p50"]), ms(w["p90"]), ms(w["p99"]),
            ms(w["p999"]), ms(w["max"]), w["errors"]["status"], errors,
            w["webhook_cpu_us_per_request"], w["review_cpu_us_per_request"],
            "%d/%d" % (f["usable"] if f["usable"] is not None else f["fresh"], n),
            f["gap_max"] or 0))
    print("cpu µs/r: the webhook's CPU time (utime+stime) per review, its poller included; "
          "net µs/r: less its CPU rate without reviews (%.0f %% of a CPU: the poller, mostly;\n"
          "a rough estimate when reviews use little of the CPU);\n"
          "fleet fresh: nodes usable in the webhook's view after the run; gap max: the longest "
          "time between two polls of one agent, as the farm saw them" % (
              100.0 * r["idle_ticks_5s"] / 5.0 / r["clk_tck"]))
    stale = [w["connections"] for w in r["wrk"]
             if (w["fleet"]["usable"] if w["fleet"]["usable"] is not None else w["fleet"]["fresh"])
             < n]
    if stale:
        print("NOTE: the fleet view lost fresh data for some Nodes during the runs at %s "
              "connections (its poller fell behind)" % ", ".join(map(str, stale)))
    best = max(w["rps"] for w in r["wrk"])
    at32 = next((w for w in r["wrk"] if w["connections"] == 32), None)
    line = lambda a, b, c="": print("%-46s %-22s %s" % (a, b, c))
    print()
    line("figure", "measured", "goal")
    line("throughput, best run", "%.0f reviews/s" % best, ">= 10,000 reviews/s")
    if at32:
        line("p99 latency at 32 connections", "%.3f ms" % ms(at32["p99"]), "< 2 ms")
    line("webhook peak RSS (VmHWM)", "%.1f MiB" % (r["hwm_kib"] / 1024), "< 64 MiB")
    line("webhook RSS when ready / after the wrk runs",
         "%.1f / %.1f MiB" % (r["rss_ready_kib"] / 1024, r["rss_after_kib"] / 1024))
    a = r.get("apiserver")
    if a:
        ap, wh = a["apiserver"], a["webhook"]
        f = lambda x: "n/a" if x is None else "%.1f ms" % (x * 1000)

        def q(h, k):  # "p99 1234.5 ms (in 500-2500 ms)"
            b = h[k + "_bucket"]
            return "%s %s%s" % (k, f(h[k]), "" if not b else " (in %g-%s ms)" % (
                b[0] * 1000, "inf" if b[1] is None else "%g" % (b[1] * 1000)))
        under = ap["buckets"].get("0.025")
        share = 100.0 * under / ap["count"] if ap["count"] and under is not None else None
        line("apiserver -> webhook p99 (bucket estimate)", f(ap["p99"]), "< 25 ms")
        if share is not None:
            line("  calls within 25 ms (exact: a bucket bound)", "%.2f %%" % share, ">= 99 %")
        line("apiserver -> webhook average (exact)", f(ap["mean"]),
             "(peer: ~44 ms at 100 clients)")
        if r.get("control"):
            line("  the control without a decision (average)", f(r["control"]["apiserver"]["mean"]),
                 "(the same apiserver, TLS and HTTP)")
        print()
        print("through the apiserver: %d dry-run pod creations by %d clients in %.1f s (%.0f/s); "
              "at the clients p50 %.1f ms, p99 %.1f ms; answers %s%s" % (
                  a["requests"], a["clients"], a["seconds"], a["requests"] / a["seconds"],
                  a["client_p50"] * 1000, a["client_p99"] * 1000,
                  ", ".join("HTTP %s: %d" % kv for kv in sorted(a["statuses"].items())),
                  "; %d NOT AS EXPECTED, e.g. %s" % (a["wrong"], a["wrong_examples"][0])
                  if a["wrong"] else " (as expected)"))
        print("  apiserver_admission_webhook_admission_duration_seconds{name=\"%s\"}: count %d, "
              "average %s, %s, %s" % (r["webhook_name"], ap["count"], f(ap["mean"]),
                                      q(ap, "p50"), q(ap, "p99")))
        print("    cumulative buckets: %s" % ", ".join(
            "le %s: %d" % (k, v) for k, v in ap["buckets"].items()))
        print("  pi0_webhook_request_duration_seconds{endpoint=\"pods\"} over the same span: "
              "count %d, average %s, %s, %s" % (wh["count"], f(wh["mean"]), q(wh, "p50"),
                                                q(wh, "p99")))
        print("  (averages are exact; p50 and p99 are interpolated within their bucket, as "
              "histogram_quantile does: only the bucket is certain)")
        print("  connections to the webhook (ESTABLISHED, sampled every 200 ms): at most %d at "
              "once; a new one right after (GET /metrics) was answered in %.1f s" % (
                  a["peak_connections"], a["metrics_scrape_seconds"]))
        c = r.get("control")
        if c:
            cp, cw = c["apiserver"], c["webhook"]
            under = cp["buckets"].get("0.025")
            print("  the control (namespace bench-control, excluded: the webhook parses and "
                  "answers Excluded), same creations and clients: apiserver -> webhook average "
                  "%s, %s, %s; %s within 25 ms; the webhook's own average %s; at the clients "
                  "p50 %.1f ms, p99 %.1f ms%s" % (
                      f(cp["mean"]), q(cp, "p50"), q(cp, "p99"),
                      "n/a" if under is None or not cp["count"]
                      else "%.1f %%" % (100.0 * under / cp["count"]), f(cw["mean"]),
                      c["client_p50"] * 1000, c["client_p99"] * 1000,
                      "; %d NOT AS EXPECTED" % c["wrong"] if c["wrong"] else ""))
    fr = r["fleet_ready"]
    print()
    print("fleet view before the runs: %s of %d nodes usable (the webhook's gauge), %d agents "
          "polled within %.0f s (the farm); each agent polled every %.1f s (median), at most "
          "%.1f s apart; --poll-interval %s; /readyz 200 %.1f s after start" % (
              "n/a" if fr["usable"] is None else fr["usable"], n, fr["fresh"], r["fresh_window"],
              fr["gap_median"] or 0, fr["gap_max"] or 0, r["poll_interval"], r["ready_seconds"]))


if __name__ == "__main__":
    {"nodes": create_nodes, "slices": create_slices, "farm": farm, "reviews": reviews,
     "check": check, "wrk-result": wrk_result, "side-run": side_run,
     "side-by-side": side_by_side, "apiserver": apiserver, "report": report}[
        sys.argv[1]](sys.argv[2:])
