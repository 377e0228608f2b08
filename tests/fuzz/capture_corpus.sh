#!/usr/bin/env bash
# Captures the seed corpus of admission_fuzz (tests/fuzz/corpus): real AdmissionReviews from the
# test bed's Kubernetes apiserver (tests/e2e), as pi0-webhook receives them.
#
# It starts the control plane, registers a recording HTTPS endpoint (python3 http.server with
# ssl; a CA and a serving certificate for 127.0.0.1 made with openssl; the caBundle in a
# ValidatingWebhookConfiguration) that saves every request body and answers "allowed", for:
# pods CREATE (admissionReviewVersions v1; v1beta1 for the namespace `legacy`), nodes CREATE and
# UPDATE, channels and shutdownmatrices CREATE and UPDATE. Then it makes the cluster do a bit of
# everything: Nodes (labels, taints, cordon); pods with several containers, init containers,
# requests and limits, GPUs (nvidia.com/gpu), nodeSelector, required node affinity (every
# operator, matchFields), tolerations, generateName, nodeName, a RuntimeClass's overhead, a
# server-side dry run, labels of Pi0's channels and its opt-out label; a Deployment, a
# StatefulSet, a DaemonSet and a Job whose controllers create pods; the example Channels and
# ShutdownMatrix (examples/resources) and odd ones the CRDs admit (dependency cycles, levels out
# of order, huge quantities, cells at the first level, ...), created and updated.
#
# Each captured body becomes OUT_DIR/<kind>-<operation>[-v1beta1]-NN.json (pod-create-01.json,
# channel-update-02.json, ...), in the order the apiserver sent them; the previous captured files
# there are replaced, other files (the hand-made malformed-*.json seeds) are kept.
# Usage: capture_corpus.sh SOURCE_DIR [OUT_DIR]   (OUT_DIR: SOURCE_DIR/tests/fuzz/corpus)
set -euo pipefail
source_dir=$(cd "${1:?usage: capture_corpus.sh SOURCE_DIR [OUT_DIR]}" && pwd)
out_dir=${2:-$source_dir/tests/fuzz/corpus}
# shellcheck source=tests/e2e/lib.sh
source "$source_dir/tests/e2e/lib.sh"
command -v openssl >/dev/null || e2e_fail "openssl is not installed"
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)

e2e_cluster_up
e2e_install_crds
work=$PI0_CLUSTER_DIR/capture
mkdir -p "$work/reviews"

e2e_make_certificates "$work"

# The recorder: saves each body as reviews/NNNN-PATH.json and allows the request.
port=$(e2e_free_port)
/usr/bin/python3 "$source_dir/tests/fuzz/capture_recorder.py" "$port" "$work/reviews" \
  "$work/tls.crt" "$work/tls.key" </dev/null >>"$work/recorder.log" 2>&1 &
recorder_pid=$!
e2e_at_exit "kill $recorder_pid 2>/dev/null || true"
e2e_at_exit "[[ -e $work/done ]] || tail -n 20 $work/recorder.log >&2 || true"
recorder_up() {
  curl -sf --noproxy '*' --cacert "$work/ca.crt" --max-time 2 -o /dev/null \
    "https://127.0.0.1:$port/healthz"
}
e2e_wait_for "the recording endpoint" 30 recorder_up

for ns in shop pi0-demo warned audit ml legacy; do e2e_create_namespace "$ns"; done
# 1.20 does not label namespaces with their name by itself.
kubectl label namespace legacy kubernetes.io/metadata.name=legacy --overwrite >/dev/null
kubectl label namespace warned stability.pi0.io/admission-mode=Warn --overwrite >/dev/null
kubectl label namespace audit stability.pi0.io/admission-mode=DryRun --overwrite >/dev/null

e2e_register_webhook pi0-capture "https://127.0.0.1:$port" --ca-bundle "$work/ca.crt" \
  --failure-policy Fail \
  --hook pods.capture.pi0.io pods \
  --hook legacy-pods.capture.pi0.io pods --path /validate-pods-v1beta1 --namespace legacy \
  --review-versions v1beta1 \
  --hook nodes.capture.pi0.io nodes \
  --hook channels.capture.pi0.io channels \
  --hook matrices.capture.pi0.io shutdownmatrices
# The configuration takes effect within a second or so: wait until a node's creation is seen.
e2e_create_node node-a 8 32Gi disk=ssd cores=8 zone=zone-a
node_seen() { compgen -G "$work/reviews/*-validate-nodes.json" >/dev/null; }
e2e_wait_for "the first review" 30 node_seen

