#!/usr/bin/python3
"""The scripted day: the load of every node and the pods that arrive, for Pi0's calibration
benchmark (bench/calibration/run.sh). It is the benchmark's NODE LOAD MODEL, a named fake: the
test machine runs no kubelets, so no pod's container adds load to any node. This program stands
in for that, and for the kernel's pressure, and writes ground truth as it goes.

Several "worlds" run side by side on one control plane, each with its own Nodes, namespace,
pi0-agents, pi0-operator and pi0-webhook. Every world lives the same day: the same scripted
load on its N-th node, the same pods arriving at the same seconds for its N-th node. Only what
its pi0-webhook admits differs, and so does the load its admitted pods add.

Every second, for each node:
  * the scripted load: a daily rhythm (busiest at 15:00, calmest at 03:00), noise, and the
    node's episodes, drawn from --seed, more of them in busy hours, their kinds as likely as
    --day says (DAYS: "mixed" 30/20/20/15/15 %, "pressure" 15/10/15/15/45 % of the kinds
    below, in that order):
      step       a batch job lands: cpu +0.25..0.45 for 20-60 s
      spike      cpu +0.40..0.60 for 3-8 s
      rhythm     cpu +0.25..0.40 on and off around the bound (period 8-20 s) for 60-120 s
      leak       memory grows 0.3-0.6 % a second until the node runs out: an OOM kill
                 (the leaking process dies; the pods on the node are OOM-killed with
                 probability 0.5 each), then the memory is back
      neighbour  a noisy neighbour: cpu stalls (pressure) +0.10..0.35 with cpu +0.10, 30-90 s
  * plus the pods running on it: each its share of cpu and memory (request/allocatable times
    its usage, 40-100 % of its cpu request, 60-100 % of its memory request);
  * pressure as the kernel reports it: PSI `some avg10` (a 10 s exponential average) of a stall
    share that grows as cpu demand passes 0.75 (0.6 x (demand - 0.75)/0.35) and as memory
    passes 0.90 (0.6 x (memory - 0.90)/0.10), plus a neighbour's stalls;
  * written as the node's pi0-agent profile (constant waves, replaced every second);
  * trouble, as DESIGN.md defines it: a PSI at or over 0.2, or cpu or memory at saturation (1.0).
    Pods on a node in trouble fail as a kubelet would show it, by the fake kubelet's
    annotations: memory trouble OOM-kills them (oom-killed, restart), cpu trouble makes them
    not Ready until it ends.

Pods arrive (Poisson, 0.05 + 0.20 x busy a second per node), each pinned to its node by a
nodeSelector, requests cpu 250m/500m/1 and memory 256Mi/512Mi/1Gi, and live 30-90 s. A pod
the webhook denies is not retried. A pod admitted onto a node whose requests are full stays
Pending (the scheduler's fit) and adds no load.

Output in --out: decisions.csv (world, t, node, pod, allowed, oom, message), truth.csv (t,
world, node, cpu, memory, psi_cpu, psi_memory, trouble), day.json (the parameters). t is
seconds from the start of the day; the warm-up before it has negative t.
"""

import argparse
import concurrent.futures
import csv
import http.client
import json
import math
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "e2e"))
from fake_kubelet import Api, ApiError, read_env_file  # noqa: E402

CPU_CAPACITY = 16.0  # cores per node (run.sh creates the Nodes alike)
MEMORY_CAPACITY = 64 * 1024.0  # MiB
PSI_LINE = 0.2
AVG10 = 1 - math.exp(-1 / 10)  # one second of the kernel's 10 s exponential average
ANNOTATION = "fake-kubelet.pi0.test/"

# The days: how likely each kind of episode is.
KINDS = ["step", "spike", "rhythm", "leak", "neighbour"]
DAYS = {
    "mixed": [0.30, 0.20, 0.20, 0.15, 0.15],
    "pressure": [0.15, 0.10, 0.15, 0.15, 0.45],
}

stop = threading.Event()


