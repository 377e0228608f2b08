"""Pod reviews sent to pi0-webhook at a steady rate until SIGTERM, each judged as it comes.

Usage: review_load.py URL CA_FILE OUT_JSON [RATE_PER_S]

POSTs AdmissionReview v1 requests for a small pod in namespace `shop` (100m cpu, 64Mi) to
URL/validate-pods over one kept-alive TLS connection (reconnecting when it drops), and counts
every answer: HTTP status, `allowed`, the decision's reason (the audit annotation is only set on
denials and in DryRun, so the reason is read from the message: "admitted without gate checks"
marks a decision on stale data). On SIGTERM it writes OUT_JSON:
  {"sent": N, "ok": N, "allowed": N, "denied": N, "stale": N, "errors": N,
   "firstError": "...", "longestGapSeconds": S}
where longestGapSeconds is the longest time between two answered reviews (a webhook that hangs
shows there). Exits 0.
"""

import http.client
import json
import signal
import ssl
import sys
import time
import urllib.parse

url, ca_file, out_file = sys.argv[1], sys.argv[2], sys.argv[3]
rate = float(sys.argv[4]) if len(sys.argv) > 4 else 20.0
parsed = urllib.parse.urlparse(url)
context = ssl.create_default_context(cafile=ca_file)

stopping = False


def stop(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)


def review(uid):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"load-{uid}", "namespace": "shop", "labels": {"app": "load"}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "stand-in",
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                }
            ]
        },
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"uid-{uid}",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": "shop",
            "name": f"load-{uid}",
            "userInfo": {"username": "load"},
            "object": pod,
            "dryRun": False,
        },
    }


counts = {"sent": 0, "ok": 0, "allowed": 0, "denied": 0, "stale": 0, "errors": 0}
first_error = ""
connection = None
last_answer = time.monotonic()
longest_gap = 0.0
n = 0
next_at = time.monotonic()
while not stopping:
    now = time.monotonic()
    if now < next_at:
        time.sleep(next_at - now)
        continue
    next_at += 1.0 / rate
    n += 1
    counts["sent"] += 1
    try:
        if connection is None:
            connection = http.client.HTTPSConnection(
                parsed.hostname, parsed.port, context=context, timeout=5
            )
        body = json.dumps(review(n))
        connection.request(
            "POST", "/validate-pods", body, {"Content-Type": "application/json"}
        )
        answer = connection.getresponse()
        data = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"HTTP {answer.status}: {data[:200]!r}")
        response = json.loads(data)["response"]
        counts["ok"] += 1
        message = (response.get("status") or {}).get("message", "")
        warnings = " ".join(response.get("warnings") or [])
        if "without gate checks" in message + warnings or "no fresh fleet data" in message:
            counts["stale"] += 1
        counts["allowed" if response["allowed"] else "denied"] += 1
        t = time.monotonic()
        longest_gap = max(longest_gap, t - last_answer)
        last_answer = t
    except Exception as e:  # noqa: BLE001 - every failure is counted and the first kept
        counts["errors"] += 1
        if not first_error:
            first_error = f"review {n}: {e}"
        connection = None

counts["firstError"] = first_error
counts["longestGapSeconds"] = round(longest_gap, 3)
with open(out_file, "w") as f:
    json.dump(counts, f)
