#!/usr/bin/python3
"""FAKE kubelet for Pi0's end-to-end test bed. It is NOT a kubelet and runs no containers.

Real kubelets cannot run on the test machine (no container runtime), so this program stands in
for all of them: it watches the pods that the scheduler has bound to Nodes it manages and writes
the status a kubelet would write, through the pods' status subresource:

  * a bound pod that is not yet Running becomes Running with a podIP, the node's hostIP, a
    startTime, running containerStatuses (ready, started, restartCount 0) and the conditions
    PodScheduled, Initialized, ContainersReady and Ready set True;
  * a pod with a deletionTimestamp is finished: deleted with gracePeriodSeconds=0 (and a uid
    precondition, so a new pod of the same name is never hit).

Failure injection, read from the pod's annotations on every event:

  fake-kubelet.pi0.test/ready: "false"    the pod runs but is not Ready (containers not ready)
  fake-kubelet.pi0.test/restart: "<n>"    restartCount n, lastState terminated (exit code 1)
  fake-kubelet.pi0.test/oom-killed: "true"  with restart: the last termination was an OOM kill
                                          (reason OOMKilled, exit code 137)
  fake-kubelet.pi0.test/phase: Failed     the pod failed (containers terminated, exit code 1);
                                          "Succeeded" ends it with exit code 0

Removing an annotation reverts its effect (a Failed or Succeeded pod stays terminal, as with a
kubelet). With --ready-delay SECONDS a new pod runs but turns Ready only SECONDS after its
startTime.

Connection: --env-file DIR/env (what `cluster.sh up` writes), or --server/--token/--ca-file,
each defaulting to $PI0_APISERVER, $PI0_TOKEN and $PI0_CA_FILE. Standard library only. It lists
then watches pods, resumes a dropped watch from the last resourceVersion (relisting when that is
too old), re-reads a pod and retries on 409 Conflict, logs one line per action to stderr and
exits 0 on SIGTERM or SIGINT.
"""

import argparse
import http.client
import json
import os
import queue
import shlex
import signal
import ssl
import sys
import threading
import time
import urllib.parse
from datetime import datetime, timezone

ANNOTATION_PREFIX = "fake-kubelet.pi0.test/"
READY_ANNOTATION = ANNOTATION_PREFIX + "ready"
RESTART_ANNOTATION = ANNOTATION_PREFIX + "restart"
PHASE_ANNOTATION = ANNOTATION_PREFIX + "phase"
OOM_ANNOTATION = ANNOTATION_PREFIX + "oom-killed"

stop = threading.Event()


def log(msg):
    stamp = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    print("fake-kubelet %s %s" % (stamp, msg), file=sys.stderr, flush=True)


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value):
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__("HTTP %d: %s" % (status, body[:300]))
        self.status = status


class Api:
    """A minimal client: bearer token, the cluster CA, one connection per request."""

    def __init__(self, server, token, ca_file):
        url = urllib.parse.urlsplit(server)
        if url.scheme != "https" or not url.hostname:
            raise SystemExit("fake-kubelet: --server must be https://HOST:PORT, not %r" % server)
        self.host, self.port = url.hostname, url.port or 443
        self.token = token
        self.ctx = ssl.create_default_context(cafile=ca_file)

    def connect(self, timeout):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def headers(self, content_type=None):
        h = {"Authorization": "Bearer " + self.token, "Accept": "application/json"}
        if content_type:
            h["Content-Type"] = content_type
        return h

    def request(self, method, path, body=None, content_type="application/json", timeout=15):
        conn = self.connect(timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data,
                         headers=self.headers(content_type if data is not None else None))
            resp = conn.getresponse()
            payload = resp.read().decode("utf-8", "replace")
            if resp.status >= 300:
                raise ApiError(resp.status, payload)
            return json.loads(payload) if payload else None
        finally:
            conn.close()


def pod_key(pod):
    return "%s/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"])


