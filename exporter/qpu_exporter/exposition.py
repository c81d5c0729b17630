"""Metric families from the latest view, rendered once per update.

A scrape never computes: the renderer thread rebuilds the text (and a gzip copy) when the
view changes, coalescing bursts of updates, and the HTTP handler serves whichever rendering
is current. The families are client_python ``Metric`` objects (so tests and tools can use
client_python on them); the bytes come from ``textformat``, which writes exactly what
``generate_latest`` would, about three times faster (docs/performance.md).

Memory: one ``Rendering`` (text plus its gzip copy, ~6 % of the text, docs/performance.md) is
current. While a rebuild runs, the old one stays current and the new one is being built,
so at most two renderings exist; the swap is one reference assignment and the old one is
freed once the last scrape that took it finishes. A rebuild whose bytes equal the current
text keeps the current gzip copy instead of compressing again.

CPU: rebuilds are spaced by at least ``REBUILD_SPACING`` times the last rebuild's duration,
so with many backends polling back to back the renderer uses at most ~1/(1+spacing) of a
core while data stays at most a few rebuild durations old.

The exporter's own process metrics are small and rendered per scrape so RSS and CPU are
live.
"""

from __future__ import annotations

import gzip
import math
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample
from prometheus_client.process_collector import ProcessCollector

from .aggregates import HISTOGRAMS
from . import textformat
from .logs import get_logger
from .catalog import SPECS, qubit_metric_name
from .store import LabelKey
from .model import REPORTED_EPC
from .view import FleetView, ViewCopy

log = get_logger(__name__)

CONTENT_TYPE = textformat.CONTENT_TYPE_TEXT
# Wait at least this many times the last rebuild's duration before the next rebuild.
REBUILD_SPACING = 4.0
# Let a burst of view updates (one poll touches the view several times) settle first.
COALESCE_SECONDS = 0.05
SWITCH_INTERVAL = 0.001
# Process metrics (CPU, RSS, open fds) read several /proc files: half of a scrape's Python
# time at 100k series. Scrapes within this many seconds share one reading, gzip copy included.
SELF_METRICS_TTL_SECONDS = 1.0
ZERO_COUNTERS = ("qpu_jobs_total", "qpu_jobs_failed_total", "qpu_jobs_cancelled_total",
                 "qpu_job_usage_seconds_total", "qpu_cost_usd_total")
# A workload seen on a backend (any of these there) gets all of them, at 0 where nothing moved,
# so a failure ratio or a spend is 0 rather than missing for a workload that never failed or
# paid (and a workload only billing records moved, an IBM session's charge, has its job count).
WORKLOAD_ZERO_COUNTERS = ("qpu_workload_jobs_total", "qpu_workload_jobs_failed_total",
                          "qpu_workload_usage_seconds_total", "qpu_workload_cost_usd_total")
WORKLOAD_PREFIX = "qpu_workload_"


def _gauge(name: str) -> GaugeMetricFamily:
    spec = SPECS[name]
    return GaugeMetricFamily(name, spec.help, labels=list(spec.labels))


def _counter(name: str) -> CounterMetricFamily:
    spec = SPECS[name]
    return CounterMetricFamily(name, spec.help, labels=list(spec.labels))


# (provider, backend) -> (the snapshot, its samples by family name, their rendered lines).
# A poll replaces a backend's snapshot object, so "same object" means "same samples": a
# rebuild re-creates and re-formats samples only for backends polled since the last one
# (the dominant cost at 100k series).
CalibrationCache = dict[tuple[str, str], tuple[object, dict[str, list[Sample]], dict[str, str]]]
# (histogram, label values) -> (bucket values and sum, samples, their rendered lines): a rebuild
# re-creates only the histograms whose counts moved since the last one (with per-workload
# histograms there are tens of thousands of samples, most of them unchanged).
HistogramCache = dict[tuple[str, tuple[str, ...]], tuple[tuple[float, ...], list[Sample], str]]


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
    calibration_cache: CalibrationCache | None = None,
    workloads: bool = False,
    histogram_cache: HistogramCache | None = None,
) -> list[Metric]:
    """The exporter's metric families from a view copy. ``calibration_cache``, kept by the
    caller between rebuilds, lets a rebuild redo only the backends polled since the last;
    ``histogram_cache`` only the histograms whose counts moved. ``workloads``: export the
    per-workload families (config has a workloads: block); without it none of them appears,
    not even empty."""
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
    out += _calibration_families(v, {} if calibration_cache is None else calibration_cache)
    out += _counter_families(v, counters, workloads, {} if histogram_cache is None else histogram_cache)
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


