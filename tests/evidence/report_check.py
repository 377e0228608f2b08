#!/usr/bin/python3
"""bench/evidence/report.py on a hand-made replay whose answers are worked out below.

400 rows at 1 s (t = 0..399). Every detector input sits at 0.1 (every cell filled, so every
row counts), seconds-to-trouble is empty (none expected), PSI 0 %, no OOM kill, except:

  - episode 1 (cpu step) injects over t = 200..239 (inject end = 239 + 1 = 240);
  - PSI cpu avg10 = 30 % at t = 220..250: trouble; its rising edge, the onset, is t = 220;
  - cpu = 0.85 at t = 210..250: static-80 fires at 210, lead 220 - 210 = 10 s (flagged at
    >= 5 s); koordinator (cpu >= 0.65) too;
  - cpu_peak = 0.95 at t = 218..250: pi0-forecast fires at 218, lead 2 s: not flagged at
    >= 5 s, flagged at >= 0 s;
  - memory_ttt = 0 at t = 235..250: pi0-warning (which reads the signals trouble is made of:
    psi_*, memory) fires at 235, lead -15 s (late); cpu_ttt = 0 at t = 100..105, which it
    does not read, so no false alarm;
  - memory = 0.85 at t = 50..52 and t = 60: two separate runs of calm rows with static-80 on,
    so two false alarms; trimaran and legacy (0.1) never fire: missed, no false alarm;
  - OOM-kill count 0, then 1 from t = 300: an OOM kill at t = 300, trouble for that row only;
    it is outside every episode's span, so it is an onset without an episode;
  - episode 2 (memory step) injects over t = 330..359, memory = 0.85 there, and no trouble
    follows: a storm without trouble; static-80 is alarmed in it (1 of 1), no other detector
    is (koordinator's memory line is 0.95).

Calm rows: no load injected (phase calm, warm-up or recovery), not in trouble, no onset within
the next 60 s, more than 10 s after the last trouble row. Onsets at 220 and 300. t = 0..159 are calm (160 rows); 160..219 are not (onset at
220 within 60 s); 220..250 trouble; 251..260 within 10 s of trouble; rows
261..299 have the onset at 300 within 60 s, so they are not calm; 300 is trouble; 301..310
grace; 311..329 calm (19 rows); 330..359 injected (not calm); 360..399 calm (40 rows). Calm
time = (160 + 19 + 40) s = 219 s.
static-80: 2 false alarms / (219 / 3600 h) = 32.88 per hour; every other detector: 0.

Usage: report_check.py REPORT_PY WORK_DIR
"""
import csv, json, os, subprocess, sys

SIGNALS = ["cpu", "memory", "disk", "network", "psi_cpu", "psi_memory", "psi_io"]
HEADER = ["t", *SIGNALS, "psi_cpu_avg10", "psi_memory_avg10", "psi_io_avg10", "oom_kills",
          "episode", "kind", "shape", "phase"]
HEADER += [s + x for s in SIGNALS for x in ("_peak", "_ttt", "_legacy", "_trimaran")]


def row(t):
    v = {h: 0.1 for h in HEADER}
    v.update(t=t, psi_cpu_avg10=0.0, psi_memory_avg10=0.0, psi_io_avg10=0.0, oom_kills=0,
             episode=0, kind="calm", shape="calm", phase="calm")
    for s in SIGNALS:
        v[s + "_ttt"] = ""
    if 200 <= t <= 239:
        v.update(episode=1, kind="cpu", shape="step", phase="inject")
    elif 240 <= t <= 280:
        v.update(episode=1, kind="cpu", shape="step", phase="recover")
    if 220 <= t <= 250:
        v["psi_cpu_avg10"] = 30.0
    if 210 <= t <= 250:
        v["cpu"] = 0.85
    if 218 <= t <= 250:
        v["cpu_peak"] = 0.95
    if 235 <= t <= 250:
        v["memory_ttt"] = 0
    if 100 <= t <= 105:
        v["cpu_ttt"] = 0
    if 50 <= t <= 52 or t == 60:
        v["memory"] = 0.85
    if t >= 300:
        v["oom_kills"] = 1
    if 330 <= t <= 359:
        v.update(episode=2, kind="memory", shape="step", phase="inject", memory=0.85)
    elif 360 <= t <= 380:
        v.update(episode=2, kind="memory", shape="step", phase="recover")
    return [v[h] for h in HEADER]


def check(cond, what):
    if not cond:
        print(f"report_check: FAIL: {what}", file=sys.stderr)
        sys.exit(1)


def main():
    report_py, work = sys.argv[1], sys.argv[2]
    path = os.path.join(work, "hand.replay.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for t in range(400):
            w.writerow(row(t))
    out = os.path.join(work, "hand.results")
    subprocess.run([report_py, "--no-plots", "--out-dir", out, path], check=True,
                   stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    d = s["detectors"]
    check(len(s["episodes"]) == 2 and s["episodes"][0]["onset"] == 220,
          f"two episodes, the first's onset 220: {s['episodes']}")
    check(abs(s["calm_hours"] * 3600 - 219) < 0.01, f"calm time 219 s: {s['calm_hours'] * 3600}")
    lead = s["episodes"][0]["leads"]
    expected = {"static-80": 10, "koordinator": 10, "pi0-forecast": 2, "pi0-warning": -15,
                "trimaran": None, "legacy-mu2sigma": None}
    for name, want in expected.items():
        check(lead[name] == want, f"{name} lead {want}: {lead[name]}")
    check(d["static-80"]["sens"] == 1 and d["pi0-forecast"]["sens"] == 0
          and d["pi0-forecast"]["sens0"] == 1 and d["pi0-warning"]["sens0"] == 0,
          "sensitivities at >= 5 s and >= 0 s")
    check(d["static-80"]["false_alarms"] == 2, f"static-80 false alarms: "
          f"{d['static-80']['false_alarms']}")
    check(abs(d["static-80"]["fa_per_hour"] - 2 / (219 / 3600)) < 0.01,
          f"static-80 rate 32.88/h: {d['static-80']['fa_per_hour']}")
    for name in ("pi0-forecast", "pi0-warning", "koordinator", "trimaran", "legacy-mu2sigma"):
        check(d[name]["false_alarms"] == 0, f"{name}: no false alarm")
    check(d["static-80"]["median"] == 10 and d["trimaran"]["median"] == "missed",
          "median leads")
    check(d["static-80"]["harmless"] == 1 and d["static-80"]["harmless_alarmed"] == 1,
          "static-80 alarmed in the storm without trouble")
    for name in ("pi0-forecast", "pi0-warning", "koordinator", "trimaran", "legacy-mu2sigma"):
        check(d[name]["harmless_alarmed"] == 0, f"{name}: not alarmed in the harmless storm")
    print("report_check: the hand-worked replay gives the worked-out numbers")


if __name__ == "__main__":
    main()
