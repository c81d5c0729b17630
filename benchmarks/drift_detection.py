"""Drift-detector benchmark (protocol in docs/drift.md) for qpu_exporter.drift.

Feeds the exporter's own DriftMonitor (streaming, via observe_many one time step at a time)
with seeded synthetic series and prints target vs measured vs pass/fail, plus throughput and
memory per series. ARL0 = 500 per series and detector so the figures compare with the oracle
CUSUM (k = 0.5, h = 5.071, known mean and sd) (Page 1954; Montgomery's textbook table), which is run here on the same
data so every ratio to it is measured, not quoted.

Delay: t_alarm - tau + 1 for the first alarm at or after tau, over the series
with no alarm in [warm-up, tau); a series never alarming after tau is a miss and counts as +inf
in the median. The exporter's DriftMonitor runs with its shipped defaults except ARL0 = 500 and
warm-up = 100 (the protocol's); the feasibility section changes ARL0 only, and says so.

Run: .venv/bin/python benchmarks/drift_detection.py   (about 20 s on 2 cores)
"""

from __future__ import annotations

import json
import math
import sys
import time
import tracemalloc

import numpy as np

from qpu_exporter.drift.design import cusum_h, ewma_limit
from qpu_exporter.drift.monitor import DriftMonitor, DriftSettings

ARL0 = 500.0
WARMUP = 100
MU0, SIGMA0 = 100.0, 5.0
TAU = 200
DETECTORS = ("ewma", "cusum", "either")
# The protocol's oracle: CUSUM k = 0.5 with known mean and sd, h for two-sided ARL0 = 500
# (5.071; tests/test_drift_design.py checks cusum_h against the published table).
ORACLE_K = 0.5
ORACLE_H = cusum_h(ARL0, ORACLE_K)


# ------------------------------------------------------------------------ scenarios
def in_control_iid(rng, n, length):
    return MU0 + SIGMA0 * rng.standard_normal((n, length))


def in_control_ar1(rng, n, length, phi=0.5):
    e = rng.standard_normal((n, length)) * math.sqrt(1.0 - phi * phi)
    x = np.empty((n, length))
    x[:, 0] = rng.standard_normal(n)
    for t in range(1, length):
        x[:, t] = phi * x[:, t - 1] + e[:, t]
    return MU0 + SIGMA0 * x


def in_control_t4(rng, n, length):
    return MU0 + SIGMA0 * rng.standard_t(4, (n, length)) / math.sqrt(2.0)


def step(rng, n, length, size):
    x = in_control_iid(rng, n, length)
    x[:, TAU:] += size * SIGMA0
    return x


def drift(rng, n, length):
    x = in_control_iid(rng, n, length)
    x[:, TAU:] -= 0.02 * SIGMA0 * np.arange(1, length - TAU + 1)
    return x


def telegraph(rng, n, length):
    t1 = np.full((n, length), 100.0)
    for i in range(n):
        t, low = TAU, True
        while t < length:
            dwell = int(rng.geometric(1.0 / (20.0 if low else 150.0)))
            if low:
                t1[i, t : t + dwell] = 85.0
            t += dwell
            low = not low
    low = t1 < 100.0
    detectable = np.array([_run3(row[TAU:]) for row in low])
    return t1 * np.exp(0.05 * rng.standard_normal((n, length))), detectable, low


# ------------------------------------------------------------------------ running
def run(x: np.ndarray, transform: str, arl0: float = ARL0) -> dict[str, list[list[int]]]:
    """Alarm indices per detector per series, from the exporter's own DriftMonitor (shipped
    defaults except ARL0 and the protocol's warm-up)."""
    n, length = x.shape
    mon = DriftMonitor(DriftSettings(arl0=arl0, warmup=WARMUP, transform=transform))
    keys = [("bench", "b", f"t1:q{i}") for i in range(n)]
    out = {d: [[] for _ in range(n)] for d in ("ewma", "cusum")}
    slot = {k: i for i, k in enumerate(keys)}
    for t in range(length):
        res = mon.observe_many(keys, x[:, t], np.full(n, float(t)))
        for a in res.alarms:
            out[a.detector][slot[a.key]].append(a.index)
    out["either"] = [sorted(set(e) | set(c)) for e, c in zip(out["ewma"], out["cusum"])]
    return out


def oracle_standardize(x: np.ndarray, transform: str) -> np.ndarray:
    """The oracle knows the in-control mean and sd in the charted space (log T1 for TLS:
    mean log 100, sd 0.05)."""
    if transform == "auto":
        return (np.log(x) - math.log(100.0)) / 0.05
    return (x - MU0) / SIGMA0