e2e_create_node node-b 4 8Gi disk=hdd cores=4 zone=zone-b
e2e_create_node node-gpu 16 64Gi 4 pool=gpu cores=16 zone=zone-a
e2e_create_node node-cordoned 8 32Gi zone=zone-a
e2e_node_set_taint node-gpu dedicated NoSchedule
kubectl cordon node-cordoned >/dev/null
e2e_start_fake_kubelet

create() { # a YAML document on stdin; kubectl create, failing loudly
  local out
  out=$(kubectl create -f - 2>&1) || e2e_fail "kubectl create failed: $out"
}
apply() {
  local out
  out=$(kubectl apply -f - 2>&1) || e2e_fail "kubectl apply failed: $out"
}

# --- Pods ---------------------------------------------------------------------------------------
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: plain, namespace: shop, labels: {app: web}}
spec:
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 100m, memory: 64Mi}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  generateName: multi-
  namespace: shop
  labels: {app: shop, stability.pi0.io/channel: web}
  annotations: {note: "several containers, init containers, requests and limits"}
spec:
  initContainers:
    - name: migrate
      image: stand-in
      resources: {requests: {cpu: "2", memory: 256Mi}, limits: {cpu: "2", memory: 256Mi}}
    - {name: warm, image: stand-in, resources: {requests: {cpu: 100m, memory: 2Gi}}}
  containers:
    - {name: app, image: stand-in, resources: {requests: {cpu: 500m, memory: 1Gi}}}
    - {name: proxy, image: stand-in, resources: {requests: {cpu: "0.25", memory: 128M},
                                                 limits: {cpu: "1", memory: 512M}}}
    - {name: logs, image: stand-in}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: trainer, namespace: ml, labels: {app: trainer}}
spec:
  tolerations:
    - {key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}
  nodeSelector: {pool: gpu}
  containers:
    - name: train
      image: stand-in
      resources:
        requests: {cpu: "4", memory: 16Gi, nvidia.com/gpu: "2"}
        limits: {nvidia.com/gpu: "2"}
    - name: sidecar
      image: stand-in
      resources: {requests: {cpu: 50m, memory: 32Mi}, limits: {nvidia.com/gpu: 1}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {generateName: ssd-, namespace: shop}
spec:
  nodeSelector: {disk: ssd, kubernetes.io/os: linux}
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 200m, memory: 256Mi}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: pinned-b, namespace: shop}
spec:
  nodeSelector: {kubernetes.io/hostname: node-b}
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: "1", memory: 1Gi}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: affinity, namespace: shop}
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchExpressions:
              - {key: cores, operator: Gt, values: ["6"]}
              - {key: zone, operator: In, values: [zone-a, zone-b]}
              - {key: disk, operator: NotIn, values: [hdd]}
              - {key: pool, operator: DoesNotExist}
          - matchExpressions:
              - {key: cores, operator: Lt, values: ["3"]}
              - {key: disk, operator: Exists}
          - matchFields:
              - {key: metadata.name, operator: In, values: [node-b]}
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 10
          preference:
            matchExpressions: [{key: zone, operator: In, values: [zone-a]}]
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 300m, memory: 300Mi}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: stale-zone, namespace: shop}
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
          - matchFields:
              - {key: metadata.name, operator: NotIn, values: [node-a]}
            matchExpressions:
              - {key: zone, operator: In, values: [zone-c]}
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 100m}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {generateName: tolerant-, namespace: shop, labels: {app: tolerant}}
spec:
  tolerations:
    - {operator: Exists}
    - {key: node.kubernetes.io/unschedulable, operator: Exists, effect: NoSchedule}
    - {key: example.com/maintenance, operator: Equal, value: "true", effect: NoExecute,
       tolerationSeconds: 300}
    - {key: example.com/slow, effect: PreferNoSchedule}
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 10m, memory: 16Mi}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: on-node-gpu, namespace: shop}
spec:
  nodeName: node-gpu
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: "12", memory: 60Gi}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: big, namespace: shop}
spec:
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: "64", memory: 1Ti}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: batch-1, namespace: shop, labels: {app: batch, stability.pi0.io/channel: batch}}
spec:
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 100m, memory: 64Mi}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: api-1, namespace: shop, labels: {tier: api}}
spec:
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 800m, memory: 2Gi}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata:
  name: opted-out
  namespace: shop
  labels: {stability.pi0.io/admission: skip, stability.pi0.io/channel: batch}
