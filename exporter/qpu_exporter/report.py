"""PNG report from the state file, for people without Grafana (`qpu-exporter report`).

Three pictures: the fleet over time, one qubit's T1 with the drift alarms the exporter's own
detectors raise on it (replayed with the same code and settings as the running exporter),
and the latest probe's RB decay with its fit; with per-workload data in the state, a fourth:
cost and job success per workload, against the budgets and objectives of the config given.
Reads the store only; never calls a provider.
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


MAX_POINTS = 300  # per line of the fleet summary


def in_force_medians(rows, target_filter, faulty: float | None = None,
                     max_points: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """The median, over every target (qubit or gate) that passes the filter, of its value in
    force at each time: its latest measurement at or before then, as a Prometheus gauge shows
    it. ``rows`` are (target, measured_at, value). A qubit re-measured alone moves only its
    own contribution, never the median to its new value. A value at or above ``faulty`` (the
    gate-error sentinel 1 of a dead coupler, which exposition leaves out) removes the target
    until it is measured again.
    Evaluated at each measurement time, or at ``max_points`` evenly spaced times when there
    are more."""
    rows = sorted((t, target, v) for target, t, v in rows if target_filter(target))
    if not rows:
        return [], []
    times = sorted({t for t, _, _ in rows})
    if len(times) > max_points:
        first, last = times[0], times[-1]
        times = [first + (last - first) * i / (max_points - 1) for i in range(max_points - 1)] + [last]
    in_force: dict[str, float] = {}
    xs, ys = [], []
    i = 0
    for t in times:
        while i < len(rows) and rows[i][0] <= t:
            _, target, v = rows[i]
            if faulty is not None and v >= faulty:
                in_force.pop(target, None)
            else:
                in_force[target] = v
            i += 1
        if in_force:
            xs.append(t)
            ys.append(float(np.median(list(in_force.values()))))
    return xs, ys


# (quantity, target filter, faulty sentinel, plot scale, title) of the summary's panels
SUMMARY_PANELS = (
    ("t1", lambda t: True, None, 1e6, "median T1 (µs)"),
    ("readout_error", lambda t: True, None, 100, "median readout error (%)"),
    ("gate_error", lambda t: t.count("_") == 1, 1.0, 100, "median 2-qubit gate error (%)"),  # "cz:3_4"
)


def summary_series(store: Store) -> dict[str, dict[tuple[str, str], tuple[list[float], list[float]]]]:
    """quantity -> (provider, backend) -> (times, in-force medians): what the fleet summary plots."""
    by_backend: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for provider, backend, target, quantity, t, v in store.calibration_history():
        by_backend[(provider, backend)][quantity].append((target, t, v))
    return {quantity: {key: in_force_medians(q.get(quantity, []), keep, faulty) for key, q in sorted(by_backend.items())}
            for quantity, keep, faulty, _, _ in SUMMARY_PANELS}


def _fleet_summary(store: Store, out: Path, plt) -> Path:
    series_of = summary_series(store)
    fig, axes = plt.subplots(2, 2, figsize=(13, 8), constrained_layout=True, sharex=True)
    for ax, (quantity, _, _, scale, title) in zip((axes[0][0], axes[0][1], axes[1][0]), SUMMARY_PANELS):
        for (provider, backend), (xs, ys) in series_of[quantity].items():
            if xs:
                ax.step(_dates(xs), np.array(ys) * scale, where="post", label=f"{backend} ({provider})")
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
    from .probes.runner import survival_of

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


def workload_totals(counters) -> dict[str, dict[str, float]]:
    """All-time totals per workload from the persisted counters: jobs, failed, cost_usd."""
    names = {"qpu_workload_jobs_total": "jobs", "qpu_workload_jobs_failed_total": "failed",
             "qpu_workload_cost_usd_total": "cost_usd"}
    out: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(names.values(), 0.0))
    for (name, labels), value in counters.items():
        if name in names:
            out[dict(labels)["workload"]][names[name]] += value
    return dict(out)


def workload_days(rows) -> dict[str, dict[float, dict[str, float]]]:
    """Per workload and UTC day (start, Unix seconds): jobs, failed, cost_usd (known costs only)
    and unknown_cost (records whose cost is not known, or not yet), from store.workload_jobs rows.
    A billing record that is not a job adds its cost only; a job billed with another record
    (an IBM session's) adds no cost of its own, the record it is billed with does."""
    out: dict[str, dict[float, dict[str, float]]] = defaultdict(dict)
    for workload, status, finished_at, cost, cost_state, is_job in rows:
        day = out[workload].setdefault(finished_at - finished_at % 86400,
                                       {"jobs": 0.0, "failed": 0.0, "cost_usd": 0.0, "unknown_cost": 0.0})
        if is_job:
            day["jobs"] += 1
            day["failed"] += status == "failed"
        if cost is not None:
            day["cost_usd"] += cost
        elif cost_state in ("pending", "unknown"):
            day["unknown_cost"] += 1
    return dict(out)


def _workloads_page(store: Store, out: Path, plt, workloads) -> Path | None:
    totals = workload_totals(store.counters())
    if not totals:
        return None
    days = workload_days(store.workload_jobs())
    budgets = {} if workloads is None else {n: b.usd_per_day for n, b in workloads.budgets.items()}
    objectives = {} if workloads is None else {n: o.job_success for n, o in workloads.objectives.items()
                                                if o.job_success is not None}
    order = sorted(totals, key=lambda w: -totals[w]["cost_usd"])
    colors = {w: f"C{i % 10}" for i, w in enumerate(order)}
    all_days = sorted({d for per_day in days.values() for d in per_day})
    span = _dates([all_days[0] - 86400, all_days[-1] + 86400]) if all_days else None
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5), constrained_layout=True)
    ax = axes[0][0]
    for w in order:
        pts = sorted(days.get(w, {}).items())
        if pts:
            ax.plot(_dates([d for d, _ in pts]), [v["cost_usd"] for _, v in pts], marker="o", color=colors[w], label=w)
        if w in budgets:
            ax.axhline(budgets[w], color=colors[w], linestyle="--", linewidth=1, label=f"{w} budget")
    unknown = sum(v["unknown_cost"] for d in days.values() for v in d.values())
    ax.set_title("spend per workload per UTC day (USD)" + (f"; {unknown:.0f} jobs of cost not known (yet)" if unknown else ""))
    if span:
        ax.set_xlim(*span)
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax = axes[0][1]
    ax.barh(order, [totals[w]["cost_usd"] for w in order], color=[colors[w] for w in order])
    ax.invert_yaxis()
    ax.set_title("spend per workload, all time (USD)")
    ax = axes[1][0]
    for w in order:
        pts = sorted((d, 1 - v["failed"] / v["jobs"]) for d, v in days.get(w, {}).items() if v["jobs"])
        if pts:
            ax.plot(_dates([d for d, _ in pts]), [r * 100 for _, r in pts], marker="o", color=colors[w], label=w)
        if w in objectives:
            ax.axhline(objectives[w] * 100, color=colors[w], linestyle="--", linewidth=1, label=f"{w} objective")
    ax.set_title("job success per workload per UTC day (%)")
    if span:
        ax.set_xlim(*span)
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax = axes[1][1]
    success = [100 * (1 - totals[w]["failed"] / totals[w]["jobs"]) if totals[w]["jobs"] else math.nan for w in order]
    ax.barh(order, success, color=[colors[w] for w in order])
    for i, w in enumerate(order):
        ax.text(0.5, i, f"{totals[w]['jobs']:.0f} jobs, {totals[w]['failed']:.0f} failed", va="center", fontsize=8)
        if w in objectives:
            ax.plot([objectives[w] * 100] * 2, [i - 0.4, i + 0.4], color="black", linewidth=2)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_title("job success per workload, all time (%); black: its objective" if objectives
                 else "job success per workload, all time (%); objectives: pass --config")
    fig.suptitle("qpu-exporter workloads: cost and success" + ("" if workloads is not None
                 else " (budgets and objectives: pass --config)"))
    path = out / "workloads.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def render_report(store: Store, out: Path, settings: DriftSettings, backend: tuple[str, str] | None = None,
                  qubit: int | None = None, workloads=None) -> list[Path]:
    """``workloads``: the config's workloads block, for budgets and objectives on the workloads page."""
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
    page = _workloads_page(store, out, plt, workloads)
    if page is not None:
        paths.append(page)
    return paths
