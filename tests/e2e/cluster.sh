#!/usr/bin/env bash
# A real Kubernetes 1.20 control plane on 127.0.0.1 for Pi0's end-to-end tests: etcd,
# kube-apiserver, kube-controller-manager and kube-scheduler as plain processes, with generated
# certificates and a static token file. There are no kubelets: tests create Node objects and
# tests/e2e/fake_kubelet.py marks the pods bound to them Running and Ready (see lib.sh).
#
#   cluster.sh build            build (once) and cache kube-apiserver, kube-controller-manager and
#                               kube-scheduler 1.20.2 under ${XDG_CACHE_HOME:-~/.cache}/pi0
#   cluster.sh up [DIR]         start a control plane with its state in DIR (default: a new
#                               temporary directory); prints `export KUBECONFIG=... PI0_...` on
#                               stdout, so `eval "$(tests/e2e/cluster.sh up)"` works
#   cluster.sh env [DIR]        print the environment of a running cluster again
#   cluster.sh status [DIR]     show which components run
#   cluster.sh stop COMPONENT [DIR]   kill -9 one component (apiserver, controller-manager,
#                                     scheduler, etcd)
#   cluster.sh start COMPONENT [DIR]  start it again on the same ports and wait until it is ready
#   cluster.sh down [DIR]       stop every process `up` started and remove DIR (idempotent)
#
# DIR defaults to $PI0_CLUSTER_DIR for env, status, stop, start and down. Progress goes to stderr;
# stdout carries only what `up` and `env` print. Every component logs to DIR/logs/NAME.log.
set -euo pipefail

readonly K8S_VERSION=1.20.2
# Debian bookworm's source package: 1.20.2 with its vendored Go modules.
readonly K8S_DEB_VERSION=1.20.5+really1.20.2-1.1+deb12u1
# Go 1.15 from Debian bullseye. Go 1.19 (bookworm) builds the tree too, but the resulting
# kube-apiserver crashes in github.com/modern-go/reflect2.
readonly GO_SUITE=bullseye
readonly GO_PACKAGES=(golang-1.15-go golang-1.15-src)
readonly GO_ROOT_IN_DEB=usr/lib/go-1.15
readonly BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)
# Start order; `down` stops them in the reverse order.
readonly COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler)
readonly PYTHON=/usr/bin/python3

self=$(realpath -- "${BASH_SOURCE[0]}")
cache_root=${XDG_CACHE_HOME:-$HOME/.cache}/pi0
cache_dir=$cache_root/kubernetes-$K8S_VERSION
bin_dir=$cache_dir/bin

log() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() {
  printf 'cluster.sh: error: %s\n' "$*" >&2
  exit 1
}

# need COMMAND PACKAGE: fails with what to install when COMMAND is missing.
need() {
  command -v "$1" >/dev/null 2>&1 ||
    die "'$1' not found: install the Debian package $2 (scripts/setup.sh does)"
}

# ---------------------------------------------------------------------------------------------
# build

binary_ok() {
  local out
  [[ -x $bin_dir/$1 ]] || return 1
  out=$("$bin_dir/$1" --version 2>&1) || return 1
  [[ $out == *"v$K8S_VERSION"* ]]
}

cache_ok() {
  local b
  for b in "${BINARIES[@]}"; do
    binary_ok "$b" || return 1
  done
}

# Writes deb822 sources to stdout, derived from the machine's own apt configuration (so no
# mirror is named here): a deb-src entry for every configured deb entry (for `apt-get source`),
# and a deb entry for suite $GO_SUITE on every archive that serves the system's own release.
derive_apt_sources() {
  local codename
  # shellcheck source=/dev/null
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [[ -n $codename ]] || die "cannot read VERSION_CODENAME from /etc/os-release (this wants Debian 12)"
  "$PYTHON" "$(dirname "$self")/apt_sources.py" "$codename" "$GO_SUITE"
}