def oracle_cusum(u: np.ndarray, k: float = ORACLE_K, h: float = ORACLE_H) -> list[list[int]]:
    """Alarm indices of the two-sided tabular CUSUM with known parameters, started in control
    at the end of the warm-up and restarted after each alarm (the protocol's oracle)."""
    n, length = u.shape
    cp, cm = np.zeros(n), np.zeros(n)
    out: list[list[int]] = [[] for _ in range(n)]
    for t in range(WARMUP, length):
        cp = np.maximum(0.0, cp + u[:, t] - k)
        cm = np.maximum(0.0, cm - u[:, t] - k)
        fired = (cp > h) | (cm > h)
        for i in np.flatnonzero(fired).tolist():
            out[i].append(t)
        cp[fired] = 0.0
        cm[fired] = 0.0
    return out


def delay_values(alarms: list[list[int]]) -> tuple[list[int], np.ndarray]:
    """(indices of series with no pre-change alarm, their delays; +inf = miss)."""
    idx = [i for i, a in enumerate(alarms) if not any(WARMUP <= j < TAU for j in a)]
    d = []
    for i in idx:
        after = [j for j in alarms[i] if j >= TAU]
        d.append(after[0] - TAU + 1 if after else math.inf)
    return idx, np.array(d, dtype=float)


def false_alarm_rate(alarms: list[list[int]], length: int) -> float:
    count = sum(sum(1 for i in a if i >= WARMUP) for a in alarms)
    return 1000.0 * count / (len(alarms) * (length - WARMUP))


def delays(alarms: list[list[int]], detectable: np.ndarray | None = None) -> dict:
    idx, d = delay_values(alarms)
    finite = d[np.isfinite(d)]
    return {
        "median": float(np.median(d)) if d.size else math.nan,
        "mean": float(finite.mean()) if finite.size else math.nan,
        "miss": float(np.mean(~np.isfinite(d))) if d.size else math.nan,
        "missed": [i for i, v in zip(idx, d.tolist()) if not math.isfinite(v)],
        "delays": d,
        "preFA": 1.0 - len(idx) / len(alarms),
        # misses among series whose change lasts >= 3 samples somewhere (TLS: short dips only)
        "miss3": float(np.mean(~np.isfinite(d[detectable[idx]]))) if detectable is not None else float("nan"),
    }


def _run3(mask: np.ndarray) -> bool:
    run = 0
    for v in mask:
        run = run + 1 if v else 0
        if run >= 3:
            return True
    return False


def throughput(n_series: int = 100_000) -> dict:
    mon = DriftMonitor(DriftSettings(arl0=ARL0, warmup=20, transform="auto"))
    keys = [("p", f"b{i // 1000}", f"t1:q{i % 1000}") for i in range(n_series)]
    rng = np.random.default_rng(5)
    for t in range(20):  # warm-up
        mon.observe_many(keys, MU0 * np.exp(0.05 * rng.standard_normal(n_series)), np.full(n_series, float(t)))
    times = []
    for t in range(20, 30):
        vals = MU0 * np.exp(0.05 * rng.standard_normal(n_series))
        t0 = time.perf_counter()
        mon.observe_many(keys, vals, np.full(n_series, float(t)))
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    rows = sum(1 for _ in mon.statistics())
    stat_s = time.perf_counter() - t0
    # Memory: build the same monitored fleet under tracemalloc (numpy buffers included).
    m = 20_000
    tracemalloc.start()
    small = DriftMonitor(DriftSettings(arl0=ARL0, warmup=20))
    k2 = keys[:m]
    for t in range(20):
        small.observe_many(k2, MU0 * np.exp(0.05 * rng.standard_normal(m)), np.full(m, float(t)))
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    state_bytes = len(json.dumps(small.state(), separators=(",", ":")))
    best = min(times)
    return {
        "poll_seconds_100k": float(np.median(times)),
        "updates_per_second": n_series / best,
        "statistics_rows_seconds": stat_s,
        "rows": rows,
        "bytes_per_series": current / m,
        "state_json_bytes_per_series": state_bytes / m,
    }


def oracle_ewma(u: np.ndarray, lam: float, limit: float) -> list[list[int]]:
    """Known-parameter two-sided EWMA (asymptotic limits), restarted after each alarm."""
    n, length = u.shape
    z = np.zeros(n)
    bound = limit * math.sqrt(lam / (2.0 - lam))
    out: list[list[int]] = [[] for _ in range(n)]
    for t in range(WARMUP, length):
        z = lam * u[:, t] + (1.0 - lam) * z
        fired = np.abs(z) > bound
        for i in np.flatnonzero(fired).tolist():
            out[i].append(t)
        z[fired] = 0.0
    return out