def watcher(api, events, managed):
    """List then watch all bound pods; push pod objects onto `events`. Runs until `stop`."""
    selector = urllib.parse.quote("spec.nodeName!=")
    rv = None
    backoff = 0.2
    while not stop.is_set():
        try:
            if rv is None:
                listing = api.request("GET", "/api/v1/pods?fieldSelector=" + selector)
                rv = listing["metadata"]["resourceVersion"]
                for pod in listing.get("items", []):
                    events.put(("SYNC", pod))
                log("listed %d bound pods at resourceVersion %s; watching" %
                    (len(listing.get("items", [])), rv))
            conn = api.connect(timeout=90)
            try:
                conn.request("GET", "/api/v1/pods?watch=1&allowWatchBookmarks=true"
                             "&timeoutSeconds=60&fieldSelector=%s&resourceVersion=%s"
                             % (selector, rv), headers=api.headers())
                resp = conn.getresponse()
                if resp.status == 410:
                    log("watch: resourceVersion %s is too old; relisting" % rv)
                    rv = None
                    continue
                if resp.status != 200:
                    raise ApiError(resp.status, resp.read().decode("utf-8", "replace"))
                backoff = 0.2
                while not stop.is_set():
                    line = resp.readline()
                    if not line:
                        break  # the server ended the watch (timeoutSeconds); watch again
                    event = json.loads(line)
                    obj = event.get("object", {})
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            log("watch: expired (410); relisting")
                            rv = None
                        else:
                            log("watch: error event %s" % json.dumps(obj)[:300])
                        break
                    new_rv = obj.get("metadata", {}).get("resourceVersion")
                    if new_rv:
                        rv = new_rv
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        events.put(("EVENT", obj))
            finally:
                conn.close()
        except (OSError, http.client.HTTPException, ApiError, ValueError) as e:
            if stop.is_set():
                break
            log("watch: %s: %s; retrying in %.1fs" % (type(e).__name__, e, backoff))
            stop.wait(backoff)
            backoff = min(backoff * 2, 2.0)


