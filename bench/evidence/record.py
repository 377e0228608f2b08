#!/usr/bin/python3
"""The evidence experiment's recorder: real overloads of this machine, the real pi0-agent.

Runs the real pi0-agent (reading /proc at 1 s) and, on a randomized plan, injects overloads
with stress-ng into a cgroup of their own (`pi0-evidence`, memory limit = MemTotal minus a
margin) while ordinary background load runs in a sibling (`pi0-evidence-bg`). Polls the agent's
/fingerprint about 4 times a second and writes one CSV row per new agent round: the agent's
current value of every signal, the kernel's ground truth read at the same moment (PSI `some
avg10` of cpu, memory and io, in percent; the experiment cgroup's cumulative OOM-kill count),
and what the plan was doing (episode, kind, shape, phase). A JSON sidecar (FILE.meta.json) holds
the seed, the flags, machine facts and the episode list with parameters and times.

Episodes: kinds cpu, memory, io; shapes step (full size at once), ramp (a staircase of random
slope), bursts (on/off). Each injects for 25-60 s, then everything is stopped and at least 30 s
of recovery follow, then 30-90 s of calm. --calm-minutes of calm-only stretches are interleaved
for counting false alarms. The recording begins with >= 70 s of calm so the agent's window is
full.

Runs as root. Everything it starts is stopped and its cgroups and temporary files removed on
exit, also on Ctrl-C and SIGTERM. Exit codes: 0 recorded, 1 failed, 2 usage or a missing
prerequisite, 130/143 interrupted.

Usage: record.py --out FILE.csv [--episodes-per-kind N] [--calm-minutes M] [--seed S] [--smoke]
                 [--agent PATH] [--memory-margin SIZE] [--temp-dir DIR]
"""
import argparse, csv, json, os, random, re, shlex, shutil, signal, subprocess, sys, tempfile
import threading, time, urllib.request

HEADER = ["t", "cpu", "memory", "disk", "network", "psi_cpu", "psi_memory", "psi_io",
          "psi_cpu_avg10", "psi_memory_avg10", "psi_io_avg10", "oom_kills",
          "episode", "kind", "shape", "phase"]
SIGNALS = ["cpu", "memory", "disk", "network", "psi_cpu", "psi_memory", "psi_io"]
KINDS = ["cpu", "memory", "io"]
SHAPES = ["step", "ramp", "bursts"]
GROUP, BG_GROUP = "pi0-evidence", "pi0-evidence-bg"
CGROUP_ROOT = "/sys/fs/cgroup"
MIB, GIB = 2**20, 2**30


class Usage(Exception):
    """A usage error or a missing prerequisite (exit 2)."""