spec:
  containers: [{name: c, image: stand-in}]
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: recommender, namespace: pi0-demo, labels: {app: recommendations, tier: ml}}
spec:
  containers:
    - {name: model, image: stand-in, resources: {requests: {cpu: "1", memory: 2Gi}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: warned, namespace: warned}
spec:
  nodeSelector: {kubernetes.io/hostname: node-b}
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: "3500m", memory: 7Gi}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: audited, namespace: audit}
spec:
  nodeSelector: {zone: nowhere}
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 1m, memory: "1"}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: system, namespace: kube-system}
spec:
  priorityClassName: system-node-critical
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 100m, memory: 100Mi}}}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: old-client, namespace: legacy}
spec:
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 250m, memory: 256Mi}}}
YAML
create <<'YAML'
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {name: sandboxed}
handler: sandboxed
overhead:
  podFixed: {cpu: 250m, memory: 160Mi}
YAML
create <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: sandboxed, namespace: shop}
spec:
  runtimeClassName: sandboxed
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 100m, memory: 64Mi}}}
YAML
out=$(kubectl create --dry-run=server -f - 2>&1 <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: dry-run, namespace: shop}
spec:
  containers:
    - {name: c, image: stand-in, resources: {requests: {cpu: 100m, memory: 64Mi}}}
YAML
) || e2e_fail "the server-side dry run failed: $out"

# --- Controllers' pods --------------------------------------------------------------------------
create <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web-deploy}}
  template:
    metadata: {labels: {app: web-deploy, stability.pi0.io/channel: web}}
    spec:
      containers:
        - {name: web, image: stand-in, resources: {requests: {cpu: 250m, memory: 256Mi}}}
YAML
create <<'YAML'
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db, stability.pi0.io/channel: db}}
    spec:
      containers:
        - {name: db, image: stand-in, resources: {requests: {cpu: 500m, memory: 1Gi}}}
YAML
create <<'YAML'
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: shop}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      tolerations: [{key: dedicated, operator: Exists}]
      containers:
        - {name: agent, image: stand-in, resources: {requests: {cpu: 50m, memory: 64Mi}}}
YAML
create <<'YAML'
apiVersion: batch/v1
kind: Job
metadata: {name: report, namespace: pi0-demo}
spec:
  template:
    metadata: {labels: {app: batch-reports, stability.pi0.io/channel: batch-reports}}
    spec:
      restartPolicy: Never
      containers:
        - {name: report, image: stand-in, resources: {requests: {cpu: 500m, memory: 512Mi}}}