class FakeKubelet:
    def __init__(self, api, nodes, ready_delay):
        self.api = api
        self.nodes = nodes  # None: every node
        self.ready_delay = ready_delay
        self.host_ips = {}
        self.pod_ips = {}  # uid -> ip
        self.next_ip = 2
        self.timers = {}  # key -> due time (epoch seconds)

    def manages(self, pod):
        node = pod.get("spec", {}).get("nodeName")
        return bool(node) and (self.nodes is None or node in self.nodes)

    def host_ip(self, node):
        if node not in self.host_ips:
            ip = "127.0.0.1"
            try:
                obj = self.api.request("GET", "/api/v1/nodes/" + urllib.parse.quote(node))
                for addr in obj.get("status", {}).get("addresses", []):
                    if addr.get("type") == "InternalIP":
                        ip = addr["address"]
                        break
                self.host_ips[node] = ip
            except (ApiError, OSError, http.client.HTTPException) as e:
                log("cannot read node %s (%s); hostIP 127.0.0.1 for now" % (node, e))
            return ip
        return self.host_ips[node]

    def pod_ip(self, pod):
        uid = pod["metadata"]["uid"]
        current = pod.get("status", {}).get("podIP")
        if current:
            self.pod_ips[uid] = current
        if uid not in self.pod_ips:
            n = self.next_ip
            self.next_ip += 1
            self.pod_ips[uid] = "10.244.%d.%d" % (n // 250, n % 250 + 2)
        return self.pod_ips[uid]

    # -- desired status --------------------------------------------------------------------

    def desired(self, pod):
        """Returns (summary, status) for `pod`, or None when nothing is to be written."""
        meta, spec = pod["metadata"], pod["spec"]
        status = pod.get("status", {})
        notes = meta.get("annotations") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            return None  # terminal, as with a kubelet
        phase = "Running"
        want_phase = notes.get(PHASE_ANNOTATION, "")
        if want_phase in ("Failed", "Succeeded"):
            phase = want_phase
        elif want_phase:
            log("%s: ignoring %s=%r (want Failed or Succeeded)" % (pod_key(pod), PHASE_ANNOTATION,
                                                                  want_phase))
        try:
            restarts = max(0, int(notes.get(RESTART_ANNOTATION, "0")))
        except ValueError:
            log("%s: ignoring %s=%r (want an integer)" % (pod_key(pod), RESTART_ANNOTATION,
                                                         notes.get(RESTART_ANNOTATION)))
            restarts = 0
        now = now_rfc3339()
        start_time = status.get("startTime") or now
        ready = phase == "Running" and notes.get(READY_ANNOTATION, "true").lower() != "false"
        if ready and self.ready_delay > 0:
            due = parse_rfc3339(start_time) + self.ready_delay
            if time.time() < due:
                ready = False
                self.timers[pod_key(pod)] = due
        previous = {c.get("name"): c for c in status.get("containerStatuses") or []}

        def container_status(c, ready_flag):
            prev = previous.get(c["name"], {})
            started_at = (prev.get("state", {}).get("running", {}).get("startedAt") or start_time)
            cs = {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": "fake-kubelet://" + c.get("image", ""),
                "containerID": "fake-kubelet://%s/%s" % (meta["uid"], c["name"]),
                "restartCount": restarts,
                "lastState": {},
            }
            if phase == "Running":
                cs.update(ready=ready_flag, started=True, state={"running": {"startedAt": started_at}})
            else:
                code = 0 if phase == "Succeeded" else 1
                cs.update(ready=False, started=False, state={"terminated": {
                    "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                    "startedAt": started_at, "finishedAt": now,
                    "containerID": cs["containerID"]}})
            if restarts > 0:
                oom = notes.get(OOM_ANNOTATION, "").lower() == "true"
                cs["lastState"] = {"terminated": {
                    "exitCode": 137 if oom else 1, "reason": "OOMKilled" if oom else "Error",
                    "startedAt": start_time, "finishedAt": start_time,
                    "containerID": cs["containerID"]}}
            return cs

        containers = [container_status(c, ready) for c in spec.get("containers", [])]
        init_containers = [{
            "name": c["name"], "image": c.get("image", ""),
            "imageID": "fake-kubelet://" + c.get("image", ""),
            "containerID": "fake-kubelet://%s/%s" % (meta["uid"], c["name"]),
            "ready": True, "restartCount": 0, "lastState": {},
            "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                     "startedAt": start_time, "finishedAt": start_time}},
        } for c in spec.get("initContainers", [])]

        old_conditions = {c.get("type"): c for c in status.get("conditions") or []}

        def condition(kind, value, reason=None):
            value = "True" if value else "False"
            old = old_conditions.get(kind, {})
            c = {"type": kind, "status": value, "lastProbeTime": None,
                 "lastTransitionTime": old.get("lastTransitionTime")
                 if old.get("status") == value and old.get("lastTransitionTime") else now}
            if reason and value == "False":
                c["reason"] = reason
            return c

        not_ready_reason = "PodCompleted" if phase != "Running" else "ContainersNotReady"
        conditions = [
            condition("Initialized", True),
            condition("Ready", ready, not_ready_reason),
            condition("ContainersReady", ready, not_ready_reason),
            condition("PodScheduled", True),
        ]
        ip = self.pod_ip(pod)
        new = {
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.host_ip(spec["nodeName"]),
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": start_time,
            "containerStatuses": containers,
        }
        if init_containers:
            new["initContainerStatuses"] = init_containers
        summary = (phase, ready, restarts)
        if self.summary(status) == summary and status.get("podIP") and \
                len(status.get("containerStatuses") or []) == len(containers):
            return None
        return summary, new

    @staticmethod
    def summary(status):
        ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                    for c in status.get("conditions") or [])
        restarts = max([c.get("restartCount", 0) for c in status.get("containerStatuses") or []],
                       default=0)
        return status.get("phase"), ready, restarts

    # -- actions ---------------------------------------------------------------------------

    def pod_path(self, pod):
        return "/api/v1/namespaces/%s/pods/%s" % (urllib.parse.quote(pod["metadata"]["namespace"]),
                                                  urllib.parse.quote(pod["metadata"]["name"]))

    def finish(self, pod):
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": pod["metadata"]["uid"]}}
        try:
            self.api.request("DELETE", self.pod_path(pod), body)
            log("deleted %s (it had a deletionTimestamp)" % pod_key(pod))
        except ApiError as e:
            if e.status not in (404, 409):  # gone already, or a new pod of that name
                raise
        self.pod_ips.pop(pod["metadata"]["uid"], None)

    def handle(self, pod):
        """Brings `pod` to its desired status; re-reads and retries on 409 Conflict."""
        for attempt in range(8):
            if not self.manages(pod):
                return
            if pod["metadata"].get("deletionTimestamp"):
                self.finish(pod)
                return
            want = self.desired(pod)
            if want is None:
                return
            (phase, ready, restarts), status = want
            patch = {"metadata": {"resourceVersion": pod["metadata"]["resourceVersion"]},
                     "status": status}
            try:
                self.api.request("PATCH", self.pod_path(pod) + "/status", patch,
                                 content_type="application/merge-patch+json")
                log("%s on %s: phase=%s ready=%s restarts=%d podIP=%s" % (
                    pod_key(pod), pod["spec"]["nodeName"], phase, str(ready).lower(), restarts,
                    status["podIP"]))
                return
            except ApiError as e:
                if e.status == 404:
                    return
                if e.status != 409:
                    raise
                log("%s: conflict (attempt %d); re-reading" % (pod_key(pod), attempt + 1))
                try:
                    pod = self.api.request("GET", self.pod_path(pod))
                except ApiError as e2:
                    if e2.status == 404:
                        return
                    raise
        log("%s: still conflicting after 8 attempts; waiting for the next event" % pod_key(pod))

    def run_due_timers(self):
        now = time.time()
        for key in [k for k, due in self.timers.items() if due <= now]:
            del self.timers[key]
            ns, name = key.split("/", 1)
            try:
                pod = self.api.request("GET", "/api/v1/namespaces/%s/pods/%s" % (
                    urllib.parse.quote(ns), urllib.parse.quote(name)))
            except ApiError as e:
                if e.status != 404:
                    log("%s: cannot re-read for --ready-delay: %s" % (key, e))
                continue
            except (OSError, http.client.HTTPException) as e:
                log("%s: cannot re-read for --ready-delay: %s; retrying" % (key, e))
                self.timers[key] = now + 1
                continue
            self.safe_handle(pod)

    def safe_handle(self, pod):
        try:
            self.handle(pod)
        except (ApiError, OSError, http.client.HTTPException) as e:
            # The apiserver may be down (a test restarts it); the next event or relist retries.
            log("%s: %s: %s" % (pod_key(pod), type(e).__name__, e))
            self.timers[pod_key(pod)] = time.time() + 1

    def next_timeout(self):
        if not self.timers:
            return 0.5
        return max(0.05, min(0.5, min(self.timers.values()) - time.time()))