def share_within(d: np.ndarray, limit: float) -> float:
    """Fraction of (pre-alarm-free) series detected within `limit` samples: the median is
    <= limit iff this is >= 0.5, and unlike the integer median it moves smoothly."""
    return float(np.mean(d <= limit)) if d.size else math.nan


def feasibility(x_iid: np.ndarray, x_step1: np.ndarray, oracle_med: float) -> list[str]:
    """STEP1 evidence. (1) The exporter's DriftMonitor with ARL0 lowered (nothing else changed):
    how much false-alarm budget a 1-sigma median <= 8 would cost. (2) Known-parameter charts of
    the same families (no estimation at all) at ARL0 = 500: the best any of them reaches."""
    lines = [f"{'detector':44} {'FA/1000 iid':>11} {'STEP1 med':>9} {'P(d<=8)':>8}"]
    for arl0 in (500.0, 400.0, 300.0):
        ic, st = run(x_iid, "none", arl0), run(x_step1, "none", arl0)
        for d in ("ewma", "cusum"):
            _, dl = delay_values(st[d])
            lines.append(f"{'DriftMonitor ' + d + f', ARL0 {arl0:g}':44} {false_alarm_rate(ic[d], x_iid.shape[1]):11.2f} "
                         f"{np.median(dl):9g} {share_within(dl, oracle_med):8.3f}")
    u_iid, u_step = oracle_standardize(x_iid, "none"), oracle_standardize(x_step1, "none")
    known = [(f"known-parameter CUSUM k={k:g}, h={cusum_h(ARL0, k):.3f}", lambda u, k=k: oracle_cusum(u, k, cusum_h(ARL0, k)))
             for k in (0.4, 0.5, 0.6, 0.7, 0.8)]
    known += [(f"known-parameter EWMA lambda={lam:g}, L={ewma_limit(ARL0, lam):.3f}",
               lambda u, lam=lam: oracle_ewma(u, lam, ewma_limit(ARL0, lam))) for lam in (0.1, 0.15, 0.2, 0.3)]
    for label, fn in known:
        _, dl = delay_values(fn(u_step))
        lines.append(f"{label:44} {false_alarm_rate(fn(u_iid), x_iid.shape[1]):11.2f} "
                     f"{np.median(dl):9g} {share_within(dl, oracle_med):8.3f}")
    return lines


