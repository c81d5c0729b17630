"""Cross-device agreement: one fixed short circuit (a Bell pair) on every probed backend.

The Hellinger fidelity (sum_i sqrt(p_i q_i))^2 compares each backend's distribution with the
ideal one and with every other backend's. Pure functions apart from the circuit builder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

IDEAL_BELL = {"00": 0.5, "11": 0.5}


def distribution(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    if total <= 0:
        return {}
    return {k.replace(" ", ""): v / total for k, v in counts.items() if v > 0}


def hellinger_fidelity(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """(sum over outcomes of sqrt(p q))^2, in [0, 1]; 1 for identical distributions."""
    bc = sum(math.sqrt(p[k] * q[k]) for k in p.keys() & q.keys())
    return min(1.0, bc * bc)


@lru_cache(maxsize=8)
def _bell_in_basis(basis: tuple[str, ...]):
    from qiskit import QuantumCircuit, transpile

    qc = QuantumCircuit(2, 2, name="agreement_bell")
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return transpile(qc, basis_gates=list(basis), coupling_map=[[0, 1]], initial_layout=[0, 1],
                     optimization_level=1, seed_transpiler=0)


def bell_circuit(basis: Sequence[str], physical_qubits: Sequence[int]):
    """The Bell circuit in the backend's basis, 2q gate in the (0 -> 1) native direction."""
    qc = _bell_in_basis(tuple(basis)).copy()
    qc.metadata = {"physical_qubits": [int(q) for q in physical_qubits], "agreement": True}
    return qc
