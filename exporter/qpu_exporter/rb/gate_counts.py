"""Mean basis-gate counts per random Clifford, without importing qiskit.

The serving process prices and designs every probe before it reserves budget and starts the
probe worker, so it needs ``rb.circuits.mean_gates_per_clifford`` (the exact average over the
group of our Clifford synthesis) but must not pay for qiskit: importing it and loading the
transpiler's plugins costs seconds and ~150 MB. The values depend only on the basis gate set,
and ``probes.targets.basis_gates_of`` produces one of a few: "rz", "sx", optionally "x", and at
most one of "ecr", "cz", "cx". They are tabulated here exactly as the synthesis computes them
(tests/test_probe_worker.py recomputes every entry with the qiskit version installed and checks
that every basis ``basis_gates_of`` can return is covered); any other basis falls back to the
computation.
"""

from __future__ import annotations

from collections.abc import Sequence

# (num_qubits, basis) -> {gate: mean count}; generated with rb.circuits.mean_gates_per_clifford.
TABLE: dict[tuple[int, tuple[str, ...]], dict[str, float]] = {
    (1, ("rz", "sx")): {"rz": 1.25, "sx": 0.9999999999999996},
    (1, ("rz", "sx", "ecr")): {"rz": 1.25, "sx": 0.9999999999999996},
    (2, ("rz", "sx", "ecr")): {"ecr": 1.5, "rz": 10.0, "sx": 7.049999999999998},
    (1, ("rz", "sx", "cz")): {"rz": 1.25, "sx": 0.9999999999999996},
    (2, ("rz", "sx", "cz")): {"cz": 1.5, "rz": 9.7, "sx": 6.1999999999999975},
    (1, ("rz", "sx", "cx")): {"rz": 1.25, "sx": 0.9999999999999996},
    (2, ("rz", "sx", "cx")): {"cx": 1.5, "rz": 8.3, "sx": 5.199999999999998},
    (1, ("rz", "sx", "x")): {"rz": 1.25, "sx": 0.6666666666666665, "x": 0.16666666666666666},
    (1, ("rz", "sx", "x", "ecr")): {"rz": 1.25, "sx": 0.6666666666666665, "x": 0.16666666666666666},
    (2, ("rz", "sx", "x", "ecr")): {"ecr": 1.5, "rz": 10.0, "sx": 5.4833333333333325, "x": 0.7833333333333332},
    (1, ("rz", "sx", "x", "cz")): {"rz": 1.25, "sx": 0.6666666666666665, "x": 0.16666666666666666},
    (2, ("rz", "sx", "x", "cz")): {"cz": 1.5, "rz": 9.7, "sx": 5.533333333333332, "x": 0.33333333333333337},
    (1, ("rz", "sx", "x", "cx")): {"rz": 1.25, "sx": 0.6666666666666665, "x": 0.16666666666666666},
    (2, ("rz", "sx", "x", "cx")): {"cx": 1.5, "rz": 8.3, "sx": 4.533333333333332, "x": 0.33333333333333337},
}


def gates_per_clifford(num_qubits: int, basis_gates: Sequence[str]) -> dict[str, float]:
    """Average basis-gate counts per random Clifford (as ``rb.circuits.mean_gates_per_clifford``)."""
    hit = TABLE.get((int(num_qubits), tuple(basis_gates)))
    if hit is not None:
        return dict(hit)
    from .circuits import mean_gates_per_clifford  # an unusual basis: compute it (imports qiskit)

    return mean_gates_per_clifford(num_qubits, basis_gates)
