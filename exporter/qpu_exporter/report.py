"""PNG report from the state file, for people without Grafana (`qpu-exporter report`).

Three pictures: the fleet over time, one qubit's T1 with the drift alarms the exporter's own
detectors raise on it (replayed with the same code and settings as the running exporter),
and the latest probe's RB decay with its fit. Reads the store only; never calls a provider.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .drift import DriftSettings
from .drift.backtest import Row, run_backtest
from .store import Store


def _dates(ts):
    return [datetime.fromtimestamp(t, tz=timezone.utc) for t in ts]


def _median_series(rows, target_filter, bucket_seconds: float):
    """Median per time bucket of (measured_at, value) rows whose target passes the filter."""
    buckets: dict[float, list[float]] = defaultdict(list)
    for target, t, v in rows:
        if target_filter(target):
            buckets[t - t % bucket_seconds].append(v)
    keys = sorted(buckets)
    return keys, [float(np.median(buckets[k])) for k in keys]


def _fleet_summary(store: Store, out: Path, plt) -> Path:
    history = store.calibration_history()
    by_backend: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for provider, backend, target, quantity, t, v in history:
        by_backend[(provider, backend)][quantity].append((target, t, v))
    span = max((t for *_, t, _ in history), default=1) - min((t for *_, t, _ in history), default=0)
    bucket = max(span / 60, 1.0)
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), constrained_layout=True, sharex=True)
    panels = (
        (axes[0][0], "t1", lambda t: True, 1e6, "median T1 (µs)"),
        (axes[0][1], "readout_error", lambda t: True, 100, "median readout error (%)"),
        (axes[1][0], "gate_error", lambda t: t.count("_") == 1, 100, "median 2-qubit gate error (%)"),
    )
    for ax, quantity, keep, scale, title in panels:
        for (provider, backend), q in sorted(by_backend.items()):
            xs, ys = _median_series(q.get(quantity, []), keep, bucket)
            if xs:
                ax.plot(_dates(xs), np.array(ys) * scale, marker=".", label=f"{backend} ({provider})")
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax = axes[1][1]
    runs = store.probe_runs(status="ok", limit=10_000)
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in runs:
        rec = store.probe_run(r["id"]) or {}
        result = (rec.get("record") or {}).get("result") or {}
        if math.isfinite(result.get("epc", math.nan)):
            series[f"{r['backend']} q{r['qubits']}"].append((r["finished_at"], result["epc"]))
    for label, pts in sorted(series.items()):
        pts.sort()
        ax.plot(_dates([p[0] for p in pts]), [p[1] for p in pts], marker="o", label=label)
    ax.set_yscale("log")
    ax.set_title("probe error per Clifford (RB)" if series else "probe error per Clifford (no probe yet)")
    if series:
        ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.suptitle("qpu-exporter fleet summary")
    path = out / "fleet_summary.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _pick_qubit(store: Store, backend_key: tuple[str, str] | None) -> tuple[str, str, str] | None:
    """The (provider, backend, target) whose T1 moved the most, relative to its median."""
    best, best_score = None, -1.0
    series: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for provider, backend, target, quantity, _t, v in store.calibration_history():
        if quantity == "t1" and (backend_key is None or (provider, backend) == backend_key):
            series[(provider, backend, target)].append(v)
    for key, vals in series.items():
        if len(vals) >= 5:
            score = float(np.log(np.max(vals) / np.min(vals)))
            if score > best_score:
                best, best_score = key, score
    return best


def _qubit_t1(store: Store, out: Path, plt, key, settings: DriftSettings) -> Path:
    provider, backend, target = key
    points = [(t, v) for p, b, tg, q, t, v in store.calibration_history(provider, backend)
              if tg == target and q == "t1"]
    series = f"t1:{target}"
    rows = [Row(i + 2, t, series, v) for i, (t, v) in enumerate(points)]
    alarms = run_backtest(rows, arl0=settings.arl0, warmup=settings.warmup, transform=settings.transform)["alarms"]
    fig, ax = plt.subplots(figsize=(12, 5), constrained_layout=True)
    ts, vs = zip(*points) if points else ((), ())
    ax.plot(_dates(ts), np.array(vs) * 1e6, marker=".", color="tab:blue", label="T1 as measured")
    for det, color, marker in (("ewma", "tab:red", "v"), ("cusum", "tab:orange", "^")):
        hits = [a for a in alarms if a["detector"] == det]
        if hits:
            ax.scatter(_dates([a["timestamp"] for a in hits]), [points[a["index"]][1] * 1e6 for a in hits],
                       s=120, facecolors="none", edgecolors=color, marker=marker, linewidths=2,
                       label=f"{det.upper()} alarm ({len(hits)})")
    if len(points) < settings.warmup:
        ax.text(0.01, 0.95, f"{len(points)} samples: detectors still warming up ({settings.warmup} needed)",
                transform=ax.transAxes, fontsize=9, va="top")
    ax.set_ylabel("T1 (µs)")
    ax.set_title(f"{backend} ({provider}) qubit {target.removeprefix('q')}: T1 with drift alarms "
                 f"(ARL0 {settings.arl0:g}, warm-up {settings.warmup})")
    ax.legend()
    path = out / f"t1_{backend}_{target}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _probe_decay(store: Store, out: Path, plt) -> Path | None:
    from .probes.fitting import survival_of

    runs = store.probe_runs(status="ok", limit=1)
    if not runs:
        return None
    run = store.probe_run(runs[0]["id"])
    record = run["record"]
    n = record["design"]["num_qubits"]
    result = record.get("result") or {}
    fig, ax = plt.subplots(figsize=(10, 5.5), constrained_layout=True)
    for interleaved, color, label in ((False, "tab:blue", "standard RB"), (True, "tab:green", "interleaved")):
        pts = [(s["length"], survival_of(s["counts"], n)[0]) for s in record["sequences"] if bool(s["interleaved"]) == interleaved]
        if not pts:
            continue
        m, y = zip(*pts)
        ax.scatter(m, y, s=12, alpha=0.5, color=color, label=f"{label}: one point per sequence")
        alpha = result.get("alpha") if not interleaved else (result.get("interleaved") or {}).get("alpha_interleaved")
        a, b = result.get("a"), result.get("b")
        if alpha and a is not None and b is not None and all(map(math.isfinite, (alpha, a, b))):
            grid = np.linspace(0, max(m), 300)
            ax.plot(grid, a * alpha**grid + b, color=color, label=f"fit A·p^m+B, p={alpha:.5f}")
    ax.set_xlabel("sequence length m (Cliffords)")
    ax.set_ylabel("survival probability")
    epc = result.get("epc", math.nan)
    title = f"latest probe: {run['backend']} qubits {run['qubits']} - EPC {epc:.2e} ± {result.get('epc_stderr', math.nan):.1e}"
    inter = result.get("interleaved")
    if inter:
        title += f", {inter.get('gate')} error {inter.get('gate_error', math.nan):.2e}"
    ax.set_title(title)
    ax.legend(fontsize=8)
    path = out / "probe_rb_decay.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def render_report(store: Store, out: Path, settings: DriftSettings, backend: tuple[str, str] | None = None,
                  qubit: int | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    paths = [_fleet_summary(store, out, plt)]
    if qubit is not None and backend is not None:
        key = (backend[0], backend[1], f"q{qubit}")
    else:
        key = _pick_qubit(store, backend)
    if key is not None:
        paths.append(_qubit_t1(store, out, plt, key, settings))
    decay = _probe_decay(store, out, plt)
    if decay is not None:
        paths.append(decay)
    return paths
