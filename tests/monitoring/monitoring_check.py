#!/usr/bin/python3
"""Checks of Pi0's Grafana dashboards and Prometheus alerting rules (tests/monitoring).

  monitoring_check.py dashboards DASHBOARD_DIR
      static checks of every dashboard: JSON, uid = file name, the datasource variable used by
      every panel, target and query variable, variables defined where used, node variable on
      every agent query of the nodes dashboard, panel ids and grid positions.
  monitoring_check.py rules RULES_JSON TEST_FILE README
      RULES_JSON is Prometheus's /api/v1/rules answer for alerts/pi0.rules.yaml: every alert
      has a `for`, severity and component labels, summary, description and a runbook_url naming
      its section of dashboards/README.md; every alert has a firing and a not-firing unit test.
  monitoring_check.py live PROMETHEUS_URL DASHBOARD_DIR RULES_JSON METRICS_FILE...
      against a Prometheus scraping the three programs: every metric named in a panel, a
      variable or an alert is in what the programs expose (METRICS_FILE: their /metrics), every
      rule evaluates without error, every variable has values and every panel query returns
      data (except the queries listed in EXPECTED_EMPTY, each with the reason).

Exits 1 with one line per problem.
"""
import glob
import json
import os
import re
import sys
import urllib.parse
import urllib.request

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
BUILTINS = {"__rate_interval", "__range", "__interval", "__range_s", "__interval_ms"}
# What Grafana would put for its built-in variables, for a Prometheus scraping every second
# that has a few minutes of data.
BUILTIN_VALUES = {"__rate_interval": "15s", "__range": "5m", "__interval": "5s",
                  "__range_s": "300", "__interval_ms": "5000"}
# Panel queries that legitimately return nothing in the end-to-end scenario:
# {(dashboard uid, panel title, refId): reason}. A query listed here that does return data
# fails the test too, so that the list stays true.
EXPECTED_EMPTY = {}

problems = []


def problem(msg):
    problems.append(msg)


def load_dashboards(directory):
    boards = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                boards[os.path.basename(path)] = json.load(f)
        except ValueError as e:
            problem("%s: not valid JSON: %s" % (path, e))
    if not boards:
        problem("no dashboards (*.json) in %s" % directory)
    return boards


def panels_of(board):
    """Every panel, rows' nested panels included."""
    out = []
    for p in board.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def variable_query(v):
    q = v.get("query")
    return q.get("query", "") if isinstance(q, dict) else (q or "")


def queries(board):
    """(panel title, refId, expr) for every target of every panel."""
    for p in panels_of(board):
        for t in p.get("targets", []):
            yield p.get("title", "?"), t.get("refId", "?"), t.get("expr", "")


VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def used_variables(text):
    return {a or b for a, b in VAR_RE.findall(text)}