_BACKEND_FAMILIES = (
    "qpu_backend_calibration_timestamp_seconds", "qpu_backend_operational_qubits", "qpu_backend_dead_couplers",
)
_QUBIT_TAIL = ("qpu_qubit_measurement_timestamp_seconds", "qpu_qubit_operational")
_GATE_FAMILIES = (
    "qpu_gate_error_ratio", "qpu_gate_duration_seconds", "qpu_gate_operational",
    "qpu_gate_measurement_timestamp_seconds", "qpu_reported_epc_ratio",
)


def _backend_calibration_samples(provider: str, backend: str, snap) -> dict[str, list[Sample]]:
    out: dict[str, list[Sample]] = defaultdict(list)
    pb = {"provider": provider, "backend": backend}
    if snap.calibrated_at is not None:
        out["qpu_backend_calibration_timestamp_seconds"].append(
            Sample("qpu_backend_calibration_timestamp_seconds", pb, snap.calibrated_at))
    out["qpu_backend_operational_qubits"].append(
        Sample("qpu_backend_operational_qubits", pb, sum(1 for q in snap.qubits if q.operational)))
    out["qpu_backend_dead_couplers"].append(Sample("qpu_backend_dead_couplers", pb, sum(
        1 for g in snap.gates if len(g.qubits) == 2 and not g.operational and g.gate != REPORTED_EPC)))
    q_ts, q_op = out["qpu_qubit_measurement_timestamp_seconds"], out["qpu_qubit_operational"]
    for q in snap.qubits:
        qs = str(q.qubit)
        labels = {"provider": provider, "backend": backend, "qubit": qs}
        q_op.append(Sample("qpu_qubit_operational", labels, 1 if q.operational else 0))
        for quantity, m in q.values.items():
            name = qubit_metric_name(quantity)
            out[name].append(Sample(name, labels, m.value))
            if m.measured_at is not None:
                q_ts.append(Sample("qpu_qubit_measurement_timestamp_seconds",
                                   {"provider": provider, "backend": backend, "qubit": qs, "quantity": quantity},
                                   m.measured_at))
    g_err, g_dur = out["qpu_gate_error_ratio"], out["qpu_gate_duration_seconds"]
    g_op, g_ts = out["qpu_gate_operational"], out["qpu_gate_measurement_timestamp_seconds"]
    reported = out["qpu_reported_epc_ratio"]
    for g in snap.gates:
        if g.gate == REPORTED_EPC:  # a reported RB figure, not a gate (model.REPORTED_EPC)
            if g.error is not None:
                reported.append(Sample("qpu_reported_epc_ratio", {**pb, "qubits": g.qubits_label}, g.error.value))
            continue
        labels = {"provider": provider, "backend": backend, "gate": g.gate, "qubits": g.qubits_label}
        g_op.append(Sample("qpu_gate_operational", labels, 1 if g.operational else 0))
        if g.error is not None:
            g_err.append(Sample("qpu_gate_error_ratio", labels, g.error.value))
            if g.error.measured_at is not None:
                g_ts.append(Sample("qpu_gate_measurement_timestamp_seconds", labels, g.error.measured_at))
        if g.duration is not None:
            g_dur.append(Sample("qpu_gate_duration_seconds", labels, g.duration.value))
    return dict(out)