YAML
pods_seen() { # COUNT: that many reviews of pods that a controller owns
  (($(grep -l '"ownerReferences"' "$work"/reviews/*-validate-pods.json 2>/dev/null | wc -l) >= $1))
}
# 2 ReplicaSet pods, 1 StatefulSet pod, 4 DaemonSet pods (one per node), 1 Job pod.
e2e_wait_for "the controllers' pods" 90 pods_seen 8

# --- Channels and matrices ----------------------------------------------------------------------
apply <"$source_dir/examples/resources/20-channels.yaml"
apply <"$source_dir/examples/resources/30-shutdownmatrix.yaml"
apply <<'YAML'
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: batch, namespace: shop}
spec: {targets: [{kind: Deployment, name: batch}]}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: web, namespace: shop}
spec:
  targets: [{name: web}]
  dependsOn: [{name: api}]
  buffer: {max: {cpu: "1", memory: 1Gi}}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: api, namespace: shop}
spec:
  targets: [{kind: Deployment, name: api}, {kind: StatefulSet, name: api-cache}]
  selector:
    matchLabels: {tier: api}
    matchExpressions:
      - {key: track, operator: NotIn, values: [canary]}
      - {key: legacy, operator: DoesNotExist}
  dependsOn: [{name: db}, {name: auth, namespace: security}]
  degradedReplicas: 0
  weights: {throughput: 0, reliability: 1, recovery: 0}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: db, namespace: shop}
spec: {critical: true, targets: [{kind: StatefulSet, name: db}], restoreTimeoutSeconds: 1}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: a, namespace: shop}
spec: {targets: [{name: a}], dependsOn: [{name: b}]}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: b, namespace: shop}
spec: {targets: [{name: b}], dependsOn: [{name: a}]}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: self, namespace: shop}
spec: {targets: [{name: self}], dependsOn: [{name: self, namespace: shop}]}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: huge, namespace: shop}
spec:
  targets: [{name: huge}]
  degradedReplicas: 2147483647
  restoreTimeoutSeconds: 9007199254740991
  throughput: {prometheusQuery: 'sum(rate(requests_total{app="huge"}[1m]))', max: 1e300}
  buffer: {max: {cpu: 999999999999999E, memory: 8E}}
---
apiVersion: stability.pi0.io/v1alpha1
kind: Channel
metadata: {name: tiny, namespace: shop}
spec:
  targets: []
  buffer: {max: {cpu: "0.0001", memory: "1e-3"}}
  weights: {throughput: 1, reliability: 1, recovery: 1}
YAML
# Updates: a change of each kind, so that UPDATE reviews carry object and oldObject.
kubectl patch channel web -n shop --type merge -p '{"spec":{"degradedReplicas":2}}' >/dev/null
kubectl patch channel a -n shop --type merge -p '{"spec":{"dependsOn":[]}}' >/dev/null
kubectl label channel batch -n shop team=batch >/dev/null
apply <<'YAML'
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: tight}
spec:
  levels: [{name: normal, upperBound: 0.5}, {name: critical}]
  rows: [{channel: {name: batch, namespace: shop}, critical: false,
          cells: [{level: critical, action: Shutdown, order: 0}]}]
---
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: open}
spec: {levels: [{name: only}], mode: DryRun}
---
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: disorder}
spec:
  levels: [{name: high, upperBound: 0.9}, {name: low, upperBound: 0.8}, {name: low2, upperBound: 0.8},
           {name: open}, {name: also-open}]
  rows:
    - channel: {name: db, namespace: shop}
      critical: true
      cells: [{level: high, action: Shutdown, order: 0}]
    - channel: {name: ghost, namespace: nowhere}
      cells: [{level: nowhere, action: Degrade, order: 3}, {level: high, action: Degrade, order: 3}]
    - channel: {name: web, namespace: shop}
      cells: [{level: open, action: Degrade, order: 0}, {level: low, action: Shutdown, order: 0}]
  loadSignal: {source: Prometheus, prometheusQuery: 'max(node_load1)', resources: [cpu]}
  stabilityThreshold: 1
  weights: {throughput: 0, reliability: 0, recovery: 0}
  totalBuffer: {cpu: 1E, memory: 0}
  hysteresis: {margin: 1, dwellSeconds: 0}
  stepIntervalSeconds: 2147483647
  restore: {backoffSeconds: 1, maxBackoffSeconds: 1}
---
apiVersion: stability.pi0.io/v1alpha1
kind: ShutdownMatrix
metadata: {name: cyclic}
spec:
  levels: [{name: normal, upperBound: 0.75}, {name: elevated, upperBound: 0.85}, {name: critical}]
  rows:
    - channel: {name: a, namespace: shop}
      cells: [{level: elevated, action: Degrade, order: 0}]
    - channel: {name: batch, namespace: shop}
      cells: [{level: elevated, action: Shutdown, order: 0}, {level: critical, action: Shutdown, order: 0}]
  mode: Enforce
YAML
kubectl patch shutdownmatrix default --type merge -p '{"spec":{"mode":"DryRun","stepIntervalSeconds":10}}' >/dev/null
kubectl patch shutdownmatrix tight --type merge \
  -p '{"spec":{"levels":[{"name":"normal","upperBound":0.9},{"name":"critical"}]}}' >/dev/null

# --- Collect ------------------------------------------------------------------------------------
sleep 1
kill "$recorder_pid" 2>/dev/null || true
/usr/bin/python3 - "$work/reviews" "$out_dir" <<'PY'
import collections, glob, json, os, re, sys

source, out = sys.argv[1], sys.argv[2]
for old in glob.glob(os.path.join(out, "*.json")):
    if re.match(r"(pod|node|channel|shutdownmatrix)-(create|update)(-v1beta1)?-\d+\.json$",
                os.path.basename(old)):
        os.remove(old)
counts = collections.Counter()
for path in sorted(glob.glob(os.path.join(source, "*.json"))):
    with open(path, "rb") as f:
        body = f.read()
    review = json.loads(body)
    request = review["request"]
    stem = "%s-%s" % (request["kind"]["kind"].lower(), request["operation"].lower())
    if review["apiVersion"].endswith("v1beta1"):
        stem += "-v1beta1"
    counts[stem] += 1
    with open(os.path.join(out, "%s-%02d.json" % (stem, counts[stem])), "wb") as f:
        f.write(body)
for stem, n in sorted(counts.items()):
    print("capture: %2d x %s" % (n, stem), file=sys.stderr)
PY
touch "$work/done"
e2e_log "PASS: $(find "$work/reviews" -name '*.json' | wc -l) reviews captured into $out_dir"
