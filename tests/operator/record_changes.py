# record_changes of tests/operator/lib.sh: watches each API collection PATH and appends one JSON
# line per object version to OUT. Usage: record_changes.py OUT PATH...
# (PI0_APISERVER, PI0_TOKEN and PI0_CA_FILE in the environment)
import json, os, ssl, sys, threading, time, urllib.error, urllib.request

out_path, paths = sys.argv[1], sys.argv[2:]
server, token = os.environ["PI0_APISERVER"], os.environ["PI0_TOKEN"]
context = ssl.create_default_context(cafile=os.environ["PI0_CA_FILE"])
lock = threading.Lock()
out = open(out_path, "a", buffering=1)

def emit(path, type_, obj):
    (obj.get("metadata") or {}).pop("managedFields", None)
    with lock:
        out.write(json.dumps({"t": time.time(), "path": path, "type": type_, "object": obj}) + "\n")

def get(url, timeout):
    req = urllib.request.Request(server + url, headers={"Authorization": "Bearer " + token})
    return urllib.request.urlopen(req, context=context, timeout=timeout)

def follow(path):
    rv = None
    while True:
        try:
            if rv is None:
                with get(path, 30) as r:
                    body = json.load(r)
                for o in body.get("items") or []:
                    emit(path, "LISTED", o)
                rv = body["metadata"]["resourceVersion"]
                with lock:
                    out.write(json.dumps({"t": time.time(), "path": path, "type": "SYNCED"}) + "\n")
            with get("%s?watch=1&resourceVersion=%s" % (path, rv), 330) as r:
                for line in r:
                    ev = json.loads(line)
                    if ev["type"] == "ERROR":
                        rv = None if (ev["object"].get("code") == 410) else rv
                        break
                    if ev["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        emit(path, ev["type"], ev["object"])
                        rv = ev["object"]["metadata"]["resourceVersion"]
        except (OSError, ValueError, urllib.error.URLError) as e:
            print("record_changes: %s: %s" % (path, e), file=sys.stderr)
            time.sleep(0.5)

for p in paths:
    threading.Thread(target=follow, args=(p,), daemon=True).start()
while True:
    time.sleep(3600)
