"""A small Aer noise model for the probed qubits, from the exporter's *current* calibration.

Per probed qubit: thermal relaxation (T1, T2) over each gate's duration, topped up with
depolarizing noise so the gate's average infidelity equals the reported gate error (the same
construction as Aer's device models, but for 1-2 qubits only: building it takes milliseconds and
each run stays cheap, where ``AerSimulator.from_backend`` costs ~1.3 s per run on a 127q
device), plus the readout assignment error. Logical qubit i stands for ``physical_qubits[i]``,
as in the RB circuits; two-qubit gate errors are attached to the (0, 1) direction the circuits
use, taking the calibration of either direction.

Missing values degrade gracefully: no T1 -> no relaxation on that qubit; no gate error -> only
relaxation; no readout error -> perfect readout. rz is virtual (no error), as on IBM devices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qiskit.quantum_info import process_fidelity
from qiskit_aer.noise import NoiseModel, QuantumError, ReadoutError, depolarizing_error, thermal_relaxation_error

from ..model import CalibrationSnapshot
from .calibration import gate_calibration

__all__ = ["QubitNoiseParams", "build_noise_model", "qubit_noise_params", "gate_calibration"]

ONE_QUBIT_NOISY_GATES = ("sx", "x")
TWO_QUBIT_GATES = ("ecr", "cz", "cx")


@dataclass(frozen=True)
class QubitNoiseParams:
    t1: float | None
    t2: float | None
    p1_given_0: float  # P(measure 1 | prepared 0)
    p0_given_1: float  # P(measure 0 | prepared 1)


def qubit_noise_params(snapshot: CalibrationSnapshot, qubit: int) -> QubitNoiseParams:
    cal = next((q for q in snapshot.qubits if q.qubit == qubit), None)
    values = cal.values if cal is not None else {}

    def get(key: str) -> float | None:
        m = values.get(key)
        return None if m is None or m.value is None else float(m.value)

    t1, t2 = get("t1"), get("t2")
    if t1 is not None and t1 <= 0:
        t1 = None
    if t2 is not None and (t2 <= 0 or t1 is None):
        t2 = None
    if t1 is not None and t2 is not None:
        t2 = min(t2, 2 * t1)  # physical limit T2 <= 2 T1 (snapshots sometimes violate it)
    ro = get("readout_error") or 0.0
    p10 = get("prob_meas1_prep0")
    p01 = get("prob_meas0_prep1")
    clip = lambda v: min(max(v, 0.0), 0.5)  # noqa: E731 - tiny local helper
    return QubitNoiseParams(
        t1=t1,
        t2=t2,
        p1_given_0=clip(p10 if p10 is not None else ro),
        p0_given_1=clip(p01 if p01 is not None else ro),
    )


def _thermal(params: QubitNoiseParams, duration: float) -> QuantumError | None:
    if params.t1 is None or duration <= 0:
        return None
    t2 = params.t2 if params.t2 is not None else 2 * params.t1
    return thermal_relaxation_error(params.t1, t2, duration)


def _identity_error(num_qubits: int) -> QuantumError:
    return depolarizing_error(0.0, num_qubits)


def _matched_error(relax: QuantumError | None, gate_error: float | None, num_qubits: int) -> QuantumError | None:
    """relaxation followed by depolarizing such that the average infidelity is ``gate_error``."""
    d = 2**num_qubits
    base = relax if relax is not None else _identity_error(num_qubits)
    if gate_error is None:
        return relax
    f_relax = process_fidelity(base.to_quantumchannel())
    f_target = 1.0 - min(max(gate_error, 0.0), 1.0) * (d + 1) / d
    # Depolarizing with parameter lam scales process fidelity: F = (1-lam) F_relax + lam/d^2.
    lam = 0.0 if f_relax <= f_target else (f_relax - f_target) / (f_relax - 1.0 / d**2)
    lam = min(max(lam, 0.0), 1.0)
    if lam == 0.0:
        return relax
    dep = depolarizing_error(lam, num_qubits)
    return dep if relax is None else relax.compose(dep)


def _value(m) -> float | None:
    return None if m is None or m.value is None else float(m.value)


def build_noise_model(
    snapshot: CalibrationSnapshot,
    physical_qubits: Sequence[int],
    basis_gates: Sequence[str] = ("rz", "sx", "x", "ecr", "cz", "cx"),
) -> NoiseModel:
    physical = [int(q) for q in physical_qubits]
    noise = NoiseModel(basis_gates=list(basis_gates))
    params = [qubit_noise_params(snapshot, q) for q in physical]
    for logical, (q, par) in enumerate(zip(physical, params)):
        for gate in ONE_QUBIT_NOISY_GATES:
            if gate not in basis_gates:
                continue
            cal = gate_calibration(snapshot, gate, (q,))
            duration = _value(cal.duration) if cal else None
            error = _value(cal.error) if cal else None
            err = _matched_error(_thermal(par, duration or 0.0), error, 1)
            if err is not None:
                noise.add_quantum_error(err, gate, [logical])
        if par.p1_given_0 > 0 or par.p0_given_1 > 0:
            ro = ReadoutError([[1 - par.p1_given_0, par.p1_given_0], [par.p0_given_1, 1 - par.p0_given_1]])
            noise.add_readout_error(ro, [logical])
    if len(physical) == 2:
        for gate in TWO_QUBIT_GATES:
            if gate not in basis_gates:
                continue
            cal = gate_calibration(snapshot, gate, physical)
            if cal is None:
                continue
            duration = _value(cal.duration) or 0.0
            r0, r1 = _thermal(params[0], duration), _thermal(params[1], duration)
            relax = None
            if r0 is not None or r1 is not None:
                # expand(): self on qubit 0, argument on qubit 1.
                relax = (r0 or _identity_error(1)).expand(r1 or _identity_error(1))
            err = _matched_error(relax, _value(cal.error), 2)
            if err is not None:
                noise.add_quantum_error(err, gate, [0, 1])
    return noise
