"""Data-quality checks on calibration snapshots, shared by every provider.

A value that fails a check is dropped from the snapshot (so it is never exported as if
valid, nor fed to drift detection) and counted by check name, which exposition turns into
``qpu_data_quality_rejections_total{check=...}``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

from .model import CalibrationSnapshot, GateCalibration, Measurement, QubitCalibration

# Physical ranges in SI units. Coherence times up to a day cover trapped ions (T1 ~ 10-100 s).
_QUBIT_RANGES = {
    "t1": (0.0, 86400.0),
    "t2": (0.0, 86400.0),
    "readout_error": (0.0, 1.0),
    "frequency": (0.0, 1e12),
    "prob_meas0_prep1": (0.0, 1.0),
    "prob_meas1_prep0": (0.0, 1.0),
    "readout_duration": (0.0, 1.0),
}
# Default for "a per-metric timestamp older than a threshold": IBM carries forward values
# that were last measured weeks ago (seen in qiskit-ibm-runtime's fake-backend snapshots,
# which are copies of real /properties payloads); a week is 7x the daily cadence.
DEFAULT_MAX_AGE_SECONDS = 7 * 86400.0


def _in_range(value: float, lo: float, hi: float, *, open_low: bool) -> bool:
    if not math.isfinite(value):
        return False
    return (value > lo if open_low else value >= lo) and value <= hi


def _too_old(m: Measurement, now: float, max_age: float) -> bool:
    return m.measured_at is not None and now - m.measured_at > max_age


def validate_snapshot(
    snap: CalibrationSnapshot, max_age: float = DEFAULT_MAX_AGE_SECONDS
) -> tuple[CalibrationSnapshot, Counter]:
    rejected: Counter = Counter(snap.rejected)  # what the provider's parser already dropped
    now = snap.fetched_at
    qubits: list[QubitCalibration] = []
    for q in snap.qubits:
        kept: dict[str, Measurement] = {}
        for name, m in q.values.items():
            lo, hi = _QUBIT_RANGES.get(name, (-math.inf, math.inf))
            # Coherence times and frequencies must be strictly positive; error ratios may be 0.
            if not _in_range(m.value, lo, hi, open_low=name in ("t1", "t2", "frequency", "readout_duration")):
                rejected["out_of_range"] += 1
            elif _too_old(m, now, max_age):
                rejected["stale"] += 1
            else:
                kept[name] = m
        t1, t2 = kept.get("t1"), kept.get("t2")
        if t1 is not None and t2 is not None and t2.value > 2 * t1.value:
            # Physically T2 <= 2*T1; a violation means one of the two fits went wrong.
            del kept["t2"]
            rejected["t2_exceeds_2t1"] += 1
        qubits.append(replace(q, values=kept))

    gates: list[GateCalibration] = []
    for g in snap.gates:
        error, duration, operational = g.error, g.duration, g.operational
        if error is not None:
            if error.value == 1.0:
                # The faulty sentinel (IBM's gate_error = 1, a Braket fidelity that rounds to
                # 0): a dead gate, exported through qpu_gate_operational, never as an error rate.
                error, operational = None, False
            elif not _in_range(error.value, 0.0, 1.0, open_low=False):
                rejected["out_of_range"] += 1
                error = None
            elif error.value == 0.0:
                # A real gate is never perfect: an exact 0 is a placeholder, not a measurement.
                rejected["zero_error"] += 1
                error = None
            elif _too_old(error, now, max_age):
                rejected["stale"] += 1
                error = None
        if duration is not None and not _in_range(duration.value, 0.0, 1.0, open_low=False):
            rejected["out_of_range"] += 1
            duration = None
        gates.append(replace(g, error=error, duration=duration, operational=operational))
    return replace(snap, qubits=qubits, gates=gates, rejected={}), rejected
