"""The latest probe results as metric families (no I/O at render time).

Gauges live here; the probe counters (runs, failures, shots, skipped) are store counters
rendered by exposition from the catalog, so they survive restarts. On start the feed is
filled from the newest successful probe record of every target.
"""

from __future__ import annotations

import itertools
import threading

from prometheus_client.core import GaugeMetricFamily, Metric

from ..catalog import SPECS
from .agreement import IDEAL_BELL, distribution, hellinger_fidelity

BackendKey = tuple[str, str]
SKIP_REASONS = ("budget", "backend_down", "busy", "unpriced")
COUNTERS = ("qpu_probe_runs_total", "qpu_probe_failures_total", "qpu_probe_shots_total")


def drift_samples(qubits: str, result: dict) -> list[tuple[str, float]]:
    """The drift series a successful probe's result feeds: its EPC, and its interleaved gate
    error when it has one (one sample each per probe)."""
    out = [(f"probe_epc:{qubits}", result["epc"])]
    inter = result.get("interleaved")
    if inter:
        out.append((f"probe_gate_error:{inter['gate']}:{qubits}", inter["gate_error"]))
    return out


def _gauge(name: str) -> GaugeMetricFamily:
    spec = SPECS[name]
    return GaugeMetricFamily(name, spec.help, labels=list(spec.labels))


class ProbeFeed:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.epc: dict[tuple[str, str, str], tuple[float, float]] = {}
        self.gate_error: dict[tuple[str, str, str, str], tuple[float, float]] = {}
        self.last_success: dict[BackendKey, float] = {}
        self.remaining: dict[BackendKey, float] = {}
        self.bell: dict[BackendKey, dict[str, float]] = {}

    def add_backend(self, key: BackendKey) -> None:
        with self._lock:
            self.last_success.setdefault(key, 0.0)  # exported as 0 until the first success

    def set_remaining(self, key: BackendKey, ratio: float) -> None:
        with self._lock:
            self.remaining[key] = ratio

    def on_result(self, provider: str, backend: str, qubits: str, finished_at: float, result: dict,
                  agreement_counts: dict | None) -> None:
        """A successful probe (its record's ``result`` section)."""
        with self._lock:
            self.epc[(provider, backend, qubits)] = (result["epc"], result["epc_stderr"])
            inter = result.get("interleaved")
            if inter:
                self.gate_error[(provider, backend, inter["gate"], qubits)] = (
                    inter["gate_error"], inter["gate_error_stderr"])
            key = (provider, backend)
            self.last_success[key] = max(self.last_success.get(key, 0.0), finished_at)
            if agreement_counts:
                self.bell[key] = distribution(agreement_counts)

    def load(self, records: list[dict]) -> None:
        """Fill from Store.latest_probe_results() (oldest first)."""
        for row in records:
            rec = row["record"]
            if "result" in rec:
                self.on_result(row["provider"], row["backend"], row["qubits"], row["finished_at"], rec["result"],
                               (rec.get("agreement") or {}).get("counts"))

    def families(self) -> list[Metric]:
        epc, epc_se = _gauge("qpu_probe_epc_ratio"), _gauge("qpu_probe_epc_stderr_ratio")
        gate, gate_se = _gauge("qpu_probe_gate_error_ratio"), _gauge("qpu_probe_gate_error_stderr_ratio")
        last, remaining = _gauge("qpu_probe_last_success_timestamp_seconds"), _gauge("qpu_budget_remaining_ratio")
        hell, agree = _gauge("qpu_probe_hellinger_fidelity_ratio"), _gauge("qpu_probe_agreement_hellinger_fidelity_ratio")
        with self._lock:
            for (p, b, q), (v, se) in sorted(self.epc.items()):
                epc.add_metric([p, b, q], v)
                epc_se.add_metric([p, b, q], se)
            for (p, b, g, q), (v, se) in sorted(self.gate_error.items()):
                gate.add_metric([p, b, g, q], v)
                gate_se.add_metric([p, b, g, q], se)
            for (p, b), t in sorted(self.last_success.items()):
                last.add_metric([p, b], t)
            for (p, b), r in sorted(self.remaining.items()):
                remaining.add_metric([p, b], r)
            bells = sorted(self.bell.items())
            for (p, b), dist in bells:
                hell.add_metric([p, b], hellinger_fidelity(dist, IDEAL_BELL))
            for ((p1, b1), d1), ((p2, b2), d2) in itertools.permutations(bells, 2):
                agree.add_metric([p1, b1, p2, b2], hellinger_fidelity(d1, d2))
        return [epc, epc_se, gate, gate_se, last, remaining, hell, agree]
