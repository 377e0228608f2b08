#!/usr/bin/env bash
# The calibration benchmark (bench/calibration/run.sh --smoke), briefly: a 3-hour day of 10 s
# hours on the real control plane, two worlds (fixed thresholds, Auto calibration), each with
# its pi0-agents, pi0-operator and pi0-webhook. Checks what the benchmark's figures stand on:
#  - every node's load and trouble written every second (truth.csv), in both worlds alike up to
#    the pods' share;
#  - every pod the day sent got an answer from its world's webhook through the apiserver (no API
#    errors), and every answer is in that world's truth ledger: as many decisions, as many
#    denials;
#  - the ledger judged every decision (a node verdict after the horizon);
#  - the report prints both worlds' rates and the cross-check.
#
# Usage: calibration_day_test.sh SOURCE_DIR PI0_OPERATOR PI0_WEBHOOK PI0_AGENT
set -euo pipefail
source_dir=$(cd "${1:?usage: calibration_day_test.sh SOURCE_DIR PI0_OPERATOR PI0_WEBHOOK PI0_AGENT}" && pwd)
export PI0_OPERATOR PI0_WEBHOOK PI0_AGENT PYTHONDONTWRITEBYTECODE=1
PI0_OPERATOR=$(realpath "${2:?missing PI0_OPERATOR}")
PI0_WEBHOOK=$(realpath "${3:?missing PI0_WEBHOOK}")
PI0_AGENT=$(realpath "${4:?missing PI0_AGENT}")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pi0-calibration-day.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "calibration_day_test: FAIL: $*" >&2
  exit 1
}

bash "$source_dir/bench/calibration/run.sh" --smoke --out "$tmp/out" >"$tmp/run.log" 2>&1 ||
  fail "run.sh --smoke: $(tail -20 "$tmp/run.log")"
grep -q "day: done: .*, 0 API errors" "$tmp/out/day.log" ||
  fail "the day had API errors or did not finish: $(tail -5 "$tmp/out/day.log")"
/usr/bin/python3 - "$tmp/out" <<'PY' || fail "the results do not hold together (above)"
import csv, json, os, sqlite3, sys
out = sys.argv[1]
day = json.load(open(os.path.join(out, "day.json")))
truth = list(csv.DictReader(open(os.path.join(out, "truth.csv"))))
seconds = day["warmup"] + day["lengthSeconds"] + day["drain"]
nodes = {(r["world"], r["node"]) for r in truth}
assert len(nodes) == 2 * day["nodes"], nodes
for key in nodes:
    rows = [r for r in truth if (r["world"], r["node"]) == key]
    assert len(rows) == seconds, (key, len(rows), seconds)
    assert all(0 <= float(r[c]) <= 1 for r in rows for c in ("cpu", "memory", "psi_cpu")), key
decisions = list(csv.DictReader(open(os.path.join(out, "decisions.csv"))))
for world in day["worlds"]:
    mine = [d for d in decisions if d["world"] == world]
    assert mine, "no decisions in world %s" % world
    db = sqlite3.connect(os.path.join(out, "ledger-%s.db" % world))
    total, denied = db.execute("SELECT COUNT(*), SUM(allowed = 0) FROM decisions").fetchone()
    assert total == len(mine), (world, "ledger", total, "bench", len(mine))
    assert (denied or 0) == sum(d["allowed"] == "0" for d in mine), (world, denied)
    unjudged = db.execute("""SELECT COUNT(*) FROM decisions d WHERE NOT EXISTS (SELECT 1 FROM
        outcomes o WHERE o.decision_seq = d.seq AND o.kind IN ('node_trouble', 'node_fine'))""")
    assert unjudged.fetchone()[0] == 0, (world, "decisions without a node verdict")
    print("world %s: %d decisions, %d denied, all in the ledger and judged" % (
        world, total, denied or 0))
PY
report=$tmp/out/report.md
for want in "| off | " "| auto | " "The operators' own judgement" "GatePolicy day-auto"; do
  grep -qF -- "$want" "$report" || fail "the report lacks '$want': $(cat "$report")"
done
echo "calibration_day_test: ok"