def busy(hour):
    """0 at 03:00, 1 at 15:00."""
    return 0.5 - 0.5 * math.cos(2 * math.pi * (hour - 3) / 24)


class Script:
    """Everything drawn from the seed: each node index's scripted load and pod arrivals."""

    def __init__(self, day, seed, nodes, hours, hour_seconds, warmup):
        self.day, self.nodes, self.hour_seconds, self.warmup = day, nodes, hour_seconds, warmup
        self.length = int(hours * hour_seconds)
        rng = random.Random(seed)
        self.episodes = [self.draw_episodes(rng) for _ in range(nodes)]
        self.noise = [[rng.gauss(0, 0.02) for _ in range(warmup + self.length + 120)]
                      for _ in range(nodes)]
        self.offset = [0.03 * i for i in range(nodes)]
        self.arrivals = self.draw_arrivals(rng)

    def hour(self, t):
        return max(0.0, t) / self.hour_seconds

    def draw_episodes(self, rng):
        out, t = [], 0.0
        while t < self.length:
            # Poisson in compressed time: 0.2 + 0.5 x busy episodes an hour.
            rate = (0.2 + 0.5 * busy(self.hour(t))) / self.hour_seconds
            t += rng.expovariate(rate)
            if t >= self.length:
                break
            kind = rng.choices(KINDS, DAYS[self.day])[0]
            if kind == "step":
                e = dict(size=rng.uniform(0.25, 0.45), length=rng.uniform(20, 60))
            elif kind == "spike":
                e = dict(size=rng.uniform(0.4, 0.6), length=rng.uniform(3, 8))
            elif kind == "rhythm":
                e = dict(size=rng.uniform(0.25, 0.4), period=rng.uniform(8, 20),
                         length=rng.uniform(60, 120))
            elif kind == "leak":
                e = dict(rate=rng.uniform(0.003, 0.006), length=400)
            else:
                e = dict(stall=rng.uniform(0.1, 0.35), length=rng.uniform(30, 90))
            e.update(kind=kind, start=t)
            out.append(e)
        return out

    def draw_arrivals(self, rng):
        out = []  # (t, node index, cpu millicores, memory MiB, cpu usage, memory usage, life)
        for i in range(self.nodes):
            t = 0.0
            while True:
                t += rng.expovariate(1.0)  # thinned below to 0.05 + 0.20 x busy a second
                if t >= self.length:
                    break
                if rng.random() >= 0.05 + 0.20 * busy(self.hour(t)):
                    continue
                out.append((t, i, rng.choice([250, 500, 500, 1000]), rng.choice([256, 512, 1024]),
                            rng.uniform(0.4, 1.0), rng.uniform(0.6, 1.0), rng.uniform(30, 90)))
        out.sort()
        return out

    def scripted(self, i, t, leak_since):
        """The node's own load at second t: (cpu demand, memory, extra cpu stall share)."""
        h = self.hour(t)
        cpu = 0.15 + 0.15 * busy(h) + self.offset[i] + self.noise[i][int(t) + self.warmup]
        memory = 0.35 + 0.10 * busy(h)
        stall = 0.0
        for e in self.episodes[i]:
            dt = t - e["start"]
            if dt < 0 or dt >= e["length"]:
                continue
            if e["kind"] in ("step", "spike"):
                cpu += e["size"]
            elif e["kind"] == "rhythm":
                if (dt % e["period"]) < e["period"] / 2:
                    cpu += e["size"]
            elif e["kind"] == "leak":
                if e["start"] >= leak_since:  # an OOM kill ended it
                    memory += e["rate"] * dt
            else:
                cpu += 0.1
                stall += e["stall"]
        return cpu, memory, stall


class Node:
    def __init__(self, world, index, name, profile):
        self.world, self.index, self.name, self.profile = world, index, name, profile
        self.psi_cpu = 0.0
        self.psi_memory = 0.0
        self.leak_since = -1e9  # episodes of leak starting before this were ended by an OOM kill
        self.pods = {}  # name -> Pod, admitted and running here
        self.trouble = ""  # "cpu" / "memory" / "" now

    def requested(self):
        return (sum(p.cpu for p in self.pods.values() if p.running),
                sum(p.memory for p in self.pods.values() if p.running))


