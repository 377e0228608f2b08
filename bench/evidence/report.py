#!/usr/bin/python3
"""The evidence experiment's report: does Pi0's forecast see trouble coming better than static
thresholds? Reads replays (recordings run through pi0-forecast-replay) and writes report.md,
summary.json, episodes.png and roc.png; prints the main table.

Definitions (bench/evidence/README.md says the same at more length):
  trouble(t)  any PSI `some avg10` > --trouble-line (percent, default 20) or the experiment
              cgroup's OOM-kill count rose since the previous row;
  onset       a rising edge of trouble; an episode's onset is its first one in
              [inject start, inject end + 30 s]; an episode without one is "no trouble";
  lead        onset minus the first time in [onset - 60 s, onset + 30 s] the alarm is on
              (no alarm there = missed); flagged early = lead >= --min-lead (default 5 s);
  calm row    no load injected (warm-up, calm or recovery), no trouble, no onset within the
              next 60 s, more than 10 s after the last trouble row; a false alarm is a maximal
              run of consecutive calm rows with the alarm on, begun in calm or carried over
              from a storm for more than 10 s (the time a fall may take to show); the rate is
              per hour of calm rows;
  harmless    an injected storm the kernel took without trouble: counted apart, as the share
              of them in which the detector's alarm came on (no detector can know where a
              storm will stop, so this is not folded into the false-alarm rate).
Rows before every detector has values (the replay's windows not yet full) count for nothing.
Bootstrap: 1000 resamples, fixed seed, 95 % percentile intervals; episodes are resampled for
sensitivity and lead, 5-minute blocks of time for the false-alarm rate.

Usage: report.py [--out-dir DIR] [--trouble-line PCT] [--min-lead S] REPLAY.csv...
Several replays are reported together; their episode ids are kept apart.
Exit codes: 0 reported, 1 failed, 2 usage (a file that is not a replay, no episodes).
"""
import argparse, csv, json, math, os, sys
from dataclasses import dataclass, field

import numpy as np

UTIL = ["cpu", "memory", "disk"]
TROUBLE_SIGNALS = ["psi_cpu", "psi_memory", "psi_io", "memory"]  # what trouble is made of
CALM_PHASES = {"warmup", "calm", "recover"}  # no load injected
SIGNALS = ["cpu", "memory", "disk", "network", "psi_cpu", "psi_memory", "psi_io"]
PSI_TRUTH = ["psi_cpu_avg10", "psi_memory_avg10", "psi_io_avg10"]
KINDS = ["cpu", "memory", "io"]
ONSET_AFTER_INJECT_S = 30.0  # an episode's onset may come this long after its injection ends
LEAD_BEFORE_S, LEAD_AFTER_S = 60.0, 30.0  # the span searched for an alarm around an onset
CALM_LOOKAHEAD_S, CALM_GRACE_S = 60.0, 10.0
CLEAR_S = 10.0  # an alarm carried over from a storm may take this long to clear
BLOCK_S = 300.0  # bootstrap blocks of time for the false-alarm rate
RESAMPLES, SEED = 1000, 20261205


