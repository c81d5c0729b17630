"""The drift baseline (Huber's proposal 2 + lag-1 autocorrelation) versus statsmodels.

Decides whether statsmodels belongs in the serving process. Prints, for warm-ups of 100
samples over 1k, 10k and 100k series:

* our vectorised ``drift.baseline.robust_baseline`` (location, scale and phi of all series);
* statsmodels' ``Huber()(x, axis=1)`` (joint proposal 2, vectorised; it divides the scale
  equation by n - 1, so its sigma is larger by about 0.5 % at n = 100) and its max relative
  difference from ours;
* statsmodels' ``tsa.stattools.acf`` for phi (one series per call; measured on 1k series,
  scaled);

and, in a fresh interpreter, what importing ``statsmodels.robust.scale`` costs (seconds, RSS,
whether pandas comes with it). ``tests/test_drift_baseline.py`` proves the two compute the
same estimating equations.

    .venv/bin/python benchmarks/drift_baseline.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np

from qpu_exporter.drift.baseline import HUBER_C, robust_baseline

IMPORT_COST = """
import re, sys, time
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
import numpy, scipy.special
before = rss()
t = time.perf_counter()
import statsmodels.robust.scale
print(f"{time.perf_counter() - t:.2f} {rss() - before:.0f} {'pandas' in sys.modules}")
"""


def _best(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    from statsmodels.robust.scale import Huber
    from statsmodels.tsa.stattools import acf

    print(f"machine: nproc={os.cpu_count()} load={os.getloadavg()[0]:.2f} python={sys.version.split()[0]}")
    rng = np.random.default_rng(1)
    print("| series | ours s | statsmodels Huber s | max rel. sigma diff | max mu diff / sigma | statsmodels acf s (phi) |")
    print("|---|---|---|---|---|---|")
    for series in (1_000, 10_000, 100_000):
        x = rng.standard_t(4, (series, 100)) * rng.uniform(0.01, 10, (series, 1)) + rng.normal(0, 5, (series, 1))
        ours_s = _best(lambda: robust_baseline(x))
        mu, sigma, _ = robust_baseline(x)
        huber = Huber(c=HUBER_C, maxiter=100)
        sm_s = _best(lambda: huber(x, axis=1))
        m2, s2 = huber(x, axis=1)
        sample = x[:1000]
        r = np.clip((sample - mu[:1000, None]) / sigma[:1000, None], -HUBER_C, HUBER_C)
        acf_s = _best(lambda: [acf(row, nlags=1, fft=False) for row in r], repeat=1) * series / 1000
        print(f"| {series:,} | {ours_s:.3f} | {sm_s:.3f} | {np.max(np.abs(s2 / sigma - 1)):.4f} "
              f"| {np.max(np.abs(m2 - mu) / sigma):.4f} | {acf_s:.2f} |")
    out = subprocess.run([sys.executable, "-c", IMPORT_COST], capture_output=True, text=True, check=True).stdout.split()
    print(f"\nimport statsmodels.robust.scale (fresh interpreter, numpy and scipy already imported): "
          f"{out[0]} s, +{out[1]} MB RSS, pandas imported: {out[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
