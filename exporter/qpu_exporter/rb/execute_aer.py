"""Run RB circuits on Aer with a small noise model: one batched run() call.

The density-matrix method is used because probes act on 1-2 qubits: a 4x4 (or 16x16) density
matrix costs one pass over the circuit whatever the shot count, and the noise is applied exactly,
not by per-shot trajectory sampling.
"""

from __future__ import annotations

from collections.abc import Sequence

from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel

__all__ = ["run_counts"]


def run_counts(
    circuits: Sequence[QuantumCircuit],
    noise_model: NoiseModel | None,
    shots: int,
    seed: int,
) -> list[dict[str, int]]:
    """Counts per circuit (keys are qiskit bitstrings, e.g. "00"), in input order."""
    if not circuits:
        return []
    if shots < 1:
        raise ValueError("shots: must be >= 1")
    sim = AerSimulator(method="density_matrix", noise_model=noise_model, seed_simulator=int(seed) % (2**63))
    result = sim.run(list(circuits), shots=int(shots)).result()
    if not result.success:
        raise RuntimeError(f"Aer run failed: {result.status}")
    return [{str(k): int(v) for k, v in result.get_counts(i).items()} for i in range(len(circuits))]
