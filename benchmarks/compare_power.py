"""`qpu-exporter compare` by simulation: false-positive rate on identical distributions, power on
known differences, and coverage of the Hellinger-fidelity interval.

Every scenario draws pairs of count tables (multinomial, the given shots per sample) and runs, on
the very same tables: our test (exact conditional Pearson chi-square, Monte Carlo p-value with
--resamples draws), scipy's chi2_contingency (its default: Yates' correction on 2 x 2 tables), and
the uncorrected asymptotic Pearson test. Rates are over --trials pairs at alpha = 0.05; "+-" is
two binomial standard errors. Coverage: share of 95 % intervals that contain the true fidelity.

    .venv/bin/python benchmarks/compare_power.py [--trials 2000] [--resamples 999]

Prints markdown tables.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import chi2_contingency

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "exporter"))

from qpu_exporter.homogeneity import hellinger_interval, homogeneity_test  # noqa: E402

ALPHA = 0.05
BELL = (0.5, 0, 0, 0.5)
NOISY = (0.45, 0.05, 0.05, 0.45)
UNIFORM8 = tuple([1 / 8] * 8)

# (name, p, q, shots per sample)
NULL = [
    ("Bell, 20 shots", BELL, BELL, 20),
    ("noisy Bell, 20 shots", NOISY, NOISY, 20),
    ("noisy Bell, 50 shots", NOISY, NOISY, 50),
    ("2 outcomes 50/50, 25 shots", (0.5, 0.5), (0.5, 0.5), 25),
    ("2 outcomes 70/30, 10 shots", (0.7, 0.3), (0.7, 0.3), 10),
    ("8 outcomes uniform, 30 shots", UNIFORM8, UNIFORM8, 30),
    ("noisy Bell, 1000 shots", NOISY, NOISY, 1000),
    ("256 outcomes, 300 shots", "dirichlet256", "dirichlet256", 300),
]
ALTERNATIVES = [
    ("Bell vs 20 % leakage, 20 shots", BELL, (0.4, 0.1, 0.1, 0.4), 20),
    ("noisy Bell shifted, 50 shots", NOISY, (0.35, 0.1, 0.1, 0.45), 50),
    ("70/30 vs 40/60, 30 shots", (0.7, 0.3), (0.4, 0.6), 30),
    ("8 outcomes, one at 30 %, 30 shots", UNIFORM8, (0.3, *[0.1] * 7), 30),
    ("noisy Bell, small shift, 1000 shots", NOISY, (0.42, 0.06, 0.06, 0.46), 1000),
    ("noisy Bell, smaller shift, 4000 shots", NOISY, (0.44, 0.055, 0.055, 0.45), 4000),
]
COVERAGE = [
    ("Bell vs noisy Bell, 1000 shots", BELL, NOISY, 1000),
    ("identical noisy Bell, 200 shots", NOISY, NOISY, 200),
    ("noisy Bell shifted, 50 shots", NOISY, (0.35, 0.1, 0.1, 0.45), 50),
    ("64 outcomes uniform, 1000 shots", tuple([1 / 64] * 64), tuple([1 / 64] * 64), 1000),
    ("64 outcomes uniform, 100 shots", tuple([1 / 64] * 64), tuple([1 / 64] * 64), 100),
]


def _dist(spec, rng_fixed) -> np.ndarray:
    if spec == "dirichlet256":
        return rng_fixed.dirichlet(np.ones(256))
    return np.array(spec, dtype=float)


def _counts(rng, n, p) -> dict[str, int]:
    width = max(1, math.ceil(math.log2(len(p))))
    return {format(i, f"0{width}b"): int(v) for i, v in enumerate(rng.multinomial(n, p)) if v}


def _asymptotic(table: np.ndarray) -> float:
    stat, p_value, *_ = chi2_contingency(table, correction=False)
    return p_value


def rejection_rates(p, q, n, trials, resamples, seed) -> tuple[float, float, float, float]:
    rng = np.random.default_rng(seed)
    p, q = _dist(p, np.random.default_rng(99)), _dist(q, np.random.default_rng(99))
    ours = scipy_default = asymptotic = 0
    started = time.perf_counter()
    for _ in range(trials):
        a, b = _counts(rng, n, p), _counts(rng, n, q)
        ours += homogeneity_test(a, b, alpha=ALPHA, rng=rng, resamples=resamples).p_value <= ALPHA
        keys = sorted(a.keys() | b.keys())
        if len(keys) > 1:
            table = np.array([[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]])
            scipy_default += chi2_contingency(table).pvalue <= ALPHA
            asymptotic += _asymptotic(table) <= ALPHA
    return ours / trials, scipy_default / trials, asymptotic / trials, (time.perf_counter() - started) / trials


def _pm(rate: float, trials: int) -> str:
    return f"{rate:.3f} ± {2 * math.sqrt(max(rate * (1 - rate), 1e-9) / trials):.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--resamples", type=int, default=999, help="Monte Carlo draws per test (compare uses 9999)")
    args = parser.parse_args(argv)
    started = time.time()
    load = os.getloadavg()[0]
    T = args.trials

    print(f"alpha {ALPHA}; {T} table pairs per row; {args.resamples} permutation draws; load {load:.1f}\n")
    print("### False-positive rate (identical distributions; must not exceed 0.05)\n")
    print("| scenario | ours | scipy chi2_contingency | asymptotic Pearson | ours, ms per test |")
    print("|---|---|---|---|---|")
    for i, (name, p, q, n) in enumerate(NULL):
        ours, sc, asym, cost = rejection_rates(p, q, n, T, args.resamples, seed=100 + i)
        print(f"| {name} | {_pm(ours, T)} | {_pm(sc, T)} | {_pm(asym, T)} | {cost * 1e3:.1f} |")

    print("\n### Power (known differences)\n")
    print("| scenario | ours | scipy chi2_contingency | asymptotic Pearson |")
    print("|---|---|---|---|")
    for i, (name, p, q, n) in enumerate(ALTERNATIVES):
        ours, sc, asym, _ = rejection_rates(p, q, n, T, args.resamples, seed=200 + i)
        print(f"| {name} | {_pm(ours, T)} | {_pm(sc, T)} | {_pm(asym, T)} |")

    print("\n### Hellinger fidelity interval (95 %, basic bootstrap, 1000 resamples)\n")
    print("| scenario | true fidelity | coverage | mean width |")
    print("|---|---|---|---|")
    cov_trials = max(100, T // 10)
    for i, (name, p, q, n) in enumerate(COVERAGE):
        rng = np.random.default_rng(300 + i)
        p, q = np.array(p), np.array(q)
        truth = float(np.sum(np.sqrt(p * q)) ** 2)
        covered, width = 0, 0.0
        for _ in range(cov_trials):
            lo, hi = hellinger_interval(_counts(rng, n, p), _counts(rng, n, q), rng=rng)
            covered += lo <= truth <= hi
            width += hi - lo
        print(f"| {name} | {truth:.4f} | {_pm(covered / cov_trials, cov_trials)} | {width / cov_trials:.4f} |")
    print(f"\n{time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
