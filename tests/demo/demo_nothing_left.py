# demo_test.sh's check that the demo left nothing behind: none of the processes its summary
# (--summary-json) lists runs, no process names its directories, and they are gone.
# Usage: demo_nothing_left.py SUMMARY_JSON
import json, os, sys
s = json.load(open(sys.argv[1]))
problems = []
for name, pid in s["processes"].items():
    try:
        with open("/proc/%s/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state not in ("Z", "X"):
            cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode()
            problems.append("%s (pid %s) still runs: %s" % (name, pid, cmd[:200]))
    except OSError:
        pass
dirs = [d for d in (s["workDir"], s["clusterDir"]) if d]
for d in dirs:
    if os.path.exists(d):
        problems.append("%s still exists" % d)
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode()
    except OSError:
        continue
    if any(d + "/" in cmd for d in dirs):
        problems.append("pid %s names the demo's directories: %s" % (pid, cmd[:200]))
if len(s["processes"]) < 11:  # 3 agents, webhook, operator, Prometheus, watcher, 4 + kubelet
    problems.append("only %d processes listed: %s" % (len(s["processes"]), s["processes"]))
for p in problems:
    print("  " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