def read_env_file(path):
    values = {}
    with open(path) as f:
        for line in f:
            words = shlex.split(line)
            if words and words[0] == "export":
                words = words[1:]
            for word in words:
                k, sep, v = word.partition("=")
                if sep:
                    values[k] = v
    return values


def main():
    p = argparse.ArgumentParser(description="FAKE kubelet: marks pods bound to nodes Running/Ready "
                                "(a stand-in for kubelets in Pi0's e2e test bed)")
    p.add_argument("--env-file", help="the env file `cluster.sh up` wrote (DIR/env)")
    p.add_argument("--server", help="apiserver URL (default $PI0_APISERVER)")
    p.add_argument("--token", help="bearer token (default $PI0_TOKEN)")
    p.add_argument("--ca-file", help="cluster CA certificate (default $PI0_CA_FILE)")
    p.add_argument("--nodes", help="comma-separated Node names to manage (default: all)")
    p.add_argument("--ready-delay", type=float, default=0.0, metavar="SECONDS",
                   help="a new pod turns Ready this long after its startTime (default 0)")
    args = p.parse_args()

    env = dict(os.environ)
    if args.env_file:
        env.update(read_env_file(args.env_file))
    server = args.server or env.get("PI0_APISERVER")
    token = args.token or env.get("PI0_TOKEN")
    ca_file = args.ca_file or env.get("PI0_CA_FILE")
    if not (server and token and ca_file):
        p.error("need the apiserver, token and CA: --env-file, or --server/--token/--ca-file, "
                "or PI0_APISERVER/PI0_TOKEN/PI0_CA_FILE")
    nodes = None
    if args.nodes:
        nodes = {n.strip() for n in args.nodes.split(",") if n.strip()}

    def on_signal(signum, _frame):
        log("signal %d; exiting" % signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    api = Api(server, token, ca_file)
    kubelet = FakeKubelet(api, nodes, args.ready_delay)
    events = queue.Queue()
    thread = threading.Thread(target=watcher, args=(api, events, nodes), daemon=True)
    thread.start()
    log("started: server %s, nodes %s, ready delay %gs" % (
        server, ",".join(sorted(nodes)) if nodes else "all", args.ready_delay))
    while not stop.is_set():
        try:
            _, pod = events.get(timeout=kubelet.next_timeout())
        except queue.Empty:
            pod = None
        if pod is not None:
            kubelet.timers.pop(pod_key(pod), None)
            kubelet.safe_handle(pod)
        kubelet.run_due_timers()
    return 0


if __name__ == "__main__":
    sys.exit(main())
