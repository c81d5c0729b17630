"""Run RB circuits on Aer with a small noise model, in batches of bounded size.

The density-matrix method is used because probes act on 1-2 qubits: a 4x4 (or 16x16) density
matrix costs one pass over the circuit whatever the shot count, and the noise is applied exactly,
not by per-shot trajectory sampling.

Aer converts every circuit of a ``run()`` call to its own representation before simulating any
of them, and that copy, not the simulation, is what a probe's memory peak is made of: a default
1q probe of a good qubit (18 sequences up to ~18,000 Cliffords, ~220,000 instructions) took
~230 MB above the worker's baseline in one call. Circuits therefore go to Aer in consecutive
batches of at most ``MAX_BATCH_INSTRUCTIONS`` instructions (a longer circuit runs alone), which
bounds that copy to a few tens of MB at the cost of one ``run()`` call per batch (a few ms each).
Batch ``b`` is seeded with ``seed + i`` where ``i`` is the index of its first circuit, so counts
are a deterministic function of (circuits, noise, shots, seed).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel

__all__ = ["MAX_BATCH_INSTRUCTIONS", "batches", "run_counts"]

MAX_BATCH_INSTRUCTIONS = 40_000


def batches(sizes: Sequence[int], limit: int = MAX_BATCH_INSTRUCTIONS) -> Iterator[tuple[int, int]]:
    """[start, stop) index ranges of consecutive items whose sizes sum to at most ``limit``
    (an item larger than ``limit`` forms a batch of its own)."""
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            yield start, i
            start, total = i, 0
        total += size
    if start < len(sizes):
        yield start, len(sizes)


def run_counts(
    circuits: Sequence[QuantumCircuit],
    noise_model: NoiseModel | None,
    shots: int,
    seed: int,
    max_batch_instructions: int = MAX_BATCH_INSTRUCTIONS,
) -> list[dict[str, int]]:
    """Counts per circuit (keys are qiskit bitstrings, e.g. "00"), in input order."""
    if not circuits:
        return []
    if shots < 1:
        raise ValueError("shots: must be >= 1")
    out: list[dict[str, int]] = []
    for start, stop in batches([len(c.data) for c in circuits], max_batch_instructions):
        sim = AerSimulator(method="density_matrix", noise_model=noise_model, seed_simulator=(int(seed) + start) % (2**63))
        result = sim.run(list(circuits[start:stop]), shots=int(shots)).result()
        if not result.success:
            raise RuntimeError(f"Aer run failed: {result.status}")
        out += [{str(k): int(v) for k, v in result.get_counts(i).items()} for i in range(stop - start)]
    return out
