"""Metric families from the latest view, rendered once per update.

A scrape never computes: the renderer thread rebuilds the text (and a gzip copy) when the
view changes, coalescing bursts of updates, and the HTTP handler serves whichever rendering
is current. Escaping and number formatting are client_python's (``generate_latest``).
The exporter's own process metrics are small and rendered per scrape so RSS and CPU are
live.
"""

from __future__ import annotations

import gzip
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector

from .aggregates import HISTOGRAMS
from .catalog import SPECS, qubit_metric_name
from .store import LabelKey
from .view import FleetView, ViewCopy

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ZERO_COUNTERS = ("qpu_jobs_total", "qpu_jobs_failed_total", "qpu_jobs_cancelled_total",
                 "qpu_job_usage_seconds_total", "qpu_cost_usd_total")


def _gauge(name: str) -> GaugeMetricFamily:
    spec = SPECS[name]
    return GaugeMetricFamily(name, spec.help, labels=list(spec.labels))


def _counter(name: str) -> CounterMetricFamily:
    spec = SPECS[name]
    return CounterMetricFamily(name, spec.help, labels=list(spec.labels))


def _ts(x: float | None) -> float:
    return math.nan if x is None else x


def families(
    v: ViewCopy,
    counters: dict[tuple[str, LabelKey], float],
    *,
    version: str,
    revision: str,
    daily_budget_usd: float,
    extra: Iterable[Metric] = (),
) -> list[Metric]:
    out: list[Metric] = []
    build = _gauge("qpu_exporter_build_info")
    build.add_metric([version, revision], 1)
    out.append(build)

    success, last_ok, duration = (
        _gauge("qpu_exporter_collector_success"),
        _gauge("qpu_exporter_collector_last_success_timestamp_seconds"),
        _gauge("qpu_exporter_collector_duration_seconds"),
    )
    for (provider, backend, collector), h in sorted(v.health.items()):
        labels = [provider, backend, collector]
        success.add_metric(labels, 1 if h.success else 0)
        if h.last_success is not None:
            last_ok.add_metric(labels, h.last_success)
        duration.add_metric(labels, h.duration)
    out += [success, last_ok, duration]

    info, up, maint, window, pending = (
        _gauge("qpu_backend_info"), _gauge("qpu_backend_up"), _gauge("qpu_backend_maintenance"),
        _gauge("qpu_backend_availability_window_open"), _gauge("qpu_backend_pending_jobs"),
    )
    for key, b in sorted(v.backends.items()):
        info.add_metric([b.provider, b.backend, str(b.num_qubits), b.processor], 1)
        st = v.status.get(key)
        if st is not None:
            up.add_metric(list(key), 1 if st.operational else 0)
            maint.add_metric(list(key), 1 if "maintenance" in st.status_message.lower() else 0)
            window.add_metric(list(key), 1 if st.window_open else 0)
            pending.add_metric(list(key), st.pending_jobs)
    out += [info, up, maint, window, pending]
    out += _calibration_families(v)
    out += _counter_families(v, counters)
    usage_fams = {k: _gauge(f"qpu_instance_usage_{k}") for k in ("consumed_seconds", "limit_seconds", "remaining_seconds")}
    for provider, usage in sorted(v.usage.items()):
        for k, fam in usage_fams.items():
            if usage.get(k) is not None:
                fam.add_metric([provider], float(usage[k]))
    out += usage_fams.values()
    budget = _gauge("qpu_cost_budget_daily_usd")
    budget.add_metric([], daily_budget_usd)
    out.append(budget)
    out.extend(extra)
    return out


def _calibration_families(v: ViewCopy) -> list[Metric]:
    cal_ts = _gauge("qpu_backend_calibration_timestamp_seconds")
    op_qubits, dead = _gauge("qpu_backend_operational_qubits"), _gauge("qpu_backend_dead_couplers")
    qubit_fams: dict[str, GaugeMetricFamily] = {}
    q_ts, q_op = _gauge("qpu_qubit_measurement_timestamp_seconds"), _gauge("qpu_qubit_operational")
    g_err, g_dur, g_op, g_ts = (
        _gauge("qpu_gate_error_ratio"), _gauge("qpu_gate_duration_seconds"),
        _gauge("qpu_gate_operational"), _gauge("qpu_gate_measurement_timestamp_seconds"),
    )
    for (provider, backend), snap in sorted(v.calibration.items()):
        if snap.calibrated_at is not None:
            cal_ts.add_metric([provider, backend], snap.calibrated_at)
        op_qubits.add_metric([provider, backend], sum(1 for q in snap.qubits if q.operational))
        dead.add_metric([provider, backend], sum(1 for g in snap.gates if len(g.qubits) == 2 and not g.operational))
        for q in snap.qubits:
            qs = str(q.qubit)
            q_op.add_metric([provider, backend, qs], 1 if q.operational else 0)
            for quantity, m in q.values.items():
                name = qubit_metric_name(quantity)
                fam = qubit_fams.get(name)
                if fam is None:
                    fam = qubit_fams[name] = _gauge(name)
                fam.add_metric([provider, backend, qs], m.value)
                if m.measured_at is not None:
                    q_ts.add_metric([provider, backend, qs, quantity], m.measured_at)
        for g in snap.gates:
            labels = [provider, backend, g.gate, g.qubits_label]
            g_op.add_metric(labels, 1 if g.operational else 0)
            if g.error is not None:
                g_err.add_metric(labels, g.error.value)
                if g.error.measured_at is not None:
                    g_ts.add_metric(labels, g.error.measured_at)
            if g.duration is not None:
                g_dur.add_metric(labels, g.duration.value)
    return [cal_ts, op_qubits, dead, *qubit_fams.values(), q_ts, q_op, g_err, g_dur, g_op, g_ts]


