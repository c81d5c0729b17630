"""Feeds calibration snapshots into the drift monitor and exposes its state.

The glue between the pure ``drift`` package and the running exporter: which series exist,
which values are new measurements (a detector takes one sample per measurement, never the
same value re-polled), persistence of detector state, and the metric families.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from .catalog import SPECS
from .drift import DriftMonitor, DriftSettings
from .logs import get_logger
from .model import CalibrationSnapshot
from .store import StorageError, Store

log = get_logger(__name__)

# Quantities with a drift series. `id` gates are skipped: IBM reports them with the same
# calibration as `sx`, so they would double every 1q series (and its false alarms).
QUBIT_SERIES = ("t1", "t2", "readout_error")
SKIPPED_GATES = frozenset({"id"})


def stored_settings(store: Store) -> DriftSettings | None:
    """The detector settings recorded in a state file, if the exporter saved any."""
    saved = store.load_drift_state()
    if saved is None:
        return None
    s = json.loads(saved[0])["settings"]
    return DriftSettings(arl0=s["arl0"], warmup=s["warmup"], transform=s["transform"],
                         cusum_k=s["cusum_k"], ewma_lambda=s["ewma_lambda"])


def series_name(quantity: str, target: str) -> str:
    """'t1:q3', 'readout_error:q3', 'gate_error:cz:3_4' from a store target and quantity."""
    return f"{quantity}:{target}"


def monitored_values(snap: CalibrationSnapshot):
    """(series, value, measured_at) for every monitored value that carries a measurement time."""
    for q in snap.qubits:
        for quantity in QUBIT_SERIES:
            m = q.values.get(quantity)
            if m is not None and m.measured_at is not None:
                yield series_name(quantity, f"q{q.qubit}"), m.value, m.measured_at
    for g in snap.gates:
        if g.gate in SKIPPED_GATES or g.error is None or g.error.measured_at is None:
            continue
        yield series_name("gate_error", f"{g.gate}:{g.qubits_label}"), g.error.value, g.error.measured_at


def state_subset(state: dict, keep: Callable[[str, str], bool]) -> dict:
    """A monitor state with only the series of backends ``keep(provider, backend)`` accepts."""
    slots = [i for i, (p, b, _s) in enumerate(state["keys"]) if keep(p, b)]
    new = {old: i for i, old in enumerate(slots)}
    return {
        **state,
        "keys": [state["keys"][i] for i in slots],
        "columns": {name: [col[i] for i in slots] for name, col in state["columns"].items()},
        "warm": {str(new[int(s)]): v for s, v in state.get("warm", {}).items() if int(s) in new},
        "rejections": [[new[s], r, n] for s, r, n in state.get("rejections", []) if s in new],
    }


class DriftFeed:
    def __init__(self, settings: DriftSettings, store: Store, owns: Callable[[str, str], bool] | None = None):
        """``owns(provider, backend)``: the backends this exporter polls (its shard)."""
        self.store = store
        self._lock = threading.Lock()
        saved = store.load_drift_state()
        if saved is None:
            self.monitor = DriftMonitor(settings)
        else:
            state = json.loads(saved[0])
            if not saved[1] and owns is not None:
                # Another instance's state warms up a new replica at once, but only for the
                # backends this one polls: a shard never shows another shard's detectors.
                state = state_subset(state, owns)
            self.monitor = DriftMonitor.from_state(state, settings)
            log.info("drift state restored", series=len(self.monitor), own=saved[1])
        self._last_fed: dict[tuple[str, str, str], float] = {}
        self._dirty = False

    def on_calibration(self, snap: CalibrationSnapshot) -> None:
        self._observe([((snap.provider, snap.backend, series), value, measured_at)
                       for series, value, measured_at in monitored_values(snap)])

    def on_probe(self, provider: str, backend: str, series: str, value: float, measured_at: float) -> None:
        """One probe result, one sample: ``probe_epc:<qubits>`` or
        ``probe_gate_error:<gate>:<qubits>`` (each probe is a new measurement)."""
        self._observe([((provider, backend, series), value, measured_at)])

    def _observe(self, samples: list[tuple[tuple[str, str, str], float, float]]) -> None:
        """Feed (series key, value, measured at) samples newer than the series' last one: a
        measurement polled again is not a new sample."""
        with self._lock:
            fresh = [s for s in samples if s[2] > self._last_fed.get(s[0], float("-inf"))]
            if not fresh:
                return
            keys, values, stamps = (list(c) for c in zip(*fresh))
            result = self.monitor.observe_many(keys, values, stamps)
            for key, t in zip(keys, stamps):
                self._last_fed[key] = t
            self._dirty = True
        for alarm in result.alarms:
            provider, backend, series = alarm.key
            log.warning("drift alarm", provider=provider, backend=backend, series=series,
                        detector=alarm.detector, direction=alarm.direction, index=alarm.index)

    def save(self) -> None:
        """Persist detector state (periodically and at shutdown)."""
        with self._lock:
            if not self._dirty:
                return
            payload = json.dumps(self.monitor.state(), separators=(",", ":"))
            self._dirty = False
        try:
            self.store.save_drift_state(payload)
        except StorageError as exc:
            self.store.note_write_failure()
            log.error("drift state not saved; kept in memory", error=str(exc))
            with self._lock:
                self._dirty = True  # the next save tries again

    def families(self) -> list[Metric]:
        stat = GaugeMetricFamily("qpu_drift_statistic", SPECS["qpu_drift_statistic"].help,
                                 labels=list(SPECS["qpu_drift_statistic"].labels))
        alarm = GaugeMetricFamily("qpu_drift_alarm", SPECS["qpu_drift_alarm"].help,
                                  labels=list(SPECS["qpu_drift_alarm"].labels))
        limit = GaugeMetricFamily("qpu_drift_limit", SPECS["qpu_drift_limit"].help,
                                  labels=list(SPECS["qpu_drift_limit"].labels))
        total = CounterMetricFamily("qpu_drift_alarms_total", SPECS["qpu_drift_alarms_total"].help,
                                    labels=list(SPECS["qpu_drift_alarms_total"].labels))
        with self._lock:
            for row in self.monitor.statistics():
                labels = [row.provider, row.backend, row.series, row.detector]
                stat.add_metric(labels, row.statistic)
                alarm.add_metric(labels, 1 if row.alarm_active else 0)
            for row in self.monitor.limits():
                limit.add_metric([row.provider, row.backend, row.series, row.detector], row.limit)
            for row in self.monitor.alarms_total():
                total.add_metric([row.provider, row.backend, row.series, row.detector], row.count)
        return [stat, alarm, limit, total]