# --------------------------------------------------------------------------------------------
def check_static(directory):
    boards = load_dashboards(directory)
    uids = {}
    for name, b in boards.items():
        where = name
        uid = b.get("uid")
        if uid != name[:-len(".json")]:
            problem("%s: uid %r is not the file name without .json" % (where, uid))
        if uid in uids:
            problem("%s: uid %r also in %s" % (where, uid, uids[uid]))
        uids[uid] = name
        if not isinstance(b.get("schemaVersion"), int) or b["schemaVersion"] < 36:
            problem("%s: schemaVersion %r: want a current Grafana's (36 or later)"
                    % (where, b.get("schemaVersion")))
        if not str(b.get("title", "")).startswith("Pi0 / "):
            problem("%s: title %r does not start with 'Pi0 / '" % (where, b.get("title")))
        if "pi0" not in b.get("tags", []):
            problem("%s: no tag 'pi0' (the dashboards link each other by it)" % where)
        if b.get("id") is not None:
            problem("%s: id must be null (Grafana assigns it at import)" % where)
        variables = b.get("templating", {}).get("list", [])
        names = [v.get("name") for v in variables]
        ds = [v for v in variables if v.get("name") == "datasource"]
        if not ds or ds[0].get("type") != "datasource" or ds[0].get("query") != "prometheus":
            problem("%s: no variable 'datasource' of type datasource for prometheus" % where)
        for v in variables:
            if v.get("type") == "query":
                if v.get("datasource") != DATASOURCE:
                    problem("%s: variable %s does not query ${datasource}: %r"
                            % (where, v.get("name"), v.get("datasource")))
                if not variable_query(v).startswith("label_values("):
                    problem("%s: variable %s: expected a label_values() query"
                            % (where, v.get("name")))
                if v.get("includeAll") and v.get("allValue") != ".*":
                    problem("%s: variable %s: allValue must be .* (series without the label "
                            "still match)" % (where, v.get("name")))
        defined = set(names) | BUILTINS
        for v in variables:
            for u in used_variables(variable_query(v)) - defined:
                problem("%s: variable %s uses undefined $%s" % (where, v.get("name"), u))
        ids = set()
        cells = {}
        count = 0
        for p in panels_of(b):
            title = p.get("title", "?")
            pid = p.get("id")
            if pid in ids:
                problem("%s: panel id %r used twice" % (where, pid))
            ids.add(pid)
            g = p.get("gridPos", {})
            x, y, w, h = (g.get(k) for k in ("x", "y", "w", "h"))
            if None in (x, y, w, h) or x < 0 or w < 1 or x + w > 24 or h < 1:
                problem("%s: panel %r: bad gridPos %r" % (where, title, g))
            else:
                for cx in range(x, x + w):
                    for cy in range(y, y + h):
                        if (cx, cy) in cells:
                            problem("%s: panel %r overlaps panel %r"
                                    % (where, title, cells[(cx, cy)]))
                            break
                        cells[(cx, cy)] = title
                    else:
                        continue
                    break
            if p.get("type") == "row":
                continue
            count += 1
            if not title or title == "?":
                problem("%s: a panel without a title" % where)
            if not p.get("description"):
                problem("%s: panel %r has no description" % (where, title))
            if p.get("datasource") != DATASOURCE:
                problem("%s: panel %r: datasource %r, want %r"
                        % (where, title, p.get("datasource"), DATASOURCE))
            targets = p.get("targets", [])
            if not targets:
                problem("%s: panel %r has no query" % (where, title))
            for t in targets:
                if t.get("datasource") != DATASOURCE:
                    problem("%s: panel %r query %s: datasource %r, want %r"
                            % (where, title, t.get("refId"), t.get("datasource"), DATASOURCE))
                expr = t.get("expr", "")
                if not expr.strip():
                    problem("%s: panel %r query %s is empty" % (where, title, t.get("refId")))
                for u in used_variables(expr) - defined:
                    problem("%s: panel %r uses undefined $%s" % (where, title, u))
                # On the nodes dashboard every agent series is filtered by the node variable.
                if uid == "pi0-nodes" and re.search(r"pi0_(node|agent)_", expr):
                    for sel in re.findall(r"pi0_(?:node|agent)_\w+(\{[^}]*\})?", expr):
                        if 'node=~"$node"' not in sel:
                            problem("%s: panel %r: a series without node=~\"$node\": %s"
                                    % (where, title, expr))
                            break
        if count == 0:
            problem("%s: no panels" % where)
    required = {"pi0-overview": {"datasource", "matrix", "namespace", "channel"},
                "pi0-nodes": {"datasource", "node", "signal"},
                "pi0-admission": {"datasource", "endpoint"},
                "pi0-operator": {"datasource", "controller"}}
    for uid, want in required.items():
        if uid not in uids:
            problem("no dashboard with uid %s (file %s.json)" % (uid, uid))
            continue
        have = {v.get("name") for v in boards[uids[uid]]["templating"]["list"]}
        for v in sorted(want - have):
            problem("%s.json: no variable %r" % (uid, v))
    return boards


# --------------------------------------------------------------------------------------------
def alerting_rules(rules_json):
    with open(rules_json, encoding="utf-8") as f:
        doc = json.load(f)
    out = []
    for g in doc["data"]["groups"]:
        for r in g["rules"]:
            out.append((g["name"], r))
    return out


def readme_headings(readme):
    with open(readme, encoding="utf-8") as f:
        return {m.group(1).strip() for m in re.finditer(r"^### (.+)$", f.read(), re.M)}


def check_rules(rules_json, test_file, readme):
    rules = alerting_rules(rules_json)
    headings = readme_headings(readme)
    alerts = set()
    for group, r in rules:
        if r.get("type") != "alerting":
            continue
        name = r["name"]
        alerts.add(name)
        where = "alert %s (group %s)" % (name, group)
        if not r.get("duration", 0) > 0:
            problem("%s: no `for`" % where)
        labels = r.get("labels", {})
        if labels.get("severity") not in ("warning", "critical"):
            problem("%s: severity %r, want warning or critical" % (where, labels.get("severity")))
        if labels.get("component") not in ("agent", "operator", "webhook"):
            problem("%s: component %r" % (where, labels.get("component")))
        ann = r.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                problem("%s: no %s annotation" % (where, key))
        want = "dashboards/README.md#" + name.lower()
        if ann.get("runbook_url") != want:
            problem("%s: runbook_url %r, want %r" % (where, ann.get("runbook_url"), want))
        if name not in headings:
            problem("%s: dashboards/README.md has no section '### %s'" % (where, name))
    if not alerts:
        problem("no alerting rules loaded")
    # The unit tests: `alertname: X` followed by its `exp_alerts:` line.
    firing, quiet = {}, {}
    current = None
    with open(test_file, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            m = re.match(r"^\s*(?:- )?alertname:\s*(\S+)\s*$", line)
            if m:
                current = m.group(1)
                continue
            m = re.match(r"^\s*exp_alerts:\s*(.*?)\s*$", line)
            if m and current:
                (quiet if m.group(1) == "[]" else firing).setdefault(current, []).append(n)
                current = None
    for name in sorted(alerts):
        if name not in firing:
            problem("alert %s: no unit test where it fires" % name)
        if name not in quiet:
            problem("alert %s: no unit test where it does not fire" % name)
    for name in sorted((set(firing) | set(quiet)) - alerts):
        problem("the unit tests name an alert that does not exist: %s" % name)
    # Every alert section of the README names an existing alert.
    for h in sorted(headings):
        if h.startswith("Pi0") and " " not in h and h not in alerts:
            problem("dashboards/README.md documents an alert that does not exist: %s" % h)
    return alerts


# --------------------------------------------------------------------------------------------
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}