def log(msg):
    print(f"[record {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_size(text):
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", text, re.I)
    if not m:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size (e.g. 2G, 512M)")
    return int(float(m.group(1)) * {"": 1, "K": 2**10, "M": MIB, "G": GIB, "T": 2**40}[
        m.group(2).upper()])


# ---------------------------------------------------------------------------------------------
# The kernel: PSI, meminfo, cgroups

def read_psi_some_avg10(resource):
    """PSI `some avg10` of cpu, memory or io in percent, or None when unreadable."""
    try:
        with open(f"/proc/pressure/{resource}") as f:
            for line in f:
                if line.startswith("some "):
                    return float(line.split()[1].split("=")[1])
    except OSError:
        pass
    return None


def mem_total_bytes():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


def fs_type(path):
    """The file system type of the mount that holds path."""
    path = os.path.realpath(path)
    best, best_type = "", "?"
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            mnt = parts[1].replace("\\040", " ")
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, best_type = mnt, parts[2]
    return best_type


class Cgroups:
    """The experiment's cgroup and its background sibling, on cgroup v1 or v2.

    v1: a group of each name under cpu, memory and blkio; v2: one group of each name under the
    unified root. The experiment group's memory limit is set; the background group has none.
    `procs_files(group)` are the files a process writes its pid to, to join every hierarchy."""

    V1_CONTROLLERS = ("cpu", "memory", "blkio")

    def __init__(self):
        if os.path.exists(f"{CGROUP_ROOT}/memory/memory.limit_in_bytes"):
            self.version = 1
        elif os.path.exists(f"{CGROUP_ROOT}/cgroup.controllers"):
            self.version = 2
        else:
            raise Usage(f"no memory cgroup controller under {CGROUP_ROOT} (neither v1 nor v2)")
        self.created = []

    def dirs(self, group):
        if self.version == 1:
            return [f"{CGROUP_ROOT}/{c}/{group}" for c in self.V1_CONTROLLERS
                    if os.path.isdir(f"{CGROUP_ROOT}/{c}")]
        return [f"{CGROUP_ROOT}/{group}"]

    def memory_dir(self, group):
        return f"{CGROUP_ROOT}/memory/{group}" if self.version == 1 else f"{CGROUP_ROOT}/{group}"

    def procs_files(self, group):
        return [f"{d}/cgroup.procs" for d in self.dirs(group)]

    def create(self, memory_limit):
        if self.version == 2:
            with open(f"{CGROUP_ROOT}/cgroup.controllers") as f:
                available = f.read().split()
            if "memory" not in available:
                raise Usage("the cgroup v2 root has no memory controller")
            with open(f"{CGROUP_ROOT}/cgroup.subtree_control") as f:
                enabled = f.read().split()
            for c in ("memory", "cpu", "io"):
                if c in available and c not in enabled:
                    try:
                        with open(f"{CGROUP_ROOT}/cgroup.subtree_control", "w") as f:
                            f.write(f"+{c}")
                    except OSError as e:
                        log(f"could not enable the {c} controller for subgroups: {e}")
        for group in (GROUP, BG_GROUP):
            if self.pids(group):
                raise Usage(f"the cgroup {group} has processes: is another recording running? "
                            f"(pids {sorted(self.pids(group))[:5]})")
        for group in (GROUP, BG_GROUP):
            for d in self.dirs(group):
                if not os.path.isdir(d):  # an empty one left by a killed run is reused
                    os.mkdir(d)
                self.created.append(d)
        mem = self.memory_dir(GROUP)
        if self.version == 1:
            with open(f"{mem}/memory.limit_in_bytes", "w") as f:
                f.write(str(memory_limit))
        else:
            with open(f"{mem}/memory.max", "w") as f:
                f.write(str(memory_limit))
            if os.path.exists(f"{mem}/memory.swap.max"):
                with open(f"{mem}/memory.swap.max", "w") as f:
                    f.write("0")

    def oom_kills(self):
        """Cumulative OOM kills of processes in the experiment group."""
        mem = self.memory_dir(GROUP)
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            with open(f"{mem}/{name}") as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            pass
        return None

    def pids(self, group):
        pids = set()
        for procs in self.procs_files(group):
            try:
                with open(procs) as f:
                    pids.update(int(p) for p in f.read().split())
            except OSError:
                pass
        return pids

    def kill_all(self, group, grace=0.0):
        """Stops every process in group: SIGTERM and `grace` seconds first when grace > 0,
        then SIGKILL until the group is empty (gives up after 20 s)."""
        if grace > 0:
            for pid in self.pids(group):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            end = time.monotonic() + grace
            while self.pids(group) and time.monotonic() < end:
                time.sleep(0.05)
        end = time.monotonic() + 20
        while True:
            pids = self.pids(group)
            if not pids:
                return True
            if time.monotonic() > end:
                log(f"processes left in {group}: {sorted(pids)}")
                return False
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def remove(self):
        if not self.created:
            return  # not ours (e.g. another recording's groups)
        for group in (GROUP, BG_GROUP):
            self.kill_all(group)
        for d in reversed(self.created):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # the last killed processes are still exiting
            else:
                log(f"could not remove the cgroup {d}")
        self.created = []


# ---------------------------------------------------------------------------------------------
# Processes

class Launcher:
    """Starts stress-ng inside a cgroup (the shell joins it, then execs) and stops a group."""

    def __init__(self, cgroups, temp_dir):
        self.cgroups = cgroups
        self.temp_dir = temp_dir
        self.procs = []

    def start(self, group, args):
        joins = "".join(f"echo $$ > {shlex.quote(p)} || exit 97; "
                        for p in self.cgroups.procs_files(group))
        cmd = joins + "exec stress-ng -q --temp-path " + shlex.quote(self.temp_dir) + " " + \
            " ".join(shlex.quote(a) for a in args)
        proc = subprocess.Popen(["sh", "-c", cmd], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, group, grace=1.5):
        self.cgroups.kill_all(group, grace)
        self.reap()
        if group == GROUP:  # stress-ng --hdd files of killed workers
            for name in os.listdir(self.temp_dir):
                path = os.path.join(self.temp_dir, name)
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else \
                    os.unlink(path)

    def reap(self):
        self.procs = [p for p in self.procs if p.poll() is None]
        reap_orphans({p.pid for p in self.procs})


def become_subreaper():
    """Orphans of the stress-ng processes we kill (their workers) become our children instead
    of init's, which may never reap them here."""
    import ctypes
    PR_SET_CHILD_SUBREAPER = 36
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def reap_orphans(keep):
    """Waits for exited children that no Popen object owns (adopted orphans)."""
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in keep:
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == me:
            try:
                os.waitpid(int(name), os.WNOHANG)
            except ChildProcessError:
                pass


class Agent:
    """The real pi0-agent on 127.0.0.1 with an ephemeral port, logging to a file."""

    def __init__(self, path, log_path):
        self.log_path = log_path
        self.log_file = open(log_path, "w")
        self.proc = subprocess.Popen(
            [path, "--listen", "127.0.0.1:0", "--interval", "1s", "--window", "64",
             "--nvml-library", "none", "--gpu-probe-interval", "0"],
            stdin=subprocess.DEVNULL, stdout=self.log_file, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.port = None
        end = time.monotonic() + 15
        while self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pi0-agent exited with {self.proc.returncode}: "
                                   + self.log_tail())
            if time.monotonic() > end:
                raise RuntimeError("pi0-agent did not say it started: " + self.log_tail())
            with open(log_path) as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if entry.get("msg") == "pi0-agent started" and "port" in entry:
                        self.port = int(entry["port"])
            time.sleep(0.1)
        self.url = f"http://127.0.0.1:{self.port}/fingerprint"

    def log_tail(self):
        with open(self.log_path) as f:
            return f.read()[-2000:]

    def fingerprint(self):
        with urllib.request.urlopen(self.url, timeout=2) as resp:
            return json.load(resp)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


# ---------------------------------------------------------------------------------------------
# The recording: one row per agent round

class Recorder(threading.Thread):
    """Polls the agent every 0.25 s; on a new round writes a row with the kernel's ground truth
    read at that moment and the labels the plan set last (`label(...)`)."""

    def __init__(self, agent, cgroups, out, t0):
        super().__init__(daemon=True)
        self.agent, self.cgroups, self.t0 = agent, cgroups, t0
        self.file = open(out, "w", newline="")
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow(HEADER)
        self.lock = threading.Lock()
        self.labels = (0, "calm", "calm", "warmup")
        self.stopping = threading.Event()
        self.rows = 0
        self.poll_errors = 0
        self.error = None
        self.last_round = None

    def label(self, episode, kind, shape, phase):
        with self.lock:
            self.labels = (episode, kind, shape, phase)

    def now(self):
        return time.monotonic() - self.t0

    def run(self):
        try:
            self.loop()
        except Exception as e:  # surfaced by the plan's waits
            self.error = e

    def loop(self):
        next_poll = time.monotonic()
        consecutive_errors = 0
        while not self.stopping.is_set():
            try:
                fp = self.agent.fingerprint()
                consecutive_errors = 0
            except Exception as e:
                self.poll_errors += 1
                consecutive_errors += 1
                if consecutive_errors >= 40:  # 10 s without an answer
                    raise RuntimeError(f"the agent stopped answering: {e}")
                fp = None
            if fp is not None and fp.get("timestamp") != self.last_round:
                self.last_round = fp.get("timestamp")
                self.write_row(fp)
            next_poll += 0.25
            delay = next_poll - time.monotonic()
            if delay > 0:
                self.stopping.wait(delay)
            else:
                next_poll = time.monotonic()

    def write_row(self, fp):
        t = self.now()
        psi = [read_psi_some_avg10(r) for r in ("cpu", "memory", "io")]
        ooms = self.cgroups.oom_kills()
        signals = fp.get("signals") or {}
        values = []
        for name in SIGNALS:
            v = (signals.get(name) or {}).get("current")
            values.append("" if v is None else f"{v:.6g}")
        with self.lock:
            episode, kind, shape, phase = self.labels
        self.writer.writerow([f"{t:.3f}", *values, *("" if p is None else f"{p:.2f}" for p in psi),
                              "" if ooms is None else ooms, episode, kind, shape, phase])
        self.file.flush()
        self.rows += 1

    def stop(self):
        self.stopping.set()
        if self.is_alive():
            self.join(5)
        self.file.close()


# ---------------------------------------------------------------------------------------------
# The plan

def plan_episodes(rng, args, nproc, limit):
    """The randomized episode list (parameters only; times are filled in while recording)."""
    if args.smoke:
        return [{"id": 1, "kind": "cpu", "shape": "step", "inject_s": 20.0, "recover_s": 15.0,
                 "calm_s": 5.0, "workers": 2 * nproc, "cpu_load": 100}]
    episodes = []
    for kind in args.kinds:
        for i in range(args.episodes_per_kind):
            episodes.append({"kind": kind, "shape": args.shapes[i % len(args.shapes)]})
    rng.shuffle(episodes)
    for n, ep in enumerate(episodes, 1):
        ep["id"] = n
        # Filling most of the node takes a memory storm 30-60 s here (see memory_args), so
        # memory episodes inject longer.
        lo, hi = (40, 75) if ep["kind"] == "memory" else (25, 60)
        ep["inject_s"] = round(rng.uniform(lo, hi), 1)
        ep["recover_s"] = round(rng.uniform(30, 45), 1)
        ep["calm_s"] = round(rng.uniform(30, 90), 1)
        ep.update(size_episode(rng, ep, nproc, limit))
    return episodes


def size_episode(rng, ep, nproc, limit):
    """Sizes, slopes and on/off timings of one episode."""
    kind, shape, dur = ep["kind"], ep["shape"], ep["inject_s"]
    p = {}
    if shape == "ramp":
        steps = rng.randint(3, 8)
        # A staircase of random slope: the whole ramp takes 50-100 % of the injection.
        p["step_s"] = [round(dur * rng.uniform(0.5, 1.0) / steps * rng.uniform(0.7, 1.3), 1)
                       for _ in range(steps)]
    if shape == "bursts":
        on_off, total = [], 0.0
        # A memory burst needs longer to grow (see memory_args).
        on_lo, on_hi = (10, 25) if kind == "memory" else (4, 12)
        while total < dur or len(on_off) < 3:
            on, off = round(rng.uniform(on_lo, on_hi), 1), round(rng.uniform(3, 10), 1)
            on_off.append([on, off])
            total += on + off
        p["on_off_s"] = on_off
        ep["inject_s"] = round(sum(a + b for a, b in on_off) - on_off[-1][1], 1)
    if kind == "cpu":
        if shape == "ramp":
            p["cpu_load"] = [rng.randint(40, 100) for _ in p["step_s"]]  # one worker per step
        else:
            p["workers"] = rng.randint(nproc, 3 * nproc)
            p["cpu_load"] = rng.randint(60, 100)
    elif kind == "memory":
        # Fractions of the cgroup limit. Below it the kernel shows no memory stall at all here
        # (no swap; the node keeps MemTotal - margin), so only the episodes past it, which
        # end in an OOM kill, are memory trouble: about half of the steps and ramps.
        lo, hi = {"step": (0.8, 1.2), "ramp": (0.85, 1.25), "bursts": (0.6, 1.1)}[shape]
        p["target_fraction"] = round(rng.uniform(lo, hi), 3)
        p["target_bytes"] = int(limit * p["target_fraction"])
        if shape == "ramp":
            p["chunk_bytes"] = p["target_bytes"] // len(p["step_s"])
    else:
        if shape == "ramp":
            p["hdd_bytes"] = [rng.choice([256, 384, 512, 768, 1024]) * MIB for _ in p["step_s"]]
        else:
            # One worker mostly writes into the page cache; two or more reach the disk.
            p["workers"] = rng.randint(1, 4)
            p["hdd_bytes"] = rng.choice([256, 384, 512, 768, 1024]) * MIB
    return p


def stress_args(kind, p, nproc):
    """stress-ng arguments for the full size of a step or one burst."""
    if kind == "cpu":
        return ["--cpu", str(p["workers"]), "--cpu-load", str(p["cpu_load"])]
    if kind == "memory":
        return memory_args(max(1, min(nproc, 4)), p["target_bytes"])
    return ["--hdd", str(p["workers"]), "--hdd-bytes", f"{p['hdd_bytes'] // MIB}M"]


def memory_args(workers, total):
    # Each worker fills its share once and holds it (--vm-hang 0): memory grows, not CPU; an
    # OOM-killed worker is not respawned (--oomable).
    # Transparent huge pages: first-touch page faults in a VM can hold a worker to ~100 MB/s,
    # too slow to fill the node in an episode; with them ~300 MB/s per worker here.
    # stress-ng shares --vm-bytes (and --hdd-bytes) among the workers.
    return ["--vm", str(workers), "--vm-bytes", f"{max(total // MIB, 1)}M", "--vm-keep",
            "--vm-hang", "0", "--vm-method", "write64", "--vm-madvise", "hugepage", "--oomable"]


def ramp_step_args(kind, p, i):
    if kind == "cpu":
        return ["--cpu", "1", "--cpu-load", str(p["cpu_load"][i])]
    if kind == "memory":
        return memory_args(1, p["chunk_bytes"])
    return ["--hdd", "1", "--hdd-bytes", f"{p['hdd_bytes'][i] // MIB}M"]


def calm_stretches(rng, args, episodes):
    """Calm-only stretches (seconds) to insert before the episode of each index (len + 1 slots:
    the last one is after every episode)."""
    total = 0 if args.smoke else args.calm_minutes * 60
    slots = [0.0] * (len(episodes) + 1)
    while total > 0:
        chunk = min(total, rng.uniform(120, 300))
        if total - chunk < 60:
            chunk = total
        slots[rng.randint(1, len(episodes))] += round(chunk, 1)
        total -= chunk
    return slots


class Plan:
    def __init__(self, args, recorder, launcher, nproc):
        self.args, self.rec, self.launcher, self.nproc = args, recorder, launcher, nproc
        # Background changes happen at times that depend on the run; their own generator
        # keeps the plan's draws from depending on them.
        self.rng = random.Random(f"background-{args.seed}")
        self.bg_next = 0.0

    def wait_until(self, t_end):
        """Sleeps until recording time t_end, keeping the background load going."""
        while True:
            if self.rec.error is not None:
                raise RuntimeError(f"recording failed: {self.rec.error}")
            if self.rec.agent.proc.poll() is not None:
                raise RuntimeError(f"pi0-agent exited with {self.rec.agent.proc.returncode}: "
                                   + self.rec.agent.log_tail())
            now = self.rec.now()
            if now >= self.bg_next and not self.args.smoke:
                self.change_background()
            if now >= t_end:
                return
            time.sleep(min(0.2, t_end - now))

    def change_background(self):
        # Ordinary load: one CPU worker at 5-40 %, changing every 10-30 s.
        self.launcher.stop(BG_GROUP, grace=0)
        load = self.rng.randint(5, 40)
        self.launcher.start(BG_GROUP, ["--cpu", "1", "--cpu-load", str(load)])
        self.bg_next = self.rec.now() + self.rng.uniform(10, 30)

    def calm(self, seconds, phase="calm"):
        self.rec.label(0, "calm", "calm", phase)
        self.wait_until(self.rec.now() + seconds)

    def episode(self, ep):
        kind, shape = ep["kind"], ep["shape"]
        L = self.launcher
        self.rec.label(ep["id"], kind, shape, "inject")
        start = self.rec.now()
        ep["inject_start_t"] = round(start, 3)
        actions = []
        if shape == "step":
            L.start(GROUP, stress_args(kind, ep, self.nproc))
            actions.append([round(start, 3), "start"])
            self.wait_until(start + ep["inject_s"])
        elif shape == "ramp":
            t = start
            for i, step in enumerate(ep["step_s"]):
                if self.rec.now() >= start + ep["inject_s"]:
                    break
                L.start(GROUP, ramp_step_args(kind, ep, i))
                actions.append([round(self.rec.now(), 3), f"step {i + 1}"])
                t += step
                self.wait_until(min(t, start + ep["inject_s"]))
            self.wait_until(start + ep["inject_s"])
        else:
            t = start
            for i, (on, off) in enumerate(ep["on_off_s"]):
                L.start(GROUP, stress_args(kind, ep, self.nproc))
                actions.append([round(self.rec.now(), 3), f"on {i + 1}"])
                t += on
                self.wait_until(t)
                if i + 1 == len(ep["on_off_s"]):
                    break
                L.stop(GROUP)
                actions.append([round(self.rec.now(), 3), f"off {i + 1}"])
                t += off
                self.wait_until(t)
        L.stop(GROUP)
        end = self.rec.now()
        ep["inject_end_t"] = round(end, 3)
        ep["actions"] = actions
        self.rec.label(ep["id"], kind, shape, "recover")
        self.wait_until(end + ep["recover_s"])
        ep["recover_end_t"] = round(self.rec.now(), 3)


def describe(ep):
    keys = [k for k in ("workers", "cpu_load", "target_fraction", "hdd_bytes") if k in ep]
    parts = []
    for k in keys:
        v = ep[k]
        if k == "hdd_bytes":
            v = [b // MIB for b in v] if isinstance(v, list) else v // MIB
            k = "hdd_MiB"
        parts.append(f"{k}={v}")
    if "step_s" in ep:
        parts.append(f"steps={len(ep['step_s'])}")
    if "on_off_s" in ep:
        parts.append(f"bursts={len(ep['on_off_s'])}")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(
        prog="record.py", description="Record the evidence experiment (see the module doc).")
    ap.add_argument("--out", required=True, help="the recording, a CSV file")
    ap.add_argument("--episodes-per-kind", type=int, default=12,
                    help="episodes of each kind (cpu, memory, io), shapes in turn (default 12)")
    ap.add_argument("--calm-minutes", type=float, default=10,
                    help="calm-only minutes, interleaved, for counting false alarms (default 10)")
    ap.add_argument("--seed", type=int, default=1, help="the plan's random seed (default 1)")
    ap.add_argument("--agent", default=os.environ.get(
        "PI0_AGENT", os.path.join(root, "build/release/agent/pi0-agent")),
        help="pi0-agent binary (default build/release/agent/pi0-agent, or $PI0_AGENT)")
    ap.add_argument("--memory-margin", type=parse_size, default=2 * GIB,
                    help="the experiment cgroup's memory limit is MemTotal minus this "
                         "(default 2G)")
    ap.add_argument("--temp-dir", default="/var/tmp",
                    help="where stress-ng's io files go; must be a real disk (default /var/tmp)")
    ap.add_argument("--warmup-seconds", type=float, default=75,
                    help="calm at the start; >= 70 fills the agent's 64-sample window")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    help="episode kinds to run, comma-separated (default cpu,memory,io)")
    ap.add_argument("--shapes", default=",".join(SHAPES),
                    help="episode shapes, comma-separated, taken in turn (default "
                         "step,ramp,bursts)")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the plan and its estimated duration, record nothing")
    ap.add_argument("--smoke", action="store_true",
                    help="one ~20 s cpu step episode with short calm (about 50 s in all)")
    args = ap.parse_args(argv)
    if args.episodes_per_kind < 1 and not args.smoke:
        raise Usage("--episodes-per-kind must be at least 1")
    args.kinds = [k for k in args.kinds.split(",") if k]
    if not args.kinds or any(k not in KINDS for k in args.kinds):
        raise Usage(f"--kinds takes a comma-separated subset of {','.join(KINDS)}")
    args.shapes = [k for k in args.shapes.split(",") if k]
    if not args.shapes or any(k not in SHAPES for k in args.shapes):
        raise Usage(f"--shapes takes a comma-separated subset of {','.join(SHAPES)}")
    if args.calm_minutes < 0:
        raise Usage("--calm-minutes must not be negative")
    if args.smoke:
        args.warmup_seconds = 10
    return args


def prerequisites(args):
    if os.geteuid() != 0:
        raise Usage("must run as root (it creates cgroups and sets a memory limit)")
    if not (os.path.isfile(args.agent) and os.access(args.agent, os.X_OK)):
        raise Usage(f"no pi0-agent binary at '{args.agent}'. Build it: scripts/build.sh release")
    if shutil.which("stress-ng") is None:
        raise Usage("no stress-ng. Install it: apt-get install stress-ng")
    for r in ("cpu", "memory", "io"):
        if read_psi_some_avg10(r) is None:
            raise Usage(f"no /proc/pressure/{r}: the kernel needs PSI (CONFIG_PSI, psi=1)")
    if not os.path.isdir(args.temp_dir):
        raise Usage(f"--temp-dir '{args.temp_dir}' is not a directory")
    if fs_type(args.temp_dir) in ("tmpfs", "ramfs"):
        raise Usage(f"--temp-dir '{args.temp_dir}' is in memory ({fs_type(args.temp_dir)}); "
                    "io load needs a real disk")


def main(argv):
    args = parse_args(argv)
    if not args.dry_run:
        prerequisites(args)
    rng = random.Random(args.seed)
    nproc = os.cpu_count() or 1
    total = mem_total_bytes()
    limit = total - args.memory_margin
    if limit < 256 * MIB:
        raise Usage(f"--memory-margin leaves {limit // MIB} MiB of {total // MIB} MiB")
    episodes = plan_episodes(rng, args, nproc, limit)
    stretches = calm_stretches(rng, args, episodes)
    estimate = args.warmup_seconds + sum(stretches) + sum(
        e["inject_s"] + e["recover_s"] + e["calm_s"] + 3 for e in episodes)
    log(f"plan: {len(episodes)} episodes, {sum(stretches) / 60:.1f} min calm-only, "
        f"seed {args.seed}; estimated {estimate / 60:.1f} min "
        f"(until about {time.strftime('%H:%M', time.localtime(time.time() + estimate))})")
    if args.dry_run:
        for ep in episodes:
            print(f"episode {ep['id']}: {ep['kind']} {ep['shape']}, inject {ep['inject_s']:.0f} s"
                  f", recover {ep['recover_s']:.0f} s, calm {ep['calm_s']:.0f} s "
                  f"({describe(ep)})")
        print(f"estimated duration: {estimate / 60:.1f} min")
        return 0
    cgroups = Cgroups()
    log(f"machine: {nproc} CPUs, MemTotal {total / GIB:.1f} GiB, cgroup v{cgroups.version}, "
        f"experiment memory limit {limit / GIB:.1f} GiB")

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    flags = dict(vars(args))
    for k in ("out", "agent"):  # no machine paths in a recording that may be committed
        path = os.path.abspath(flags[k])
        flags[k] = os.path.relpath(path, root) if path.startswith(root + "/") else \
            os.path.basename(path)
    meta = {"seed": args.seed, "flags": flags,
            "machine": {"nproc": nproc, "mem_total_bytes": total,
                        "kernel": os.uname().release, "cgroup_version": cgroups.version,
                        "memory_limit_bytes": limit},
            "interval_s": 1.0, "window": 64, "complete": False, "episodes": episodes,
            "calm_stretches": []}
    meta_path = args.out + ".meta.json" if not args.out.endswith(".csv") else \
        args.out[:-4] + ".meta.json"
    temp_dir = tempfile.mkdtemp(prefix="pi0-evidence.", dir=args.temp_dir)
    io_dir = os.path.join(temp_dir, "io")  # stress-ng's files, emptied after each injection
    os.mkdir(io_dir)
    agent = recorder = launcher = None
    interrupted = []

    def on_signal(signum, _frame):
        interrupted.append(signum)
        if len(interrupted) == 1:  # a second signal must not cut the clean-up short
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    become_subreaper()
    try:
        os.nice(-10)  # the recorder is the apparatus; the agent keeps the default priority
    except OSError:
        pass
    try:
        cgroups.create(limit)
        launcher = Launcher(cgroups, io_dir)
        agent = Agent(args.agent, os.path.join(temp_dir, "agent.log"))
        t0 = time.monotonic()
        meta["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        recorder = Recorder(agent, cgroups, args.out, t0)
        recorder.start()
        plan = Plan(args, recorder, launcher, nproc)
        log(f"warm-up: {args.warmup_seconds:.0f} s of calm (agent on port {agent.port})")
        plan.calm(args.warmup_seconds, phase="warmup")
        for i, ep in enumerate(episodes):
            if stretches[i] > 0:
                log(f"calm-only stretch: {stretches[i]:.0f} s")
                meta["calm_stretches"].append([round(recorder.now(), 3), stretches[i]])
                plan.calm(stretches[i])
            log(f"episode {ep['id']}/{len(episodes)}: {ep['kind']} {ep['shape']}, inject "
                f"{ep['inject_s']:.0f} s, recover {ep['recover_s']:.0f} s, calm "
                f"{ep['calm_s']:.0f} s ({describe(ep)}); t={recorder.now():.0f} s, "
                f"{recorder.rows} rows")
            oom_before = cgroups.oom_kills()
            plan.episode(ep)
            oom_after = cgroups.oom_kills()
            if oom_before is not None and oom_after is not None and oom_after > oom_before:
                ep["oom_kills"] = oom_after - oom_before
                log(f"episode {ep['id']}: {oom_after - oom_before} OOM kill(s)")
            plan.calm(ep["calm_s"])
        if stretches[-1] > 0:
            log(f"calm-only stretch: {stretches[-1]:.0f} s")
            meta["calm_stretches"].append([round(recorder.now(), 3), stretches[-1]])
            plan.calm(stretches[-1])
        meta["complete"] = True
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
    finally:
        if recorder is not None:
            recorder.stop()
            meta["rows"] = recorder.rows
            meta["poll_errors"] = recorder.poll_errors
            meta["duration_s"] = round(recorder.now(), 3)
        if launcher is not None:
            launcher.stop(GROUP, grace=0)
            launcher.stop(BG_GROUP, grace=0)
        cgroups.remove()
        if agent is not None:
            agent.stop()
        if launcher is not None:
            time.sleep(0.2)
            launcher.reap()
        shutil.rmtree(temp_dir, ignore_errors=True)
        if recorder is not None:
            with open(meta_path, "w") as f:
                json.dump(meta, f, indent=1)
    if interrupted:
        return 128 + interrupted[0]
    log(f"recorded {meta['rows']} rows in {meta['duration_s'] / 60:.1f} min to {args.out} "
        f"(and {meta_path})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Usage as e:
        print(f"record: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        print(f"record: failed: {e}", file=sys.stderr)
        sys.exit(1)
