"""Probe cost and the spend guard.

Day = a rolling 24 h window: a reservation counts against the caps for exactly 24 h after it
was made. (A UTC-day reset would let a backend spend two days' budget around midnight.) Every
submission, retries included, reserves its shots and dollars *before* it is sent, and a
reservation is never given back: a failed submission may still have been billed. The check
and the insert are one SQLite write transaction (Store.reserve_probe_budget), so concurrent
triggers in one process or across processes (exporter and ``qpu-exporter probe``) cannot
both pass a nearly exhausted cap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from ..model import CalibrationSnapshot
from ..providers.base import Provider
from ..store import Store

WINDOW_SECONDS = 86400.0
# QPU time of a probe: shots x (repetition delay + circuit duration + readout) (how IBM
# measures a job's quantum time). 250 us is the default repetition delay of IBM Eagle/Heron
# devices.
REP_DELAY_SECONDS = 250e-6
DEFAULT_READOUT_SECONDS = 1.5e-6
DEFAULT_1Q_SECONDS, DEFAULT_2Q_SECONDS = 36e-9, 600e-9


def _duration(snap: CalibrationSnapshot, gate: str, qubits: Sequence[int]) -> float | None:
    for g in snap.gates:
        if g.gate == gate and tuple(g.qubits) in (tuple(qubits), tuple(qubits)[::-1]) and g.duration is not None:
            return float(g.duration.value)
    return None


def clifford_seconds(snap: CalibrationSnapshot, qubits: Sequence[int], basis: Sequence[str],
                     gates_per_clifford: dict[str, float]) -> float:
    """Mean duration of one random Clifford (1q gates on the pair run back to back: an upper bound)."""
    total = 0.0
    for gate, count in gates_per_clifford.items():
        if gate == "rz":
            continue
        if gate in ("ecr", "cz", "cx"):
            d = _duration(snap, gate, qubits) or DEFAULT_2Q_SECONDS
        else:
            ds = [d for q in qubits if (d := _duration(snap, gate, (q,))) is not None]
            d = sum(ds) / len(ds) if ds else DEFAULT_1Q_SECONDS
        total += count * d
    return total


def readout_seconds(snap: CalibrationSnapshot, qubits: Sequence[int]) -> float:
    values = [q.values["readout_duration"].value for q in snap.qubits
              if q.qubit in qubits and "readout_duration" in q.values]
    return max(values) if values else DEFAULT_READOUT_SECONDS


def estimate_usage_seconds(design, clifford_s: float, readout_s: float, extra_circuit_shots: int = 0) -> float:
    """QPU seconds of a design: sum over circuits of shots x (rep delay + duration + readout)."""
    d = design.to_dict() if hasattr(design, "to_dict") else design
    curves = 2 if d.get("interleaved_gate") else 1
    shot_time = 0.0
    for length, k in zip(d["lengths"], d["samples_per_length"]):
        # length random Cliffords + the inverse (+ as many interleaved gates, counted as Cliffords)
        dur = (length + 1) * clifford_s
        shot_time += curves * k * d["shots"] * (REP_DELAY_SECONDS + dur + readout_s)
    shot_time += extra_circuit_shots * (REP_DELAY_SECONDS + 4 * clifford_s + readout_s)
    return shot_time


def probe_cost_usd(provider: Provider, backend: str, usage_seconds: float,
                   shots_per_circuit: Sequence[int]) -> float | None:
    """List price of a probe, asked of its provider (each prices its own way: per QPU second,
    per task and shot, ...). None: the price cannot be known, so the probe is not run."""
    return provider.probe_cost_usd(backend, usage_seconds, shots_per_circuit)


class ProbeBudget:
    """Caps from config ``probes.budget``; the ledger lives in the store."""

    def __init__(self, store: Store, budget_config, clock: Callable[[], float] = time.time):
        self.store = store
        self.cfg = budget_config
        self.clock = clock

    @property
    def caps(self) -> tuple[float | None, float | None, float | None, float | None]:
        c = self.cfg
        return (c.shots_per_day, c.usd_per_day, c.global_shots_per_day, c.global_usd_per_day)

    def reserve(self, provider: str, backend: str, shots: int, usd: float, note: str = "") -> tuple[int | None, str]:
        now = self.clock()
        return self.store.reserve_probe_budget(provider, backend, shots, usd, now, now - WINDOW_SECONDS, self.caps, note)

    def remaining_ratio(self, provider: str, backend: str) -> float:
        """The smallest share left among the caps that bind this backend (its own shot and
        USD caps and the global ones): the headroom the next probe actually has."""
        used = self.store.probe_budget_used(provider, backend, self.clock() - WINDOW_SECONDS)
        ratios = []
        for cap, spent in zip(self.caps, used):
            if cap is None:
                continue
            ratios.append(0.0 if cap <= 0 else max(0.0, 1.0 - spent / cap))
        return min(ratios) if ratios else 1.0