def metric_names(expr):
    """Metric names in a PromQL expression (or a label_values() variable query)."""
    m = re.match(r"^\s*label_values\((.*),\s*\w+\s*\)\s*$", expr)
    if m:
        expr = m.group(1)
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"'(?:[^'\\]|\\.)*'", "''", s)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\$\{?\w+\}?", " ", s)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        word = m.group(0)
        before = s[m.start() - 1] if m.start() > 0 else " "
        if before.isdigit() or before == ".":  # the exponent of 1e9
            continue
        if s[m.end():].lstrip().startswith("("):  # a function or an aggregation
            continue
        if word.lower() in KEYWORDS:
            continue
        names.add(word)
    return names


def exposed_names(files):
    names = set()
    for path in files:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if "pi0_" not in text:
            problem("%s: no pi0_ metric at all" % path)
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


class Prometheus:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, **params):
        query = urllib.parse.urlencode(params, doseq=True)
        with urllib.request.urlopen("%s%s?%s" % (self.url, path, query), timeout=10) as r:
            doc = json.load(r)
        if doc.get("status") != "success":
            raise RuntimeError("%s: %s" % (path, doc))
        return doc["data"]

    def query(self, expr):
        return self.get("/api/v1/query", query=expr)

    def label_values(self, label, match):
        return self.get("/api/v1/label/%s/values" % label, **{"match[]": match})


def substitute(expr, values):
    def repl(m):
        name = m.group(1) or m.group(2)
        return values.get(name, m.group(0))
    return VAR_RE.sub(repl, expr)


def check_live(url, directory, rules_json, metrics_files):
    prom = Prometheus(url)
    boards = load_dashboards(directory)
    exposed = exposed_names(metrics_files)
    rules = alerting_rules(rules_json)

    def check_names(where, expr):
        for name in sorted(metric_names(expr)):
            if not name.startswith("pi0_"):
                problem("%s: %s is not a Pi0 metric: %s" % (where, name, expr))
            elif name not in exposed:
                problem("%s: %s is not exposed by any of the programs" % (where, name))

    for group, r in rules:
        where = "rule %s" % r["name"]
        check_names(where, r["query"])
        if r.get("health") != "ok":
            problem("%s: health %r: %s" % (where, r.get("health"), r.get("lastError")))
    queried = 0
    for file_name, b in boards.items():
        uid = b.get("uid")
        values = dict(BUILTIN_VALUES)
        for v in b["templating"]["list"]:
            if v.get("type") != "query":
                continue
            q = variable_query(v)
            check_names("%s: variable %s" % (uid, v["name"]), q)
            m = re.match(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", q)
            selector = substitute(m.group(1), {k: ".*" for k in used_variables(m.group(1))})
            got = prom.label_values(m.group(2), selector)
            if not got:
                problem("%s: variable %s has no values (%s)" % (uid, v["name"], q))
                continue
            values[v["name"]] = ".*" if v.get("includeAll") else got[0]
            print("variable %s/%s: %s" % (uid, v["name"], ", ".join(got)))
        for title, ref, expr in queries(b):
            where = "%s: panel %r query %s" % (uid, title, ref)
            check_names(where, expr)
            concrete = substitute(expr, values)
            if "$" in concrete:
                problem("%s: unsubstituted variable in %s" % (where, concrete))
                continue
            try:
                result = prom.query(concrete)["result"]
            except Exception as e:  # a query Prometheus refuses
                problem("%s: %s: %s" % (where, concrete, e))
                continue
            queried += 1
            key = (uid, title, ref)
            if key in EXPECTED_EMPTY:
                if result:
                    problem("%s: listed as empty (%s) but returns %d series"
                            % (where, EXPECTED_EMPTY[key], len(result)))
                else:
                    print("empty as expected: %s (%s)" % (where, EXPECTED_EMPTY[key]))
            elif not result:
                problem("%s returns no data: %s" % (where, concrete))
            else:
                print("data: %s: %d series" % (where, len(result)))
    print("%d panel queries run against Prometheus" % queried)
    return queried


def main(argv):
    if len(argv) >= 2 and argv[1] == "dashboards" and len(argv) == 3:
        check_static(argv[2])
    elif len(argv) >= 2 and argv[1] == "rules" and len(argv) == 5:
        check_rules(argv[2], argv[3], argv[4])
    elif len(argv) >= 6 and argv[1] == "live":
        check_live(argv[2], argv[3], argv[4], argv[5:])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in problems:
        print("FAIL: " + p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