# build_into WORK: fetches the sources and Go, builds the binaries into WORK/out/bin.
build_into() {
  local work=$1 src goroot b
  mkdir -p "$work/apt/sources.list.d" "$work/apt/lists/partial" "$work/apt/cache/archives/partial" \
    "$work/src" "$work/debs" "$work/go" "$work/gopath/src/k8s.io" "$work/home" "$work/tmp" \
    "$work/out/bin"
  derive_apt_sources >"$work/apt/sources.list.d/pi0-e2e.sources" ||
    die "cannot derive apt sources from /etc/apt"
  # A private apt configuration: its own sources, lists and cache; the system's are untouched.
  # Signature verification stays on (bookworm's debian-archive-keyring holds bullseye's keys).
  local apt_opts=(
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::Etc::SourceParts=$work/apt/sources.list.d"
    -o "Dir::State::Lists=$work/apt/lists"
    -o "Dir::Cache=$work/apt/cache"
    -o "Dir::Etc::Preferences=/dev/null"
    -o "Dir::Etc::PreferencesParts=/dev/null"
    -q
  )
  # Root downloads as _apt, which cannot write into the private temporary directory.
  if [[ $(id -u) -eq 0 ]]; then apt_opts+=(-o "APT::Sandbox::User=root"); fi

  log "build: apt-get update (private lists)"
  apt-get "${apt_opts[@]}" update >"$work/apt.log" 2>&1 ||
    { tail -n 20 "$work/apt.log" >&2; die "apt-get update with the derived sources failed"; }
  log "build: apt-get source kubernetes=$K8S_DEB_VERSION"
  (cd "$work/src" && apt-get "${apt_opts[@]}" source "kubernetes=$K8S_DEB_VERSION") \
    >>"$work/apt.log" 2>&1 ||
    { tail -n 20 "$work/apt.log" >&2; die "apt-get source kubernetes=$K8S_DEB_VERSION failed"; }
  log "build: apt-get download ${GO_PACKAGES[*]} ($GO_SUITE)"
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download "${GO_PACKAGES[@]}") \
    >>"$work/apt.log" 2>&1 ||
    { tail -n 20 "$work/apt.log" >&2; die "apt-get download ${GO_PACKAGES[*]} failed"; }
  for b in "$work"/debs/*.deb; do dpkg -x "$b" "$work/go"; done
  goroot=$work/go/$GO_ROOT_IN_DEB
  [[ -x $goroot/bin/go ]] || die "no Go in the unpacked ${GO_PACKAGES[*]} ($goroot/bin/go)"

  src=$(find "$work/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' -print -quit)
  [[ -n $src && -f $src/Makefile ]] || die "apt-get source left no kubernetes tree in $work/src"
  # As debian/rules does: a GOPATH with k8s.io/kubernetes linked to the tree, CGO off, and
  # GO111MODULE=off (hack/lib/init.sh sets it; the vendor/ tree is used). The version comes from
  # the tree itself (hack/lib/version.sh: an exported archive of tag v1.20.2).
  ln -s "$src" "$work/gopath/src/k8s.io/kubernetes"
  log "build: make WHAT='${BINARIES[*]/#/cmd/}' with $("$goroot/bin/go" version 2>/dev/null | cut -d' ' -f3) (about 5 minutes on 2 cores; log: $build_log)"
  run_child "$build_log" env -C "$work/gopath/src/k8s.io/kubernetes" -i \
    PATH="$goroot/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME="$work/home" \
    TMPDIR="$work/tmp" LANG=C.UTF-8 GOROOT="$goroot" GOPATH="$work/gopath" \
    GOCACHE="$work/gocache" CGO_ENABLED=0 GO111MODULE=off GOFLAGS= GOPROXY=off \
    make WHAT="${BINARIES[*]/#/cmd/}" || {
    tail -n 40 "$build_log" >&2
    die "make failed (whole log: $build_log)"
  }
  for b in "${BINARIES[@]}"; do
    cp "$src/_output/bin/$b" "$work/out/bin/$b" || die "make produced no $b"
  done
  printf 'kubernetes %s (Debian source %s), built with %s\n' "$K8S_VERSION" "$K8S_DEB_VERSION" \
    "$("$goroot/bin/go" version)" >"$work/out/BUILD-INFO"
}

# run_child LOG CMD...: runs CMD (output appended to LOG) in a process group of its own and
# waits for it. Waiting in the `wait` builtin (not on a foreground command) lets a TERM or INT
# reach the trap at once, and the trap stops the whole group (make and its compilers), not only
# this shell.
child_pgid=""
run_child() {
  local rc=0 log=$1
  shift
  setsid "$@" </dev/null >>"$log" 2>&1 &
  child_pgid=$!
  wait "$child_pgid" || rc=$?
  child_pgid=""
  return "$rc"
}

# shellcheck disable=SC2317 # a trap handler
on_build_signal() {
  if [[ -n $child_pgid ]]; then
    kill -TERM -- "-$child_pgid" 2>/dev/null || true
    wait "$child_pgid" 2>/dev/null || true
  fi
  log "build: interrupted; nothing was cached"
  exit "$1"
}

cmd_build() {
  if cache_ok; then
    log "build: kubernetes $K8S_VERSION binaries are cached in $bin_dir"
    return 0
  fi
  need apt-get apt
  need dpkg-source dpkg-dev
  need make build-essential
  need rsync rsync
  need xz xz-utils
  need flock util-linux
  [[ -x $PYTHON ]] || die "$PYTHON not found: install the Debian package python3 (scripts/setup.sh does)"
  mkdir -p "$cache_root"
  local lock_fd
  exec {lock_fd}>"$cache_root/.kubernetes-$K8S_VERSION.lock"
  if ! flock -n "$lock_fd"; then
    log "build: another build of kubernetes $K8S_VERSION is running; waiting for it"
    flock "$lock_fd"
  fi
  if cache_ok; then
    log "build: kubernetes $K8S_VERSION binaries are cached in $bin_dir (built meanwhile)"
    return 0
  fi
  # Holding the lock: what is left of an interrupted build is garbage.
  rm -rf "$cache_root/.build-$K8S_VERSION".*
  local avail_kb
  avail_kb=$(df -Pk "$cache_root" | awk 'NR == 2 { print $4 }')
  ((avail_kb > 4 * 1024 * 1024)) ||
    die "build needs about 4 GiB free under $cache_root (has $((avail_kb / 1024)) MiB)"

  build_work=$(mktemp -d "$cache_root/.build-$K8S_VERSION.XXXXXX")
  build_log=$cache_root/kubernetes-$K8S_VERSION.build.log
  : >"$build_log"
  trap 'rm -rf "$build_work" 2>/dev/null || true' EXIT
  trap 'on_build_signal 130' INT
  trap 'on_build_signal 143' TERM
  local started=$SECONDS
  log "build: building kubernetes $K8S_VERSION in $build_work"
  build_into "$build_work"
  # Atomic publication: the cache directory appears complete or not at all.
  rm -rf "$cache_dir"
  mv "$build_work/out" "$cache_dir"
  cache_ok || die "the built binaries do not report v$K8S_VERSION (see $build_log)"
  log "build: done in $((SECONDS - started))s; binaries in $bin_dir"
}

# ---------------------------------------------------------------------------------------------
# cluster state: everything lives in $dir

# resolve_dir [DIR]: sets $dir from the argument or $PI0_CLUSTER_DIR.
resolve_dir() {
  local given=${1:-${PI0_CLUSTER_DIR:-}}
  [[ -n $given ]] || die "no cluster directory: pass DIR or set PI0_CLUSTER_DIR"
  dir=$(realpath -m -- "$given")
}

require_cluster_dir() {
  [[ -f $dir/.pi0-cluster ]] || die "$dir is not a cluster directory (no .pi0-cluster marker)"
}

load_state() {
  require_cluster_dir
  # shellcheck source=/dev/null
  . "$dir/state"
}

# free_ports N: N distinct free TCP ports on 127.0.0.1, one a line, chosen at random below the
# kernel's ephemeral range (ip_local_port_range): outgoing connections never take those, so a
# port stays free while `stop apiserver` / `start apiserver` restarts on it.
free_ports() {
  "$PYTHON" "$(dirname "$self")/free_ports.py" "$1"
}

write_state() {
  cat >"$dir/state" <<EOF
etcd_client_port=$etcd_client_port
etcd_peer_port=$etcd_peer_port
apiserver_port=$apiserver_port
controller_manager_port=$controller_manager_port
scheduler_port=$scheduler_port
admin_token=$admin_token
EOF
}

random_token() { openssl rand -hex 24; }

# make_pki: a CA; the apiserver's serving certificate (also serves the controller-manager's and
# the scheduler's health endpoints); a service-account key pair; an admin client certificate;
# the front proxy's client certificate (aggregation layer, and the request-header CA that the
# controller-manager's and the scheduler's delegated authentication look for).
make_pki() {
  pki=$dir/pki
  mkdir -p "$pki"
  cat >"$pki/serving.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1
EOF
  cat >"$pki/client.ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
  pki_openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 -keyout ca.key -out ca.crt \
    -subj "/CN=pi0-e2e-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
  pki_cert apiserver "/CN=kube-apiserver" serving.ext
  pki_cert admin "/O=system:masters/CN=pi0-e2e-admin" client.ext
  pki_cert front-proxy-client "/CN=front-proxy-client" client.ext
  pki_openssl genrsa -out sa.key 2048
  pki_openssl rsa -in sa.key -pubout -out sa.pub
  rm -f "$pki"/*.csr
  chmod 644 "$pki"/*.crt "$pki/sa.pub"
}

# pki_openssl ARGS...: openssl in $pki, keys private; fails with openssl's message.
pki_openssl() {
  local out
  out=$(cd "$pki" && umask 077 && openssl "$@" 2>&1) || die "openssl $* failed in $pki: $out"
}

# pki_cert NAME SUBJECT EXTFILE: NAME.key and NAME.crt signed by the CA.
pki_cert() {
  pki_openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2"
  pki_openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
    -days 3650 -extfile "$3" -out "$1.crt"
}

# write_kubeconfig FILE CA_FORM USER_FORM [TOKEN]: CA_FORM is file or data; USER_FORM is token,
# cert (file paths) or cert-data.
write_kubeconfig() {
  local file=$1 ca_form=$2 user_form=$3 token=${4:-} ca_line user_lines
  if [[ $ca_form == data ]]; then
    ca_line="certificate-authority-data: $(base64 -w0 <"$dir/pki/ca.crt")"
  else
    ca_line="certificate-authority: $dir/pki/ca.crt"
  fi
  case $user_form in
    token) user_lines="    token: $token" ;;
    cert)
      user_lines="    client-certificate: $dir/pki/admin.crt
    client-key: $dir/pki/admin.key"
      ;;
    cert-data)
      user_lines="    client-certificate-data: $(base64 -w0 <"$dir/pki/admin.crt")
    client-key-data: $(base64 -w0 <"$dir/pki/admin.key")"
      ;;
  esac
  (
    umask 077
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: pi0-e2e
  cluster:
    server: https://127.0.0.1:$apiserver_port
    $ca_line
users:
- name: pi0-e2e-user
  user:
$user_lines
contexts:
- name: pi0-e2e
  context:
    cluster: pi0-e2e
    user: pi0-e2e-user
current-context: pi0-e2e
EOF
  )
}

write_kubeconfigs() {
  write_kubeconfig "$dir/kubeconfig" file token "$admin_token"
  write_kubeconfig "$dir/kubeconfig-data" data token "$admin_token"
  write_kubeconfig "$dir/kubeconfig-cert" file cert
  write_kubeconfig "$dir/kubeconfig-cert-data" data cert-data
  write_kubeconfig "$dir/kube-controller-manager.kubeconfig" file token "$controller_manager_token"
  write_kubeconfig "$dir/kube-scheduler.kubeconfig" file token "$scheduler_token"
}

write_env() {
  {
    printf 'export KUBECONFIG=%q' "$dir/kubeconfig"
    printf ' PI0_CLUSTER_DIR=%q' "$dir"
    printf ' PI0_APISERVER=%q' "https://127.0.0.1:$apiserver_port"
    printf ' PI0_TOKEN=%q' "$admin_token"
    printf ' PI0_CA_FILE=%q\n' "$dir/pki/ca.crt"
  } >"$dir/env"
}

# ---------------------------------------------------------------------------------------------
# components

component_name() {
  case $1 in
    etcd) echo etcd ;;
    apiserver | kube-apiserver) echo kube-apiserver ;;
    controller-manager | kube-controller-manager) echo kube-controller-manager ;;
    scheduler | kube-scheduler) echo kube-scheduler ;;
    *) die "unknown component '$1' (want apiserver, controller-manager, scheduler or etcd)" ;;
  esac
}

# component_argv NAME: sets the array argv to NAME's command line (from $dir and its state).
# Every command line names $dir, which is how `down` recognizes its processes.
component_argv() {
  local pki=$dir/pki
  case $1 in
    etcd)
      argv=(
        "$(command -v etcd)" --name pi0-e2e --data-dir "$dir/etcd"
        --listen-client-urls "http://127.0.0.1:$etcd_client_port"
        --advertise-client-urls "http://127.0.0.1:$etcd_client_port"
        --listen-peer-urls "http://127.0.0.1:$etcd_peer_port"
        --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port"
        --initial-cluster "pi0-e2e=http://127.0.0.1:$etcd_peer_port"
        --initial-cluster-state new --initial-cluster-token "pi0-e2e-$etcd_peer_port"
        --logger zap --log-level warn
      )
      ;;
    kube-apiserver)
      # --endpoint-reconciler-type=none: the `kubernetes` Service's endpoints would be
      # 127.0.0.1, which Endpoints validation rejects (loopback), so the reconciler would fail
      # in a loop. Nothing in the tests reaches the apiserver through that Service.
      argv=(
        "$bin_dir/kube-apiserver"
        --advertise-address 127.0.0.1 --bind-address 127.0.0.1
        --secure-port "$apiserver_port" --insecure-port 0
        --etcd-servers "http://127.0.0.1:$etcd_client_port"
        --cert-dir "$dir/apiserver-certs"
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key"
        --client-ca-file "$pki/ca.crt"
        --requestheader-client-ca-file "$pki/ca.crt"
        --requestheader-allowed-names front-proxy-client
        --requestheader-username-headers X-Remote-User
        --requestheader-group-headers X-Remote-Group
        --requestheader-extra-headers-prefix X-Remote-Extra-
        --proxy-client-cert-file "$pki/front-proxy-client.crt"
        --proxy-client-key-file "$pki/front-proxy-client.key"
        --token-auth-file "$dir/tokens.csv"
        --authorization-mode 'Node,RBAC'
        --service-account-issuer https://kubernetes.default.svc.cluster.local
        --service-account-signing-key-file "$pki/sa.key"
        --service-account-key-file "$pki/sa.pub"
        --service-cluster-ip-range 10.0.0.0/24
        --endpoint-reconciler-type none
        --allow-privileged=true
        --v 1
      )
      ;;
    kube-controller-manager)
      # --controllers=*,-nodelifecycle: there are no kubelets, so no Node ever heartbeats (no
      # Lease renewals, no lastHeartbeatTime updates). The node lifecycle controller would mark
      # every stand-in Node Unknown after 40s, taint it node.kubernetes.io/unreachable (NoSchedule
      # and NoExecute) and evict its pods after 5 minutes. Without it a Node stays exactly as the
      # test set it (lib.sh: e2e_create_node, e2e_set_node_ready).
      # --leader-elect=false (here and in the scheduler): with leader election a component exits
      # when it cannot renew its lease for 10s, so `cluster.sh stop apiserver` would kill it.
      argv=(
        "$bin_dir/kube-controller-manager"
        --kubeconfig "$dir/kube-controller-manager.kubeconfig"
        --authentication-kubeconfig "$dir/kube-controller-manager.kubeconfig"
        --authorization-kubeconfig "$dir/kube-controller-manager.kubeconfig"
        --bind-address 127.0.0.1 --secure-port "$controller_manager_port" --port 0
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key"
        --cert-dir "$dir/controller-manager-certs"
        --leader-elect=false
        --controllers '*,-nodelifecycle,-service,-cloud-node-lifecycle'
        --use-service-account-credentials=true
        --root-ca-file "$pki/ca.crt"
        --service-account-private-key-file "$pki/sa.key"
        --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key"
        --v 1
      )
      ;;
    kube-scheduler)
      argv=(
        "$bin_dir/kube-scheduler"
        --kubeconfig "$dir/kube-scheduler.kubeconfig"
        --authentication-kubeconfig "$dir/kube-scheduler.kubeconfig"
        --authorization-kubeconfig "$dir/kube-scheduler.kubeconfig"
        --bind-address 127.0.0.1 --secure-port "$scheduler_port" --port 0
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key"
        --cert-dir "$dir/scheduler-certs"
        --leader-elect=false
        --v 1
      )
      ;;
  esac
}

pid_file() { echo "$dir/pids/$1.pid"; }

# pid_alive PID [START]: PID exists and is not a zombie (nothing may reap orphans promptly
# here); with START, it also still has that start time (see proc_start), so it is the same
# process. A killed process loses its command line before it is gone: after a kill, wait on
# this, not on pid_is_ours.
pid_alive() {
  local stat fields
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -ra fields <<<"${stat##*) }" # fields[0] is field 3 (state), fields[19] field 22 (start)
  [[ ${fields[0]:-} != "" && ${fields[0]} != Z && ${fields[0]} != X ]] || return 1
  [[ -z ${2:-} || ${fields[19]:-} == "$2" ]]
}

# proc_start PID: PID's start time (clock ticks since boot).
proc_start() {
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -ra fields <<<"${stat##*) }"
  echo "${fields[19]}"
}

# kill_and_wait PID SIGNAL TIMEOUT_S: sends SIGNAL; 0 once PID is gone, 1 if it still runs after
# TIMEOUT_S.
kill_and_wait() {
  local pid=$1 start deadline=$((SECONDS + $3))
  start=$(proc_start "$pid") || return 0
  kill -"$2" "$pid" 2>/dev/null || true
  while pid_alive "$pid" "$start"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# pid_is_ours PID: PID is alive and its command line names $dir.
pid_is_ours() {
  local cmdline
  pid_alive "$1" || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  [[ $cmdline == *"$dir/"* ]]
}

# component_pid NAME: prints the pid of NAME when it runs (and is ours).
component_pid() {
  local f pid
  f=$(pid_file "$1")
  [[ -f $f ]] || return 1
  pid=$(<"$f")
  pid_is_ours "$pid" || return 1
  echo "$pid"
}

# launch NAME: starts NAME detached (own session, stdin/stdout/stderr not inherited, so
# `$(cluster.sh up)` returns) and records its pid. Sets $launch_log_offset.
launch() {
  local name=$1 log=$dir/logs/$1.log
  component_argv "$name"
  mkdir -p "$dir/logs" "$dir/pids"
  touch "$log"
  printf '=== %s cluster.sh: starting %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" >>"$log"
  launch_log_offset=$(stat -c %s "$log")
  (
    # The apiserver calls admission webhooks on 127.0.0.1; no proxy must get in the way.
    unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
    exec setsid "${argv[@]}" </dev/null >>"$log" 2>&1
  ) &
  echo $! >"$(pid_file "$name")"
  launched+=($!)
}

# probe NAME: succeeds when NAME answers as ready.
probe() {
  local out
  case $1 in
    etcd)
      out=$(curl -fsS --noproxy '*' --max-time 2 "http://127.0.0.1:$etcd_client_port/health" 2>/dev/null) &&
        [[ $out == *'"health":"true"'* ]]
      ;;
    kube-apiserver)
      out=$(curl -fsS --noproxy '*' --max-time 2 --cacert "$dir/pki/ca.crt" \
        -H "Authorization: Bearer $admin_token" \
        "https://127.0.0.1:$apiserver_port/readyz" 2>/dev/null) && [[ $out == ok ]]
      ;;
    kube-controller-manager)
      out=$(curl -fsS --noproxy '*' --max-time 2 --cacert "$dir/pki/ca.crt" \
        "https://127.0.0.1:$controller_manager_port/healthz" 2>/dev/null) && [[ $out == ok ]]
      ;;
    kube-scheduler)
      out=$(curl -fsS --noproxy '*' --max-time 2 --cacert "$dir/pki/ca.crt" \
        "https://127.0.0.1:$scheduler_port/healthz" 2>/dev/null) && [[ $out == ok ]]
      ;;
  esac
}

# wait_ready NAME TIMEOUT_S: 0 ready; 1 timed out; 2 the process exited (3: because a port was
# taken, which `up` answers with new ports).
wait_ready() {
  local name=$1 deadline=$((SECONDS + $2)) pid
  pid=$(<"$(pid_file "$name")")
  while ((SECONDS < deadline)); do
    # Alive, not "ours": on a busy machine the child may not have exec'd the component yet (its
    # command line is still this script's). It is our child, so its pid cannot be reused.
    if ! pid_alive "$pid"; then
      if grep -q -i 'address already in use' \
        < <(tail -c +"$((launch_log_offset + 1))" "$dir/logs/$name.log"); then
        return 3
      fi
      return 2
    fi
    if probe "$name"; then return 0; fi
    sleep 0.3
  done
  return 1
}

print_log_tail() {
  local log=$dir/logs/$1.log
  if [[ -s $log ]]; then
    log "last lines of $log:"
    tail -n 30 "$log" | sed 's/^/    /' >&2
  fi
}

# start_component NAME TIMEOUT_S: launches NAME and waits until it is ready; fails with its log.
start_component() {
  local name=$1 rc=0
  launch "$name"
  wait_ready "$name" "$2" || rc=$?
  case $rc in
    0) log "$name is ready (pid $(<"$(pid_file "$name")"))" ;;
    1) print_log_tail "$name"; die "$name did not become ready in $2s" ;;
    *) print_log_tail "$name"; die "$name exited while starting" ;;
  esac
}

# stop_components TIMEOUT_S NAME...: SIGTERM to each running NAME, SIGKILL after TIMEOUT_S.
stop_components() {
  local timeout=$1 name pid start deadline
  shift
  local pids=() starts=() i
  for name in "$@"; do
    if pid=$(component_pid "$name") && start=$(proc_start "$pid"); then
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
      starts+=("$start")
    fi
    rm -f "$(pid_file "$name")"
  done
  deadline=$((SECONDS + timeout))
  for i in "${!pids[@]}"; do
    while pid_alive "${pids[i]}" "${starts[i]}" && ((SECONDS < deadline)); do sleep 0.1; done
    if pid_alive "${pids[i]}" "${starts[i]}"; then
      log "pid ${pids[i]} did not stop on SIGTERM in ${timeout}s; sending SIGKILL"
      kill_and_wait "${pids[i]}" KILL 30 || log "pid ${pids[i]} survives SIGKILL"
    fi
  done
}

# ---------------------------------------------------------------------------------------------
# commands

up_created_dir=""
up_done=0
launched=()
up_failing=""

# shellcheck disable=SC2317 # a trap handler
on_up_exit() {
  local status=$?
  ((up_done)) && return
  log "up failed (status $status); stopping what was started"
  # The failing component's log, unless `up` was interrupted (SIGINT, SIGTERM).
  if [[ -n $up_failing && $status -ne 130 && $status -ne 143 ]]; then
    print_log_tail "$up_failing"
  fi
  # Every process this `up` launched, newest first: they are its children, so a pid is theirs
  # even before the component's exec (pid_is_ours would miss one caught in that moment).
  local i
  for ((i = ${#launched[@]} - 1; i >= 0; i--)); do
    if pid_alive "${launched[i]}"; then
      kill_and_wait "${launched[i]}" TERM 5 || kill_and_wait "${launched[i]}" KILL 30 || true
    fi
  done
  rm -f "$dir"/pids/*.pid
  if [[ -n $up_created_dir ]]; then
    rm -rf "$up_created_dir"
  else
    log "state and logs are kept in $dir; remove them with: $self down $dir"
  fi
}

cmd_up() {
  need etcd etcd-server
  need openssl openssl
  need curl curl
  need setsid util-linux
  [[ -x $PYTHON ]] || die "$PYTHON not found: install the Debian package python3 (scripts/setup.sh does)"
  # A process of its own: errexit would not apply in a function called as `f || die`.
  "$self" build || die "cannot build the control plane"

  if [[ $# -ge 1 ]]; then
    dir=$(realpath -m -- "$1")
    if [[ -e $dir ]]; then
      [[ -d $dir && -z $(ls -A "$dir") ]] || die "$dir exists and is not empty"
    else
      mkdir -p "$dir"
    fi
  else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/pi0-cluster.XXXXXX")
    up_created_dir=$dir
  fi
  trap on_up_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  local started=$SECONDS
  echo "kubernetes $K8S_VERSION" >"$dir/.pi0-cluster"
  log "up: starting a control plane in $dir"

  etcd_client_port="" etcd_peer_port="" apiserver_port="" controller_manager_port=""
  scheduler_port=""
  admin_token=$(random_token)
  controller_manager_token=$(random_token)
  scheduler_token=$(random_token)
  (
    umask 077
    cat >"$dir/tokens.csv" <<EOF
$admin_token,pi0-e2e-admin,pi0-e2e-admin,"system:masters"
$controller_manager_token,system:kube-controller-manager,system:kube-controller-manager
$scheduler_token,system:kube-scheduler,system:kube-scheduler
EOF
  )
  make_pki

  local name attempt rc timeout ports
  for name in "${COMPONENTS[@]}"; do
    up_failing=$name
    case $name in
      etcd) timeout=30 ;;
      kube-apiserver) timeout=120 ;;
      *) timeout=60 ;;
    esac
    for attempt in 1 2 3 4 5; do
      # Free ports are chosen just before each start; one taken in between is retried.
      mapfile -t ports < <(free_ports 2)
      case $name in
        etcd) etcd_client_port=${ports[0]} etcd_peer_port=${ports[1]} ;;
        kube-apiserver) apiserver_port=${ports[0]} ;;
        kube-controller-manager) controller_manager_port=${ports[0]} ;;
        kube-scheduler) scheduler_port=${ports[0]} ;;
      esac
      write_state
      if [[ $name == kube-controller-manager ]]; then write_kubeconfigs; fi
      launch "$name"
      rc=0
      wait_ready "$name" "$timeout" || rc=$?
      ((rc == 3)) || break
      log "$name: a port was taken meanwhile (attempt $attempt); retrying with new ports"
    done
    case $rc in
      0) log "$name is ready (pid $(<"$(pid_file "$name")"))" ;;
      1) die "$name did not become ready in ${timeout}s" ;;
      *) die "$name exited while starting" ;;
    esac
  done
  up_failing=kube-controller-manager
  wait_default_service_account 60
  up_failing=""
  write_env
  up_done=1
  trap - EXIT INT TERM
  log "up: ready in $((SECONDS - started))s: https://127.0.0.1:$apiserver_port (logs: $dir/logs)"
  cat "$dir/env"
}

# The default ServiceAccount of namespace default, with its token Secret (in 1.20 the
# ServiceAccount admission plugin rejects pods until the token exists).
wait_default_service_account() {
  local deadline=$((SECONDS + $1)) out
  while ((SECONDS < deadline)); do
    if out=$(curl -fsS --noproxy '*' --max-time 2 --cacert "$dir/pki/ca.crt" \
      -H "Authorization: Bearer $admin_token" \
      "https://127.0.0.1:$apiserver_port/api/v1/namespaces/default/serviceaccounts/default" \
      2>/dev/null) &&
      "$PYTHON" -c 'import json, sys; sys.exit(0 if json.load(sys.stdin).get("secrets") else 1)' \
        <<<"$out"; then
      log "the default ServiceAccount and its token exist"
      return 0
    fi
    sleep 0.3
  done
  die "no default ServiceAccount with a token in namespace default after $1s"
}

cmd_env() {
  resolve_dir "${1:-}"
  require_cluster_dir
  [[ -f $dir/env ]] || die "$dir has no env file (did up finish?)"
  cat "$dir/env"
}

cmd_status() {
  resolve_dir "${1:-}"
  load_state
  local name pid all=0
  for name in "${COMPONENTS[@]}"; do
    if pid=$(component_pid "$name"); then
      printf '%-24s running (pid %s)\n' "$name" "$pid"
    else
      printf '%-24s stopped\n' "$name"
      all=1
    fi
  done
  return $all
}

cmd_stop() {
  [[ $# -ge 1 ]] || die "usage: cluster.sh stop COMPONENT [DIR]"
  local name pid
  name=$(component_name "$1")
  resolve_dir "${2:-}"
  load_state
  pid=$(component_pid "$name") || die "$name is not running in $dir"
  kill_and_wait "$pid" KILL 30 || die "$name (pid $pid) survives SIGKILL"
  rm -f "$(pid_file "$name")"
  log "$name (pid $pid) killed"
}

cmd_start() {
  [[ $# -ge 1 ]] || die "usage: cluster.sh start COMPONENT [DIR]"
  local name pid timeout=60
  name=$(component_name "$1")
  resolve_dir "${2:-}"
  load_state
  if pid=$(component_pid "$name"); then die "$name is already running (pid $pid)"; fi
  [[ $name == kube-apiserver ]] && timeout=120
  start_component "$name" "$timeout"
}

cmd_down() {
  resolve_dir "${1:-}"
  if [[ ! -e $dir ]]; then
    log "down: $dir does not exist; nothing to do"
    return 0
  fi
  require_cluster_dir
  local reversed=() i
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do reversed+=("${COMPONENTS[i]}"); done
  # First what tests started beside the control plane and recorded in DIR/pids (lib.sh's fake
  # kubelet), then the components in the reverse order of their start.
  local f name extras=()
  for f in "$dir"/pids/*.pid; do
    [[ -e $f ]] || continue
    name=$(basename "$f" .pid)
    [[ " ${COMPONENTS[*]} " == *" $name "* ]] || extras+=("$name")
  done
  if ((${#extras[@]})); then stop_components 15 "${extras[@]}"; fi
  stop_components 15 "${reversed[@]}"
  rm -rf "$dir"
  log "down: stopped and removed $dir"
}

usage() {
  sed -n '2,/^set -euo/p' "$self" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

main() {
  [[ $# -ge 1 ]] || usage
  local cmd=$1
  shift
  case $cmd in
    build) cmd_build ;;
    up) cmd_up "$@" ;;
    env) cmd_env "$@" ;;
    status) cmd_status "$@" ;;
    stop) cmd_stop "$@" ;;
    start) cmd_start "$@" ;;
    down) cmd_down "$@" ;;
    -h | --help | help) usage ;;
    *) log "unknown command '$cmd'"; usage ;;
  esac
}

# On one line: bash has read all of it before main runs, so a cluster.sh rewritten meanwhile
# is never read from the middle.
main "$@"; exit