def main() -> int:
    t_start = time.perf_counter()
    rng = np.random.default_rng(20240601)
    scenarios = {
        "IC-iid": (in_control_iid(rng, 300, 1100), "none"),
        "IC-AR1": (in_control_ar1(rng, 300, 1100), "none"),
        "IC-t4": (in_control_t4(rng, 300, 1100), "none"),
        "STEP1": (step(rng, 1000, 500, -1.0), "none"),
        "STEP2": (step(rng, 1000, 500, -2.0), "none"),
        "DRIFT": (drift(rng, 1000, 500), "none"),
    }
    tls_x, tls_detectable, tls_low = telegraph(rng, 1000, 500)
    scenarios["TLS"] = (tls_x, "auto")
    results: dict[str, dict] = {}
    for name, (x, transform) in scenarios.items():
        alarms = run(x, transform)
        alarms["oracle"] = oracle_cusum(oracle_standardize(x, transform))
        if name.startswith("IC"):
            results[name] = {d: false_alarm_rate(a, x.shape[1]) for d, a in alarms.items()}
        else:
            det = tls_detectable if name == "TLS" else None
            results[name] = {d: delays(a, det) for d, a in alarms.items()}

    # Targets, verbatim from issue #5: FA <= 2.5 (iid), <= 5 (AR(1), t4); median delay <= 1.1x the
    # oracle "(1 sigma: 8, 2 sigma: 4 samples)"; drift <= 45; telegraph <= 3 with no misses.
    fa_targets = {"IC-iid": 2.5, "IC-AR1": 5.0, "IC-t4": 5.0}
    issue_oracle = {"STEP1": 8.0, "STEP2": 4.0}
    delay_targets = {"STEP1": 1.1 * 8, "STEP2": 1.1 * 4, "DRIFT": 45.0, "TLS": 3.0}
    print(f"Drift detection benchmark: ARL0={ARL0:g} per series and detector, warm-up {WARMUP}, "
          "estimated baseline (robust), seeded.")
    print(f"oracle = CUSUM k={ORACLE_K:g}, h={ORACLE_H:.3f} with known mean and sd, run on the same data.")
    print()
    header = f"{'scenario':8} {'metric':14} {'target':>6} {'oracle':>10} " + " ".join(f"{d:>14}" for d in DETECTORS)
    print(header)
    print("-" * len(header))
    failures = []
    for name, target in fa_targets.items():
        cells = []
        for d in DETECTORS:
            v = results[name][d]
            if d == "either":
                cells.append(f"{v:9.2f}     ")
                continue
            ok = v <= target
            failures += [] if ok else [f"{name}/{d}"]
            cells.append(f"{v:9.2f} {'pass' if ok else 'FAIL':>4}")
        print(f"{name:8} {'FA/1000':14} {target:6.2f} {results[name]['oracle']:10.2f} " + " ".join(f"{c:>14}" for c in cells))
    for name, target in delay_targets.items():
        cells = []
        for d in DETECTORS:
            r = results[name][d]
            cell = f"{r['median']:g}/{r['mean']:.1f}"
            if d == "either":
                cells.append(cell + "     ")
                continue
            ok = r["median"] <= target and (name != "TLS" or r["miss"] == 0.0)
            failures += [] if ok else [f"{name}/{d}"]
            cells.append(f"{cell} {'pass' if ok else 'FAIL':>4}")
        o = results[name]["oracle"]
        print(f"{name:8} {'delay med/mean':14} {target:6.1f} {o['median']:>4g}/{o['mean']:<5.1f} " + " ".join(f"{c:>14}" for c in cells))
    print()
    print("Per delay scenario: miss fraction / pre-change alarm fraction / share detected within the measured")
    print("oracle median (>= 0.5 iff median <= oracle's) / median ratio to the measured oracle (issue's oracle):")
    cols = ("oracle", *DETECTORS)
    print(f"{'scenario':8} " + " ".join(f"{c:>30}" for c in cols))
    for name in delay_targets:
        om = results[name]["oracle"]["median"]
        cells = []
        for d in cols:
            r = results[name][d]
            ratio = f"{r['median'] / om:.2f}x" + (f" ({r['median'] / issue_oracle[name]:.2f}x)" if name in issue_oracle else "")
            cells.append(f"{r['miss']:.3f}/{r['preFA']:.3f}/{share_within(r['delays'], om):.3f}/{ratio}")
        print(f"{name:8} " + " ".join(f"{c:>30}" for c in cells))
    print()
    # TLS misses: what the missed series' change actually looked like (oracle standardization).
    tls = results["TLS"]
    u_tls = oracle_standardize(tls_x, "auto")
    missed = sorted(set().union(*(tls[d]["missed"] for d in ("oracle", "ewma", "cusum"))))
    print(f"TLS misses: oracle {len(tls['oracle']['missed'])}, ewma {len(tls['ewma']['missed'])}, "
          f"cusum {len(tls['cusum']['missed'])} series; miss among series with a low episode of >= 3 samples: "
          f"ewma {tls['ewma']['miss3']:.3f}, cusum {tls['cusum']['miss3']:.3f}, oracle {tls['oracle']['miss3']:.3f}.")
    for i in missed:
        lows = np.flatnonzero(tls_low[i, TAU:]) + TAU
        who = ",".join(d for d in ("oracle", "ewma", "cusum") if i in tls[d]["missed"])
        print(f"  series {i:4d} missed by {who:18} low-state samples {lows.tolist()} at "
              f"{np.round(u_tls[i, lows], 2).tolist()} sd (in-control noise is N(0, 1))")
    print()
    print("STEP1 feasibility (median <= 8 needs P(d<=8) >= 0.5):")
    for line in feasibility(scenarios["IC-iid"][0], scenarios["STEP1"][0], 8.0):
        print("  " + line)
    print()
    tp = throughput()
    print("Throughput and memory (100k series, steady state, one sample each per poll):")
    print(f"  poll of 100k series      {tp['poll_seconds_100k']:.3f} s (target <= 1 s: "
          f"{'pass' if tp['poll_seconds_100k'] <= 1.0 else 'FAIL'})")
    print(f"  updates per second       {tp['updates_per_second']:,.0f}")
    print(f"  statistics() 200k rows   {tp['statistics_rows_seconds']:.3f} s")
    print(f"  memory per series        {tp['bytes_per_series']:.0f} B (in process, monitoring phase)")
    print(f"  state JSON per series    {tp['state_json_bytes_per_series']:.0f} B")
    print()
    print(f"'either' = first alarm of the two charts (what an alert on qpu_drift_alarm sees); pass/fail is "
          f"per detector. Failed: {', '.join(failures) or 'none'}. Wall time {time.perf_counter() - t_start:.1f} s.")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
