"""Prior expectations from the current calibration: the EPC a probe should see (for design).

EPC of a random Clifford ~ sum over its basis gates of (count x gate error), using the exact
mean gate counts of our Clifford synthesis. A 1q gate error r inside a 2q Clifford counts as
1.2 r: the same process infidelity gives average infidelity d/(d+1) (1 - F_pro), i.e. 4/5
instead of 2/3 of it, a ratio of 1.2.
This is a prior for choosing lengths, not a measurement.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..model import ONE_QUBIT_RB_FIGURES, CalibrationSnapshot, GateCalibration
from .gate_counts import gates_per_clifford

__all__ = ["expected_epc", "expected_gate_error", "gate_calibration"]

DEFAULT_EPC = {1: 1e-3, 2: 1e-2}


def gate_calibration(snapshot: CalibrationSnapshot, gate: str, qubits: Sequence[int]) -> GateCalibration | None:
    """The calibration of ``gate`` on ``qubits``; for 2q gates either direction."""
    wanted = tuple(qubits)
    fallback = None
    for g in snapshot.gates:
        if g.gate != gate:
            continue
        if tuple(g.qubits) == wanted:
            return g
        if len(wanted) == 2 and tuple(g.qubits) == wanted[::-1]:
            fallback = g
    return fallback


def expected_gate_error(snapshot: CalibrationSnapshot, gate: str, qubits: Sequence[int]) -> float | None:
    cal = gate_calibration(snapshot, gate, qubits)
    if cal is None or cal.error is None or cal.error.value is None:
        return None
    return float(cal.error.value)


def expected_epc(snapshot: CalibrationSnapshot, physical_qubits: Sequence[int], basis_gates: Sequence[str]) -> float:
    """Calibration-predicted EPC; DEFAULT_EPC when the snapshot lacks the gate errors."""
    n = len(physical_qubits)
    counts = gates_per_clifford(n, basis_gates)
    total = 0.0
    known = False
    for gate, count in counts.items():
        if gate == "rz":
            continue
        if n == 2 and gate in ("ecr", "cz", "cx"):
            err = expected_gate_error(snapshot, gate, physical_qubits)
            if err is not None:
                known = True
                total += count * min(err, 0.75)
            continue
        errs = [e for q in physical_qubits if (e := expected_gate_error(snapshot, gate, (q,))) is not None]
        if errs:
            known = True
            per_gate = sum(errs) / len(errs)
            total += count * per_gate * (1.2 if n == 2 else 1.0)
    if not known and n == 1:
        # Providers that publish a 1q RB figure instead of gate errors.
        for figure in ONE_QUBIT_RB_FIGURES:
            err = expected_gate_error(snapshot, figure, physical_qubits)
            if err is not None and err > 0:
                return min(err, 0.3)
    if not known or total <= 0:
        return DEFAULT_EPC[n]
    return min(total, 0.3)
