#!/usr/bin/env python3
"""The projected peak on the shapes issue 14 measured, before and after it became a forecast.

Generates each shape at the agent's synthetic-source settings (100 ms interval, 64-sample
window, noise of std 0.02 with a fixed seed), replays it through pi0-forecast-replay (the agent's
own analysis), and prints, at the moments the issue named, the forecast (projected peak), the
first definition max(μ + 2σ, max x̂) and what the load really reached over the horizon (30
samples, 3 s). It asserts nothing; it prints figures.

Usage: bench/forecast_shapes.py [--replay build/release/bench/evidence/pi0-forecast-replay]
"""
import argparse
import csv
import io
import os
import random
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HORIZON = 30  # samples


def shapes():
    """(name, series, [(label, sample index of the newest sample in the window)])"""
    rng = random.Random(14)

    def noisy(values):
        return [min(1.0, max(0.0, v + rng.gauss(0.0, 0.02))) for v in values]

    n_before = 100
    fall = noisy([0.9] * n_before + [0.3] * 100)
    rise = noisy([0.3] * n_before + [0.9] * 100)
    ramp = noisy([0.6] * n_before + [min(1.0, 0.6 + 0.004 * (i + 1)) for i in range(100)])
    calm = noisy([0.4] * 300)
    return [
        ("fall 0.9 -> 0.3", fall, [(f"{k} samples after", n_before - 1 + k) for k in (3, 10, 12, 30, 64)]),
        ("rise 0.3 -> 0.9", rise, [(f"{k} samples after", n_before - 1 + k) for k in (1, 3, 4)]),
        ("ramp from 0.6 at 0.04/s", ramp, [(f"{k} samples after", n_before - 1 + k) for k in (10, 20, 30)]),
        ("calm noise 0.4, std 0.02", calm, [(f"sample {k}", k) for k in (120, 180, 240)]),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay", default=os.path.join(ROOT, "build/release/bench/evidence/pi0-forecast-replay"))
    args = parser.parse_args()
    if not os.access(args.replay, os.X_OK):
        print(f"forecast_shapes: {args.replay} not found: run scripts/build.sh", file=sys.stderr)
        return 2
    print(f"{'shape':26} {'moment':20} {'now':>5} {'forecast':>8} {'μ+2σ (old)':>10} {'reached in 3 s':>14}")
    for name, series, moments in shapes():
        text = "t,cpu\n" + "".join(f"{i / 10:.1f},{v:.6f}\n" for i, v in enumerate(series))
        out = subprocess.run([args.replay, "--interval", "0.1"], input=text, capture_output=True,
                             text=True, check=True).stdout
        rows = list(csv.DictReader(io.StringIO(out)))
        for label, i in moments:
            reached = max(series[i + 1:i + 1 + HORIZON])
            r = rows[i]
            print(f"{name:26} {label:20} {series[i]:5.2f} {float(r['cpu_peak']):8.2f} "
                  f"{float(r['cpu_legacy']):10.2f} {reached:14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