class Usage(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Detectors: one line each. `score(d)` is an array over rows (NaN = no value); the alarm is on
# where `score >= line` ("ge") or `score <= line` ("le"). `ready` names the columns that must
# have values before the detector counts (columns empty in the whole file are ignored).

def col_max(d, names):
    return nanmax_rows([d[n] for n in names])


def col_min(d, names):
    return nanmin_rows([d[n] for n in names])


def across_rows(cols, reduce):
    """reduce (np.nanmax or np.nanmin) over the columns, per row; NaN where every one is."""
    a = np.vstack(cols)
    out = np.full(a.shape[1], np.nan)
    ok = ~np.all(np.isnan(a), axis=0)
    out[ok] = reduce(a[:, ok], axis=0)
    return out


def nanmax_rows(cols):
    return across_rows(cols, np.nanmax)


def nanmin_rows(cols):
    return across_rows(cols, np.nanmin)


@dataclass
class Detector:
    name: str
    family: str  # "pi0" or "baseline"
    rule: str  # the alarm, in words
    source: str  # where the default comes from
    score: object
    line: float
    sweep: np.ndarray
    op: str = "ge"
    unit: str = ""
    ready: list = field(default_factory=list)

    def alarm(self, score, line=None):
        line = self.line if line is None else line
        with np.errstate(invalid="ignore"):
            on = score >= line if self.op == "ge" else score <= line
        return on & ~np.isnan(score)

    def normalized(self, score):
        """The score over its line: >= 1 where the alarm is on (for plots)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.op == "ge":
                return score / self.line
            return np.where(np.isnan(score), 0.0, (self.line + 1.0) / (score + 1.0))


def util_cols(suffix):
    return [s + suffix for s in UTIL]


DETECTORS = [
    Detector("pi0-forecast", "pi0", "max over cpu, memory, disk of the projected peak >= line",
             "Pi0's forecast of the peak over the next 30 s, at static-80's line: the same "
             "signals and line, the forecast instead of the present",
             lambda d: col_max(d, util_cols("_peak")), 0.8,
             np.round(np.arange(0.5, 1.0001, 0.01), 3), ready=util_cols("_peak")),
    Detector("pi0-warning", "pi0",
             "min over the signals that define trouble (psi_cpu, psi_memory, psi_io, memory) "
             "of seconds-to-trouble <= line",
             "Pi0's early warning on what DESIGN.md calls trouble (PSI over its line, memory "
             "full); 30 s = its horizon",
             lambda d: col_min(d, [s + "_ttt" for s in TROUBLE_SIGNALS]), 30.0,
             np.arange(0.0, 120.001, 2.0), op="le", unit="s",
             ready=[s + "_peak" for s in SIGNALS]),
    Detector("static-80", "baseline", "max over cpu, memory, disk of the current value >= line",
             "the common static 80 % utilization alert", lambda d: col_max(d, UTIL), 0.8,
             np.round(np.arange(0.5, 1.0001, 0.01), 3), ready=UTIL),
    Detector("koordinator", "baseline", "cpu >= 0.65 k or memory >= 0.95 k (k = line)",
             "Koordinator load-aware scheduling defaults (cpu 65 %, memory 95 %); the sweep "
             "scales both", lambda d: nanmax_rows([d["cpu"] / 0.65, d["memory"] / 0.95]), 1.0,
             np.round(np.arange(0.5, 1.5001, 0.02), 3), ready=["cpu", "memory"]),
    Detector("trimaran", "baseline", "max over cpu, memory, disk of mean + std >= line",
             "Trimaran (LoadVariationRiskBalancing: mu + sigma over the window), 80 % line",
             lambda d: col_max(d, util_cols("_trimaran")), 0.8,
             np.round(np.arange(0.5, 1.0001, 0.01), 3), ready=util_cols("_trimaran")),
    Detector("legacy-mu2sigma", "baseline",
             "max over cpu, memory, disk of max(mean + 2 std, model max) >= line",
             "Pi0's first projected peak (before the forecast), at the same 0.8 line",
             lambda d: col_max(d, util_cols("_legacy")), 0.8,
             np.round(np.arange(0.5, 1.0001, 0.01), 3), ready=util_cols("_legacy")),
]


# ---------------------------------------------------------------------------------------------
# Data

@dataclass
class Episode:
    uid: int  # unique over all files
    file: int
    id: int
    kind: str
    shape: str
    start: float  # inject start, seconds (the file's t)
    end: float  # inject end
    onset: float = math.nan  # NaN = no trouble
    already: bool = False  # trouble was on when the injection began


@dataclass
class Run:
    """One replay: its columns as arrays, the ground truth, its episodes."""
    path: str
    t: np.ndarray
    d: dict
    labels: dict
    first: int = 0  # the first row every detector counts
    trouble: np.ndarray = None
    onset: np.ndarray = None
    calm: np.ndarray = None
    oom: np.ndarray = None
    episodes: list = field(default_factory=list)
    scores: dict = field(default_factory=dict)


def load(path, index, uid_base, args):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise Usage(f"{path}: empty")
        rows = list(reader)
    need = ["t", *SIGNALS, *PSI_TRUTH, "oom_kills", "episode", "kind", "shape", "phase"]
    need += [s + x for s in SIGNALS for x in ("_peak", "_ttt", "_legacy", "_trimaran")]
    missing = [c for c in need if c not in header]
    if missing:
        hint = " (a recording: replay it first with pi0-forecast-replay)" \
            if "cpu_peak" in missing else ""
        raise Usage(f"{path}: not a replay, missing columns {', '.join(missing[:6])}{hint}")
    if not rows:
        raise Usage(f"{path}: no rows")
    cols = {h: i for i, h in enumerate(header)}
    d = {}
    for name in need:
        if name in ("episode", "kind", "shape", "phase"):
            continue
        i = cols[name]
        d[name] = np.array([float(r[i]) if i < len(r) and r[i] != "" else np.nan
                            for r in rows])
    labels = {name: [r[cols[name]] for r in rows] for name in ("kind", "shape", "phase")}
    labels["episode"] = np.array([int(r[cols["episode"]]) for r in rows])
    run = Run(path, d.pop("t"), d, labels)
    ground_truth(run, args)
    for det in DETECTORS:
        run.scores[det.name] = det.score(run.d)
    readiness(run)
    find_episodes(run, index, uid_base)
    calm_rows(run)
    return run


def read_meta(path):
    """The recording's sidecar (record.py's FILE.meta.json) next to a replay or recording, or
    None."""
    base = path[:-len(".replay.csv")] if path.endswith(".replay.csv") else \
        path[:-len(".csv")] if path.endswith(".csv") else path
    try:
        with open(base + ".meta.json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def describe_meta(name, meta):
    if not meta:
        return f"`{name}`: no sidecar (.meta.json) found."
    m, fl = meta.get("machine", {}), meta.get("flags", {})
    return (f"`{name}`: seed {meta.get('seed')}, {fl.get('episodes_per_kind')} episodes per "
            f"kind, {fl.get('calm_minutes')} calm minutes, started {meta.get('started_at')}, "
            f"{'complete' if meta.get('complete') else 'interrupted'}; {m.get('nproc')} CPUs, "
            f"MemTotal {m.get('mem_total_bytes', 0) / 2**30:.1f} GiB, kernel {m.get('kernel')}, "
            f"cgroup v{m.get('cgroup_version')}, experiment memory limit "
            f"{m.get('memory_limit_bytes', 0) / 2**30:.1f} GiB.")


def ground_truth(run, args):
    psi = np.vstack([run.d[c] for c in PSI_TRUTH])
    with np.errstate(invalid="ignore"):
        hot = np.any(psi > args.trouble_line, axis=0)
    ooms = run.d["oom_kills"]
    rose = np.zeros(len(ooms), bool)
    with np.errstate(invalid="ignore"):
        rose[1:] = np.nan_to_num(np.diff(ooms), nan=0.0) > 0
    run.oom = rose
    run.trouble = hot | rose
    run.onset = run.trouble & ~np.concatenate([[True], run.trouble[:-1]])


def readiness(run):
    """The first row where every detector's inputs have values (columns empty throughout the
    file, such as a signal this machine lacks, are not waited for)."""
    first = 0
    for det in DETECTORS:
        for c in det.ready:
            col = run.d[c]
            ok = ~np.isnan(col)
            if ok.any():
                first = max(first, int(np.argmax(ok)))
    run.first = first


def find_episodes(run, index, uid_base):
    ep_col, phase = run.labels["episode"], run.labels["phase"]
    ids = sorted(set(int(e) for e in ep_col if e > 0))
    interval = run_interval(run)
    for eid in ids:
        rows = np.nonzero(ep_col == eid)[0]
        inject = [i for i in rows if phase[i] == "inject"]
        if not inject:
            continue
        start, end = run.t[inject[0]], run.t[inject[-1]] + interval
        if inject[0] < run.first:
            continue  # injected before the windows were full: not counted
        ep = Episode(uid_base + eid, index, eid, run.labels["kind"][inject[0]],
                     run.labels["shape"][inject[0]], start, end)
        span = np.nonzero((run.t >= start) & (run.t <= end + ONSET_AFTER_INJECT_S)
                          & run.onset)[0]
        if len(span):
            ep.onset = float(run.t[span[0]])
        ep.already = bool(run.trouble[inject[0]])
        run.episodes.append(ep)


def run_interval(run):
    return float(np.median(np.diff(run.t))) if len(run.t) > 1 else 1.0


def calm_rows(run):
    t = run.t
    onset_t = t[run.onset]
    trouble_t = t[run.trouble]
    # the next onset after t (sentinel: none), and the last trouble row at or before t
    onset_t = np.append(onset_t, np.inf)
    next_onset = onset_t[np.searchsorted(onset_t, t, side="right")]
    trouble_t = np.insert(trouble_t, 0, -np.inf)
    last_trouble = trouble_t[np.searchsorted(trouble_t, t, side="right") - 1]
    quiet = np.array([p in CALM_PHASES for p in run.labels["phase"]])
    calm = quiet & ~run.trouble & (next_onset - t > CALM_LOOKAHEAD_S) & \
        (t - last_trouble > CALM_GRACE_S)
    calm[: run.first] = False
    run.calm = calm


# ---------------------------------------------------------------------------------------------
# Measures

def lead_time(run, alarm, onset):
    """onset minus the first time in [onset - 60, onset + 30] the alarm is on; None if none."""
    span = np.nonzero((run.t >= onset - LEAD_BEFORE_S) & (run.t <= onset + LEAD_AFTER_S)
                      & alarm)[0]
    return None if not len(span) else float(onset - run.t[span[0]])


def false_alarm_starts(run, alarm):
    """Rows where a false alarm begins: a maximal run of consecutive calm rows with the alarm
    on that either began in calm (the alarm was off the row before) or, carried over from a
    storm, lasted more than CLEAR_S into the calm (a detector that follows a fall within that
    is not alarmed falsely; the first projected peak, high for a whole window after a storm,
    is)."""
    hit = run.calm & alarm
    prev = np.concatenate([[False], hit[:-1]])
    starts = np.nonzero(hit & ~prev)[0]
    interval = run_interval(run)
    out = []
    for i in starts:
        j = i
        while j < len(hit) and hit[j]:
            j += 1
        carried = i > 0 and alarm[i - 1]
        if not carried or (j - i) * interval > CLEAR_S:
            out.append(i)
    return np.array(out, dtype=int)


@dataclass
class Blocks:
    """Per 5-minute block of one run: calm seconds and false alarms started in it."""
    calm_s: np.ndarray
    alarms: np.ndarray


def calm_blocks(run, alarm):
    interval = run_interval(run)
    b = np.floor((run.t - run.t[0]) / BLOCK_S).astype(int)
    nb = int(b.max()) + 1 if len(b) else 0
    calm_s = np.bincount(b[run.calm], minlength=nb) * interval
    alarms = np.bincount(b[false_alarm_starts(run, alarm)], minlength=nb).astype(float)
    return Blocks(calm_s, alarms)


def lead_stats(leads, min_lead):
    """Sensitivity at >= min_lead and >= 0, and lead percentiles over episodes with trouble
    (a missed episode counts as -inf: the median is the lead half the episodes got)."""
    a = np.array([-np.inf if x is None else x for x in leads], float)
    if not len(a):
        return dict(sens=math.nan, sens0=math.nan, median=math.nan, p10=math.nan)
    return dict(sens=float(np.mean(a >= min_lead)), sens0=float(np.mean(a >= 0)),
                median=float(np.percentile(a, 50, method="lower")),
                p10=float(np.percentile(a, 10, method="lower")))


def evaluate(runs, det, line, min_lead, boot=False, rng=None):
    """The numbers of one detector at one line; with boot, bootstrap intervals too."""
    per_ep, blocks, harmless = [], [], []
    for run in runs:
        alarm = det.alarm(run.scores[det.name], line)
        for ep in run.episodes:
            if not math.isnan(ep.onset):
                per_ep.append((ep, lead_time(run, alarm, ep.onset)))
            else:  # a storm the kernel took without trouble: did the detector cry wolf?
                span = (run.t >= ep.start) & (run.t <= ep.end + ONSET_AFTER_INJECT_S)
                harmless.append(bool(np.any(alarm & span)))
        blocks.append(calm_blocks(run, alarm))
    calm_s = np.concatenate([b.calm_s for b in blocks]) if blocks else np.zeros(0)
    alarms = np.concatenate([b.alarms for b in blocks]) if blocks else np.zeros(0)
    leads = [l for _, l in per_ep]
    out = lead_stats(leads, min_lead)
    out["flagged"] = int(sum(1 for l in leads if l is not None and l >= min_lead))
    out["harmless_alarmed"] = int(sum(harmless))
    out["harmless"] = len(harmless)
    out["with_trouble"] = len(leads)
    out["false_alarms"] = int(alarms.sum())
    out["calm_hours"] = float(calm_s.sum() / 3600)
    out["fa_per_hour"] = float(alarms.sum() / (calm_s.sum() / 3600)) if calm_s.sum() else math.nan
    out["leads"] = {ep.uid: l for ep, l in per_ep}
    out["per_kind"] = {}
    for kind in KINDS:
        kl = [l for ep, l in per_ep if ep.kind == kind]
        s = lead_stats(kl, min_lead)
        out["per_kind"][kind] = dict(
            sens=s["sens"], flagged=int(sum(1 for l in kl if l is not None and l >= min_lead)),
            with_trouble=len(kl), median=s["median"])
    if boot:
        a = np.array([-np.inf if l is None else l for l in leads], float)
        sens, med, p10, fa = [], [], [], []
        keep = calm_s > 0
        cs, al = calm_s[keep], alarms[keep]
        for _ in range(RESAMPLES):
            if len(a):
                s = a[rng.integers(0, len(a), len(a))]
                sens.append(np.mean(s >= min_lead))
                med.append(np.percentile(s, 50, method="lower"))
                p10.append(np.percentile(s, 10, method="lower"))
            if len(cs):
                k = rng.integers(0, len(cs), len(cs))
                fa.append(al[k].sum() / (cs[k].sum() / 3600))
        out["ci"] = {"sens": ci(sens), "median": ci(med), "p10": ci(p10), "fa_per_hour": ci(fa)}
    return out


def ci(values):
    if not values:
        return [math.nan, math.nan]
    v = np.array(values, float)
    return [float(np.percentile(v, 2.5, method="lower")),
            float(np.percentile(v, 97.5, method="higher"))]


# ---------------------------------------------------------------------------------------------
# Output

def pct(x):
    return "–" if x is None or math.isnan(x) else f"{100 * x:.0f} %"


def secs(x):
    if x is None or math.isnan(x):
        return "–"
    return "missed" if x == -math.inf else f"{x:.0f} s"


def rate(x):
    return "–" if x is None or math.isnan(x) else f"{x:.2f}"


def fmt_ci(lo_hi, f):
    return f"[{f(lo_hi[0])}, {f(lo_hi[1])}]"


def main_table(results, min_lead):
    head = (f"| detector | default line | sensitivity @ ≥{min_lead:g} s [95 % CI] | "
            "sensitivity @ ≥0 s | false alarms/h [95 % CI] | median lead [95 % CI] | "
            "p10 lead | flagged / with trouble | alarmed / storms without trouble |")
    lines = [head, "|" + "---|" * 9]
    for det in DETECTORS:
        r = results[det.name]
        lines.append(
            f"| {det.name} | {det.line:g}{det.unit} | {pct(r['sens'])} "
            f"{fmt_ci(r['ci']['sens'], pct)} | {pct(r['sens0'])} | {rate(r['fa_per_hour'])} "
            f"{fmt_ci(r['ci']['fa_per_hour'], rate)} | {secs(r['median'])} "
            f"{fmt_ci(r['ci']['median'], secs)} | {secs(r['p10'])} | "
            f"{r['flagged']} / {r['with_trouble']} | {r['harmless_alarmed']} / {r['harmless']} |")
    return "\n".join(lines)


def kind_table(results, episodes):
    lines = ["| detector | " + " | ".join(f"{k}: flagged / with trouble (median lead)"
                                        for k in KINDS) + " |", "|" + "---|" * (len(KINDS) + 1)]
    for det in DETECTORS:
        cells = []
        for k in KINDS:
            pk = results[det.name]["per_kind"][k]
            cells.append(f"{pk['flagged']} / {pk['with_trouble']} ({secs(pk['median'])})")
        lines.append(f"| {det.name} | " + " | ".join(cells) + " |")
    counts = []
    for k in KINDS:
        eps = [e for e in episodes if e.kind == k]
        counts.append(f"{k}: {len(eps)} injected, "
                      f"{sum(1 for e in eps if not math.isnan(e.onset))} with trouble")
    return "\n".join(lines) + "\n\nEpisodes: " + "; ".join(counts) + "."


def goal_check(results, target_sens=0.9, max_fa=1.0):
    """For each Pi0 detector: >= 90 % flagged early with <= 1 false alarm/h, and better than
    every baseline on both (higher sensitivity, fewer false alarms per hour)."""
    out = {}
    baselines = [d for d in DETECTORS if d.family != "pi0"]
    for det in DETECTORS:
        if det.family != "pi0":
            continue
        r = results[det.name]
        sens_margin = r["sens"] - target_sens
        fa_margin = max_fa - r["fa_per_hour"]
        beats = {}
        for b in baselines:
            rb = results[b.name]
            # Strictly better on both; a tie at the best possible value (100 % flagged, no
            # false alarm) counts as better, since nothing can beat it there.
            sens_better = r["sens"] > rb["sens"] or r["sens"] == rb["sens"] == 1.0
            fa_better = r["fa_per_hour"] < rb["fa_per_hour"] or \
                r["fa_per_hour"] == rb["fa_per_hour"] == 0.0
            beats[b.name] = {"sens_diff": r["sens"] - rb["sens"],
                             "fa_diff": rb["fa_per_hour"] - r["fa_per_hour"],
                             "beats": bool(sens_better and fa_better)}
        met = bool(sens_margin >= 0 and fa_margin >= 0 and all(v["beats"]
                                                                for v in beats.values()))
        out[det.name] = {"met": met, "sens_margin": sens_margin, "fa_margin": fa_margin,
                         "vs": beats}
    return out


def goal_text(goal, results, min_lead):
    lines = []
    for name, g in goal.items():
        r = results[name]
        word = "**met**" if g["met"] else "**not met**"
        lines.append(
            f"- `{name}`: {word}. Sensitivity @ ≥{min_lead:g} s {pct(r['sens'])} against "
            f"≥ 90 % ({signed_pp(g['sens_margin'])}); {rate(r['fa_per_hour'])} false alarms/h "
            f"against ≤ 1 ({signed(-g['fa_margin'])}).")
        for b, v in g["vs"].items():
            rb = results[b]
            lines.append(
                f"  - vs `{b}`: sensitivity {pct(r['sens'])} vs {pct(rb['sens'])} "
                f"({signed_pp(v['sens_diff'])}), false alarms/h {rate(r['fa_per_hour'])} vs "
                f"{rate(rb['fa_per_hour'])} — "
                f"{'better on both' if v['beats'] else 'not better on both'}")
    return "\n".join(lines)


def signed_pp(x):
    return "–" if math.isnan(x) else f"{100 * x:+.0f} pp"


def signed(x):
    return "–" if math.isnan(x) else f"{x:+.2f}"


def jsonable(x):
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "missed" if x < 0 else "inf"
        return float(f"{x:.6g}")
    if isinstance(x, np.integer):
        return int(x)
    return x


# ---------------------------------------------------------------------------------------------
# Plots

def plot_episodes(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    chosen = []
    for kind in KINDS:
        cands = [(run, ep) for run in runs for ep in run.episodes if ep.kind == kind]
        with_trouble = [c for c in cands if not math.isnan(c[1].onset)]
        if with_trouble or cands:
            chosen.append((with_trouble or cands)[0])
    if not chosen:
        return False
    fig, axes = plt.subplots(3, len(chosen), figsize=(6 * len(chosen), 9), squeeze=False,
                             sharex="col")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for c, (run, ep) in enumerate(chosen):
        lo, hi = ep.start - 60, ep.end + 45
        m = (run.t >= lo) & (run.t <= hi)
        x = run.t[m] - ep.start
        top, mid, bot = axes[0][c], axes[1][c], axes[2][c]
        for s in UTIL:
            top.plot(x, run.d[s][m], label=s)
        top.set_ylim(-0.02, 1.05)
        top.set_title(f"episode {ep.uid}: {ep.kind} {ep.shape}")
        top.set_ylabel("load (ratio)")
        for name in PSI_TRUTH:
            mid.plot(x, run.d[name][m], label=name.replace("_avg10", ""))
        mid.axhline(ARGS.trouble_line, color="k", ls="--", lw=0.8, label="trouble line")
        for tt in run.t[m & run.oom]:
            mid.axvline(tt - ep.start, color="r", lw=1.5)
        if np.any(m & run.oom):
            mid.plot([], [], color="r", lw=1.5, label="OOM kill")
        mid.set_ylabel("PSI some avg10 (%)")
        for k, det in enumerate(DETECTORS):
            score = run.scores[det.name][m]
            y = np.clip(det.normalized(score), 0, 2)
            bot.plot(x, y, color=colors[k % len(colors)], label=det.name, lw=1)
            on = det.alarm(score)
            bot.scatter(x[on], np.full(on.sum(), 2.1 + 0.07 * k), s=4,
                        color=colors[k % len(colors)])
        bot.axhline(1.0, color="k", ls="--", lw=0.8)
        bot.set_ylim(0, 2.6)
        bot.set_ylabel("detector / its line (dots: firing)")
        bot.set_xlabel("seconds from injection start")
        for ax in (top, mid, bot):
            ax.axvspan(0, ep.end - ep.start, color="0.9", zorder=0)
            if not math.isnan(ep.onset):
                ax.axvline(ep.onset - ep.start, color="r", ls=":", lw=1)
        if c == 0:
            top.legend(loc="upper left", fontsize=7)
            mid.legend(loc="upper left", fontsize=7)
            bot.legend(loc="upper left", fontsize=6, ncol=2)
    fig.suptitle("Injection (shaded), trouble onset (dotted red)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_roc(sweeps, results, path, min_lead):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, det in enumerate(DETECTORS):
        pts = sweeps[det.name]
        xs = [p["fa_per_hour"] for p in pts]
        ys = [p["sens"] for p in pts]
        ax.plot(xs, ys, color=colors[k % len(colors)], label=det.name, lw=1.2, marker=".",
                ms=3)
        r = results[det.name]
        ax.plot([r["fa_per_hour"]], [r["sens"]], marker="o", ms=8, mfc="none",
                color=colors[k % len(colors)])
    ax.axvline(1.0, color="k", ls=":", lw=0.8)
    ax.axhline(0.9, color="k", ls=":", lw=0.8)
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("false alarms per hour of calm")
    ax.set_ylabel(f"sensitivity (flagged ≥ {min_lead:g} s before onset)")
    ax.set_title("Each detector over its line (circle: its default); goal: above and left "
                 "of the dotted lines", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------

ARGS = None


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="report.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("replays", nargs="+", help="replay CSV files (pi0-forecast-replay output)")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out-dir", default=os.path.join(here, "results"))
    ap.add_argument("--trouble-line", type=float, default=20.0,
                    help="PSI some avg10 percent above which a node is in trouble (default 20)")
    ap.add_argument("--min-lead", type=float, default=5.0,
                    help="seconds before onset an alarm must come to count (default 5)")
    ap.add_argument("--no-plots", action="store_true", help="skip episodes.png and roc.png")
    return ap.parse_args(argv)


def main(argv):
    global ARGS
    args = ARGS = parse_args(argv)
    runs, uid_base = [], 0
    for i, path in enumerate(args.replays):
        run = load(path, i, uid_base, args)
        ids = run.labels["episode"]
        uid_base += int(ids.max()) if len(ids) else 0
        runs.append(run)
    episodes = [ep for run in runs for ep in run.episodes]
    if not episodes:
        raise Usage("no injected episode after the windows filled; nothing to report")
    rng = np.random.default_rng(SEED)
    results, sweeps = {}, {}
    for det in DETECTORS:
        results[det.name] = evaluate(runs, det, det.line, args.min_lead, boot=True, rng=rng)
        sweeps[det.name] = [dict(line=float(l), **{k: v for k, v in evaluate(
            runs, det, l, args.min_lead).items() if k in ("sens", "fa_per_hour", "sens0")})
            for l in det.sweep]
    goal = goal_check(results)
    os.makedirs(args.out_dir, exist_ok=True)

    with_trouble = [e for e in episodes if not math.isnan(e.onset)]
    calm_h = results[DETECTORS[0].name]["calm_hours"]
    rows_total = sum(len(r.t) - r.first for r in runs)
    facts = (f"{len(runs)} recording(s), {rows_total} rows counted "
             f"({rows_total * run_interval(runs[0]) / 3600:.2f} h), {len(episodes)} episodes "
             f"injected, {len(with_trouble)} with trouble, "
             f"{sum(1 for e in episodes if e.already)} already in trouble at injection start; "
             f"{calm_h:.2f} h of calm rows.")
    table = main_table(results, args.min_lead)
    md = [
        "# Evidence: does Pi0's forecast see trouble coming better than static thresholds?",
        "",
        f"Replays: {', '.join(os.path.basename(p) for p in args.replays)}. {facts}",
        "",
        f"Trouble = PSI some avg10 > {args.trouble_line:g} % or an OOM kill in the experiment "
        f"cgroup. Flagged = the alarm came ≥ {args.min_lead:g} s before the episode's onset. "
        "Lead percentiles count a missed episode as missed (so the median is the lead half of "
        f"the episodes got). 95 % intervals: bootstrap, {RESAMPLES} resamples (episodes; "
        f"{BLOCK_S / 60:g}-minute blocks of time for false alarms).",
        "",
        table,
        "",
        "## Recordings",
        "",
        *[f"- {describe_meta(os.path.basename(p), read_meta(p))}" for p in args.replays],
        "",
        "## Per kind",
        "",
        kind_table(results, episodes),
        "",
        "## Goal: Pi0 flags ≥ 90 % at ≥ 5 s with ≤ 1 false alarm/h and beats every static "
        "detector on both",
        "",
        goal_text(goal, results, args.min_lead),
        "",
        "## Detectors",
        "",
        "| detector | alarm | default from |",
        "|---|---|---|",
        *[f"| {d.name} | {d.rule} | {d.source} |" for d in DETECTORS],
        "",
        "Plots: `episodes.png` (one episode per kind), `roc.png` (sensitivity against false "
        "alarms per hour over each detector's line).",
        "",
    ]
    with open(os.path.join(args.out_dir, "report.md"), "w") as f:
        f.write("\n".join(md))
    summary = {
        "replays": [os.path.basename(p) for p in args.replays],
        "recordings": [read_meta(p) for p in args.replays],
        "trouble_line_pct": args.trouble_line, "min_lead_s": args.min_lead,
        "resamples": RESAMPLES, "seed": SEED,
        "rows": rows_total, "calm_hours": calm_h,
        "episodes": [dict(uid=e.uid, file=e.file, id=e.id, kind=e.kind, shape=e.shape,
                          inject_start=e.start, inject_end=e.end, onset=e.onset,
                          already_in_trouble=e.already,
                          leads={d.name: results[d.name]["leads"].get(e.uid)
                                 for d in DETECTORS} if not math.isnan(e.onset) else None)
                     for e in episodes],
        "detectors": {d.name: dict(family=d.family, rule=d.rule, source=d.source,
                                   line=d.line, **{k: v for k, v in results[d.name].items()
                                                   if k != "leads"},
                                   sweep=sweeps[d.name]) for d in DETECTORS},
        "goal": goal,
    }
    with open(os.path.join(args.out_dir, "summary.json"), "w") as f:
        json.dump(jsonable(summary), f, indent=1)
    if not args.no_plots:
        plot_episodes(runs, os.path.join(args.out_dir, "episodes.png"))
        plot_roc(sweeps, results, os.path.join(args.out_dir, "roc.png"), args.min_lead)
    print(facts)
    print(table)
    print("Goal:")
    print(goal_text(goal, results, args.min_lead))
    print(f"Report in {args.out_dir}/report.md")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Usage as e:
        print(f"report: {e}", file=sys.stderr)
        sys.exit(2)
    except (OSError, ValueError) as e:
        print(f"report: failed: {e}", file=sys.stderr)
        sys.exit(1)
