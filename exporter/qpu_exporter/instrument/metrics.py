"""The ``qpu_client_*`` metrics of one Instrumentation, in its own registry, and the cap on
circuit label values (circuit names are user data: unbounded, so they are cut and capped)."""

from __future__ import annotations

import re
import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..catalog import CLIENT_SPECS

# Submit-to-result wall time spans milliseconds (a local simulator) to a day (a QPU queue).
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400)
OTHER = "other"
# qiskit names unnamed circuits "circuit-<n>" with a process-wide counter: not an identity.
_AUTO_NAME = re.compile(r"circuit-\d+")


def _help(name: str) -> str:
    return CLIENT_SPECS[name].help


def _labels(name: str) -> list[str]:
    return list(CLIENT_SPECS[name].labels)


class ClientMetrics:
    """prometheus_client metrics named and documented by catalog.CLIENT_SPECS."""

    def __init__(self, registry: CollectorRegistry):
        def make(kind, name, **kw):
            # prometheus_client appends _total to counters itself.
            return kind(name.removesuffix("_total"), _help(name), _labels(name), registry=registry, **kw)

        self.executions = make(Counter, "qpu_client_executions_total")
        self.shots = make(Counter, "qpu_client_shots_total")
        self.duration = make(Histogram, "qpu_client_execution_duration_seconds", buckets=DURATION_BUCKETS)
        self.retries = make(Counter, "qpu_client_retries_total")
        self.calibration_age = make(Gauge, "qpu_client_calibration_age_seconds")
        self.last_execution = make(Gauge, "qpu_client_last_execution_timestamp_seconds")
        self.fidelity = make(Gauge, "qpu_client_hellinger_fidelity_ratio")
        self.run_to_run = make(Gauge, "qpu_client_run_to_run_hellinger_fidelity_ratio")
        self.objective = make(Gauge, "qpu_client_hellinger_fidelity_objective_ratio")
        self.errors = make(Counter, "qpu_client_instrumentation_errors_total")


class CircuitLabels:
    """Label values for circuits: the name cut to ``max_length`` characters (a qiskit auto-name
    counts as no name: the fingerprint's first 12 hex digits stand in), at most ``max_values``
    distinct values; later newcomers share the value ``other``."""

    def __init__(self, max_values: int, max_length: int):
        self.max_values, self.max_length = max_values, max_length
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def value(self, name: str | None, fingerprint: str | None) -> str:
        if name and not _AUTO_NAME.fullmatch(name):
            label = name[: self.max_length]
        else:
            label = fingerprint[:12] if fingerprint else "unknown"
        with self._lock:
            if label in self._seen:
                return label
            if len(self._seen) >= self.max_values:
                return OTHER
            self._seen.add(label)
            return label