class Pod:
    def __init__(self, name, node, cpu, memory, cpu_use, memory_use, end):
        self.name, self.node = name, node
        self.cpu, self.memory = cpu, memory
        self.cpu_use, self.memory_use = cpu_use, memory_use
        self.end = end
        self.running = False
        self.oom = False
        self.not_ready = False


def profile_text(cpu, memory, psi_cpu, psi_memory):
    return ("memoryTotalBytes: %d\nsignals:\n"
            "  cpu: {wave: constant, value: %.4f}\n"
            "  memory: {wave: constant, value: %.4f}\n"
            "  psi_cpu: {wave: constant, value: %.4f}\n"
            "  psi_memory: {wave: constant, value: %.4f}\n"
            % (int(MEMORY_CAPACITY * 1024 * 1024), cpu, memory, psi_cpu, psi_memory))


def write_atomically(path, text):
    with open(path + ".new", "w") as f:
        f.write(text)
    os.replace(path + ".new", path)


class Day:
    def __init__(self, args, api):
        self.args, self.api = args, api
        self.script = Script(args.day, args.seed, args.nodes, args.hours, args.hour_seconds, args.warmup)
        self.worlds = args.worlds.split(",")
        self.nodes = [[Node(w, i, "%s-node-%d" % (w, i + 1),
                            os.path.join(args.profiles, "profile-%s-node-%d.yaml" % (w, i + 1)))
                       for i in range(args.nodes)] for w in self.worlds]
        self.lock = threading.Lock()  # guards the nodes' pods and the output files
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
        os.makedirs(args.out, exist_ok=True)
        self.decisions_file = open(os.path.join(args.out, "decisions.csv"), "w", newline="")
        self.decisions = csv.writer(self.decisions_file, lineterminator="\n")
        self.decisions.writerow(["world", "t", "node", "pod", "allowed", "message"])
        self.truth_file = open(os.path.join(args.out, "truth.csv"), "w", newline="")
        self.truth = csv.writer(self.truth_file, lineterminator="\n")
        self.truth.writerow(["t", "world", "node", "cpu", "memory", "psi_cpu", "psi_memory",
                             "trouble"])
        self.ooms = []  # (world, pod)
        self.errors = 0
        self.created = 0

    # --- the load -------------------------------------------------------------------------------

    def tick(self, t):
        for world_nodes in self.nodes:
            for node in world_nodes:
                self.step_node(node, t)

    def step_node(self, node, t):
        cpu, memory, stall = self.script.scripted(node.index, t, node.leak_since)
        with self.lock:
            for pod in node.pods.values():
                if pod.running:
                    cpu += pod.cpu / 1000 / CPU_CAPACITY * pod.cpu_use
                    memory += pod.memory / MEMORY_CAPACITY * pod.memory_use
        oom = memory >= 1.0
        if oom:  # the kernel kills the leaking process: the leak ends
            node.leak_since = t
            memory = min(memory, 0.99)
        raw_cpu = min(1.0, 0.6 * max(0.0, cpu - 0.75) / 0.35 + stall)
        raw_memory = min(1.0, 0.6 * max(0.0, memory - 0.90) / 0.10)
        node.psi_cpu += AVG10 * (raw_cpu - node.psi_cpu)
        node.psi_memory += AVG10 * (raw_memory - node.psi_memory)
        cpu_seen, memory_seen = min(1.0, max(0.0, cpu)), min(1.0, max(0.0, memory))
        write_atomically(node.profile, profile_text(cpu_seen, memory_seen, node.psi_cpu,
                                                    node.psi_memory))
        trouble = ""
        if oom or node.psi_memory >= PSI_LINE or memory_seen >= 1.0:
            trouble = "memory"
        elif node.psi_cpu >= PSI_LINE or cpu_seen >= 1.0:
            trouble = "cpu"
        self.truth.writerow(["%.0f" % t, node.world, node.name, "%.4f" % cpu_seen,
                             "%.4f" % memory_seen, "%.4f" % node.psi_cpu,
                             "%.4f" % node.psi_memory, trouble])
        if t >= 0:
            self.fail_pods(node, trouble, oom)
        node.trouble = trouble

    def fail_pods(self, node, trouble, oom):
        rng = random.Random(hash((node.name, node.leak_since)))
        with self.lock:
            pods = [p for p in node.pods.values() if p.running]
        for pod in pods:
            if oom and not pod.oom and rng.random() < 0.5:
                pod.oom = True
                self.ooms.append((node.world, pod.name))
                self.annotate(node.world, pod, {"oom-killed": "true", "restart": "1"})
            want = trouble == "cpu"
            if want != pod.not_ready:
                pod.not_ready = want
                self.annotate(node.world, pod, {"ready": "false" if want else None})

    # --- the pods -------------------------------------------------------------------------------

    def annotate(self, world, pod, notes):
        patch = {"metadata": {"annotations": {ANNOTATION + k: v for k, v in notes.items()}}}
        self.pool.submit(self.call, "PATCH", "/api/v1/namespaces/day-%s/pods/%s" % (world,
                                                                                   pod.name),
                         patch, "application/merge-patch+json")

    def call(self, method, path, body=None, content_type="application/json"):
        try:
            return self.api.request(method, path, body, content_type=content_type)
        except ApiError as e:
            if e.status != 404:
                self.error("%s %s: %s" % (method, path, e))
        except OSError as e:
            self.error("%s %s: %s" % (method, path, e))
        return None

    def error(self, message):
        with self.lock:
            self.errors += 1
        print("day: " + message, file=sys.stderr, flush=True)

    def post(self, path, body):
        """(status, body) of a POST: the whole answer, which a denial's message is in."""
        conn = self.api.connect(15)
        try:
            conn.request("POST", path, body=json.dumps(body).encode(),
                         headers=self.api.headers("application/json"))
            resp = conn.getresponse()
            return resp.status, resp.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def arrive(self, t, n, arrival):
        _, i, cpu, memory, cpu_use, memory_use, life = arrival
        for w, world in enumerate(self.worlds):
            node = self.nodes[w][i]
            pod = Pod("p%05d" % n, node, cpu, memory, cpu_use, memory_use, t + life)
            self.pool.submit(self.create, t, node, pod)

    def create(self, t, node, pod):
        body = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod.name, "namespace": "day-" + node.world,
                             "labels": {"app": "day"}},
                "spec": {"nodeSelector": {"kubernetes.io/hostname": node.name},
                         "terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "job", "image": "pi0.test/job:1", "resources": {
                             "requests": {"cpu": "%dm" % pod.cpu,
                                          "memory": "%dMi" % pod.memory}}}]}}
        allowed, message = True, ""
        try:
            status, payload = self.post("/api/v1/namespaces/day-%s/pods" % node.world, body)
        except (OSError, http.client.HTTPException) as e:
            self.error("create %s/%s: %s" % (node.world, pod.name, e))
            return
        if status >= 300:
            try:
                message = json.loads(payload).get("message", "")
            except ValueError:
                message = payload
            if "denied the request" not in message:
                self.error("create %s/%s: HTTP %d: %s" % (node.world, pod.name, status,
                                                          payload[:300]))
                return
            allowed = False
        with self.lock:
            self.created += 1
            self.decisions.writerow([node.world, "%.1f" % t, node.name, pod.name,
                                     1 if allowed else 0, message])
            if allowed:
                cpu, memory = node.requested()
                # The scheduler's fit: a pod that does not fit stays Pending and adds nothing.
                pod.running = (cpu + pod.cpu <= CPU_CAPACITY * 1000 and
                               memory + pod.memory <= MEMORY_CAPACITY)
                node.pods[pod.name] = pod

    def retire(self, t):
        with self.lock:
            done = [(n, p) for row in self.nodes for n in row for p in n.pods.values()
                    if p.end <= t]
            for node, pod in done:
                del node.pods[pod.name]
        for node, pod in done:
            self.pool.submit(self.call, "DELETE", "/api/v1/namespaces/day-%s/pods/%s" % (
                node.world, pod.name))

    # --- the day --------------------------------------------------------------------------------

    def run(self):
        a = self.args
        with open(os.path.join(a.out, "day.json"), "w") as f:
            json.dump({"day": a.day, "seed": a.seed, "nodes": a.nodes, "hours": a.hours, "hourSeconds": a.hour_seconds,
                       "warmup": a.warmup, "drain": a.drain, "worlds": self.worlds,
                       "lengthSeconds": self.script.length,
                       "episodes": self.script.episodes,
                       "arrivals": len(self.script.arrivals)}, f, indent=1)
        arrivals = self.script.arrivals
        start = time.monotonic() + a.warmup  # t = 0
        next_arrival, t = 0, -a.warmup
        last_hour = -1
        print("day: %d worlds x %d nodes, %d s warm-up, a day of %d s (%g s an hour), "
              "%d pods per world" % (len(self.worlds), a.nodes, a.warmup, self.script.length,
                                     a.hour_seconds, len(arrivals)), file=sys.stderr, flush=True)
        while not stop.is_set() and t < self.script.length + a.drain:
            self.tick(t)
            self.truth_file.flush()
            with self.lock:
                self.decisions_file.flush()
            while next_arrival < len(arrivals) and arrivals[next_arrival][0] < t + 1:
                if t >= 0:
                    self.arrive(t, next_arrival, arrivals[next_arrival])
                next_arrival += 1
            self.retire(t)
            hour = int(self.script.hour(t)) if t >= 0 else -1
            if hour != last_hour and 0 <= hour < 24:
                print("day: %02d:00 (t=%d s) %s" % (hour, t, self.summary()), file=sys.stderr,
                      flush=True)
                last_hour = hour
            t += 1
            delay = start + t - time.monotonic()
            if delay > 0:
                stop.wait(delay)
        with self.lock:
            for row in self.nodes:
                for node in row:
                    for pod in node.pods.values():
                        self.pool.submit(self.call, "DELETE",
                                         "/api/v1/namespaces/day-%s/pods/%s" % (node.world,
                                                                                pod.name))
                    node.pods.clear()
        self.pool.shutdown(wait=True)
        with open(os.path.join(a.out, "ooms.csv"), "w") as f:
            f.write("world,pod\n" + "".join("%s,%s\n" % o for o in self.ooms))
        print("day: done: %d pods created or denied, %d API errors" % (self.created, self.errors),
              file=sys.stderr, flush=True)
        return 0 if not stop.is_set() else 1

    def summary(self):
        out = []
        for row in self.nodes:
            with self.lock:
                pods = sum(len(n.pods) for n in row)
            troubled = sum(1 for n in row if n.trouble)
            out.append("%s: %d pods, %d troubled" % (row[0].world, pods, troubled))
        return "; ".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env-file", required=True, help="the test control plane's env file")
    p.add_argument("--worlds", default="off,auto")
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--hour-seconds", type=float, default=40)
    p.add_argument("--hours", type=int, default=24, help="how many hours the day has, from 00:00")
    p.add_argument("--warmup", type=int, default=80)
    p.add_argument("--drain", type=int, default=20, help="seconds of load after the last pod")
    p.add_argument("--day", choices=sorted(DAYS), default="mixed")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profiles", required=True, help="where the agents' profiles are")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    env = read_env_file(args.env_file)
    api = Api(env["PI0_APISERVER"], env["PI0_TOKEN"], env["PI0_CA_FILE"])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return Day(args, api).run()


if __name__ == "__main__":
    sys.exit(main())