def _calibration_families(v: ViewCopy, cache: CalibrationCache) -> list[Metric]:
    per_backend = []
    for key, snap in sorted(v.calibration.items()):
        cached = cache.get(key)
        if cached is None or cached[0] is not snap:
            samples = _backend_calibration_samples(key[0], key[1], snap)
            text = {name: textformat.render_samples(s) for name, s in samples.items()}
            cached = (snap, samples, text)
            cache[key] = cached
        per_backend.append(cached[1:])
    for key in [k for k in cache if k not in v.calibration]:
        cache.pop(key, None)  # a backend that left the view
    # Qubit quantity families in the order quantities are first met, as before.
    qubit_names: dict[str, None] = {}
    for samples, _ in per_backend:
        for name in samples:
            if name.startswith("qpu_qubit_") and name not in _QUBIT_TAIL:
                qubit_names.setdefault(name)
    out: list[Metric] = []
    for name in (*_BACKEND_FAMILIES, *qubit_names, *_QUBIT_TAIL, *_GATE_FAMILIES):
        fam = _gauge(name)
        text = []
        for samples, rendered in per_backend:
            if name in samples:
                fam.samples.extend(samples[name])
                text.append(rendered[name])
        setattr(fam, textformat.SAMPLE_TEXT_ATTR, text)
        out.append(fam)
    return out


def _counter_families(v: ViewCopy, counters: dict[tuple[str, LabelKey], float], workloads: bool,
                      histogram_cache: HistogramCache) -> list[Metric]:
    by_name: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for (name, labels), value in counters.items():
        by_name[name].append((dict(labels), value))
    # Series known in advance are exported as 0 rather than missing (exporter guidelines).
    for name in ZERO_COUNTERS:
        have = {(d["provider"], d["backend"]) for d, _ in by_name[name]}
        for key in v.backends:
            if key not in have:
                by_name[name].append(({"provider": key[0], "backend": key[1]}, 0.0))
    workload_keys = sorted({(d["provider"], d["backend"], d["workload"])
                            for name in WORKLOAD_ZERO_COUNTERS for d, _ in by_name.get(name, ())})
    for name in WORKLOAD_ZERO_COUNTERS:
        have = {(d["provider"], d["backend"], d["workload"]) for d, _ in by_name[name]}
        for p, b, w in workload_keys:
            if (p, b, w) not in have:
                by_name[name].append(({"provider": p, "backend": b, "workload": w}, 0.0))

    out: list[Metric] = []
    for name, spec in SPECS.items():
        if name.startswith("qpu_drift_"):
            continue  # the drift feed renders its own families
        if name.startswith(WORKLOAD_PREFIX) and not workloads:
            continue
        if spec.type == "counter":
            fam = _counter(name)
            if not spec.labels and not by_name.get(name):
                by_name[name].append(({}, 0.0))  # an unlabelled counter always exists
            for labels, value in sorted(by_name.get(name, ()), key=lambda x: sorted(x[0].items())):
                fam.add_metric([labels.get(l, "") for l in spec.labels], value)
            out.append(fam)
        elif spec.type == "histogram":
            # Every backend has its job histograms; every workload seen on a backend its own.
            known = workload_keys if name.startswith(WORKLOAD_PREFIX) else v.backends
            out.append(_histogram_family(name, by_name, known, histogram_cache))
    return out


def workload_config_families(cfg) -> list[Metric]:
    """Per-workload budgets and objective overrides from the exporter config (workloads:)."""
    budget = _gauge("qpu_workload_cost_budget_daily_usd")
    success = _gauge("qpu_workload_job_success_objective_ratio")
    queue = _gauge("qpu_workload_queue_objective_seconds")
    for name, b in sorted(cfg.budgets.items()):
        budget.add_metric([name], b.usd_per_day)
    for name, o in sorted(cfg.objectives.items()):
        if o.job_success is not None:
            success.add_metric([name], o.job_success)
        if o.queue_seconds is not None:
            queue.add_metric([name], o.queue_seconds)
    return [budget, success, queue]