def _counter_families(v: ViewCopy, counters: dict[tuple[str, LabelKey], float]) -> list[Metric]:
    by_name: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for (name, labels), value in counters.items():
        by_name[name].append((dict(labels), value))
    # Series known in advance are exported as 0 rather than missing (exporter guidelines).
    for key in v.backends:
        for name in ZERO_COUNTERS:
            have = {(d["provider"], d["backend"]) for d, _ in by_name[name]}
            if key not in have:
                by_name[name].append(({"provider": key[0], "backend": key[1]}, 0.0))

    out: list[Metric] = []
    for name, spec in SPECS.items():
        if name.startswith("qpu_drift_"):
            continue  # the drift feed renders its own families
        if spec.type == "counter":
            fam = _counter(name)
            if not spec.labels and not by_name.get(name):
                by_name[name].append(({}, 0.0))  # an unlabelled counter always exists
            for labels, value in sorted(by_name.get(name, ()), key=lambda x: sorted(x[0].items())):
                fam.add_metric([labels.get(l, "") for l in spec.labels], value)
            out.append(fam)
        elif spec.type == "histogram":
            out.append(_histogram_family(name, by_name, v))
    return out


def _histogram_family(name: str, by_name, v: ViewCopy) -> HistogramMetricFamily:
    spec = SPECS[name]
    fam = HistogramMetricFamily(name, spec.help, labels=list(spec.labels))
    buckets: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    sums: dict[tuple[str, ...], float] = {}
    for labels, value in by_name.get(f"{name}_bucket", ()):
        buckets[tuple(labels[l] for l in spec.labels)][labels["le"]] = value
    for labels, value in by_name.get(f"{name}_sum", ()):
        sums[tuple(labels[l] for l in spec.labels)] = value
    for key in v.backends:
        buckets.setdefault(key, {})
    bounds = [repr(float(b)) for b in HISTOGRAMS[name]] + ["+Inf"]
    for key in sorted(buckets):
        got = buckets[key]
        fam.add_metric(list(key), [(b, got.get(b, 0.0)) for b in bounds], sums.get(key, 0.0))
    return fam


class _Families:
    def __init__(self, fams: list[Metric]):
        self._fams = fams

    def collect(self):
        return self._fams


@dataclass(frozen=True, slots=True)
class Rendering:
    version: int
    view: ViewCopy | None  # the state this rendering shows
    text: bytes
    gzipped: bytes
    rendered_at: float
    render_seconds: float


class Renderer:
    """Owns the current rendering; rebuilds it on a background thread when the view changes."""

    def __init__(self, view: FleetView, build: Callable[[ViewCopy], list[Metric]]):
        self._view = view
        self._build = build
        self._current = Rendering(-1, None, b"", gzip.compress(b"", 1), 0.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="renderer", daemon=True)
        self._self_registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._self_registry)

    @property
    def current(self) -> Rendering:
        return self._current

    def start(self) -> None:
        self.render()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def render(self) -> Rendering:
        started = time.perf_counter()
        snapshot = self._view.copy()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families(self._build(snapshot)))
        text = generate_latest(registry)
        # Level 1: a tenth of level 9's CPU for ~30 % larger output (ecosystem.md §1.7).
        rendering = Rendering(snapshot.version, snapshot, text, gzip.compress(text, 1), time.time(), time.perf_counter() - started)
        self._current = rendering  # one reference swap: readers see the old or the new, never a mix
        return rendering

    def _loop(self) -> None:
        seen = self._current.version
        while not self._stop.is_set():
            version = self._view.wait_for_change(seen, timeout=1.0)
            if version == seen or self._stop.is_set():
                continue
            # Coalesce a burst of updates (one poll touches the view several times).
            time.sleep(0.05)
            try:
                seen = self.render().version
            except Exception:  # a rendering bug must not kill the renderer
                log.exception("msg=%s", "rendering failed")
                seen = version

    def self_metrics(self) -> bytes:
        return generate_latest(self._self_registry)