def _histogram_family(name: str, by_name, known, cache: HistogramCache) -> HistogramMetricFamily:
    spec = SPECS[name]
    fam = HistogramMetricFamily(name, spec.help, labels=list(spec.labels))
    text: list[str] = []
    buckets: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    sums: dict[tuple[str, ...], float] = {}
    key_of = itemgetter(*spec.labels)  # histograms have at least provider and backend: a tuple
    for labels, value in by_name.get(f"{name}_bucket", ()):
        buckets[key_of(labels)][labels["le"]] = value
    for labels, value in by_name.get(f"{name}_sum", ()):
        sums[key_of(labels)] = value
    for key in known:
        buckets.setdefault(key, {})
    bounds = [repr(float(b)) for b in HISTOGRAMS[name]] + ["+Inf"]
    for key in sorted(buckets):
        got = buckets[key]
        values = (*[got.get(b, 0.0) for b in bounds], sums.get(key, 0.0))
        hit = cache.get((name, key))
        if hit is None or hit[0] != values:
            one = HistogramMetricFamily(name, "", labels=list(spec.labels))
            one.add_metric(list(key), list(zip(bounds, values[:-1])), values[-1])
            hit = cache[(name, key)] = (values, one.samples, textformat.render_samples(one.samples))
        fam.samples.extend(hit[1])
        text.append(hit[2])
    setattr(fam, textformat.SAMPLE_TEXT_ATTR, text)
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
        self._self_lock = threading.Lock()
        self._self_cached: tuple[float, bytes, bytes] = (-math.inf, b"", b"")

    @property
    def current(self) -> Rendering:
        return self._current

    def start(self) -> None:
        # A rebuild is a long pure-Python loop; with CPython's default 5 ms switch interval
        # every GIL hand-off a scrape needs (accept, read headers, write) can wait 5 ms
        # behind it. 1 ms keeps scrapes fast during rebuilds for a few % of rebuild speed.
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self.render()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def render(self) -> Rendering:
        started = time.perf_counter()
        snapshot = self._view.copy()
        text = textformat.render(self._build(snapshot))
        previous = self._current
        if text == previous.text:
            # Same bytes (e.g. a poll that changed nothing we export): reuse both copies.
            text, gzipped = previous.text, previous.gzipped
        else:
            # Level 1: about a seventh of level 9's CPU at 100k series (docs/performance.md: 0.04 s
            # against 0.26-0.31 s); the copy is ~6 % of the text.
            gzipped = gzip.compress(text, 1)
        rendering = Rendering(snapshot.version, snapshot, text, gzipped, time.time(), time.perf_counter() - started)
        self._current = rendering  # one reference swap: readers see the old or the new, never a mix
        return rendering

    def _loop(self) -> None:
        seen = self._current.version
        while not self._stop.is_set():
            version = self._view.wait_for_change(seen, timeout=1.0)
            if version == seen or self._stop.is_set():
                continue
            # Coalesce a burst of updates and keep the renderer's CPU share bounded: the
            # spacing grows with the rebuild time, so large fleets rebuild less often.
            if self._stop.wait(max(COALESCE_SECONDS, REBUILD_SPACING * self._current.render_seconds)):
                break
            try:
                seen = self.render().version
            except Exception:  # a rendering bug must not kill the renderer
                log.exception("rendering failed")
                seen = version

    def self_metrics(self) -> tuple[bytes, bytes]:
        """The exporter's own process metrics as (text, gzip member), at most
        SELF_METRICS_TTL_SECONDS old; concurrent scrapes wait for one reading, not ten."""
        with self._self_lock:
            taken, text, gzipped = self._self_cached
            now = time.monotonic()
            if now - taken >= SELF_METRICS_TTL_SECONDS:
                text = textformat.render(self._self_registry.collect())
                gzipped = gzip.compress(text, 1)
                self._self_cached = (now, text, gzipped)
            return text, gzipped


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header allows gzip (RFC 9110 §12.5.3): listed, or covered
    by '*', with a q-value above 0. 'gzip;q=0' refuses it."""
    star = None
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        coding = coding.strip().lower()
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k.strip().lower() == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            star = q > 0
    return bool(star)
