"""What a circuit's output should be: ``metadata["expected"]`` when the circuit carries it, else
the ideal distribution by exact statevector simulation (qiskit.quantum_info.Statevector).

Keys are qiskit's: one character per classical bit, clbit 0 rightmost. Only circuits whose
measurements are final (no gate on a qubit after it is measured, no reset, no classical
control) have an ideal distribution, and only up to ``max_qubits`` *active* qubits: idle wires
of a device-wide (ISA) circuit are dropped first, so a 2-qubit circuit transpiled onto a
127-qubit device simulates as 2 qubits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from qiskit import QuantumCircuit
from qiskit.circuit import ControlFlowOp

DEFAULT_IDEAL_MAX_QUBITS = 16  # 2^16 amplitudes: milliseconds; the cost doubles per qubit
_BITS = re.compile(r"[01]+")
_SUM_TOLERANCE = 1e-3  # expected probabilities written by hand (0.333...) still sum close to 1
_SKIPPED = frozenset({"barrier", "delay"})


class ReferenceUnavailable(ValueError):
    """The circuit has no usable reference; the message says why."""


def expected_distribution(circuit: QuantumCircuit) -> dict[str, float] | None:
    """``metadata["expected"]`` validated and normalised, or None when the circuit has none."""
    metadata = circuit.metadata if isinstance(circuit.metadata, Mapping) else {}
    if "expected" not in metadata:
        return None
    return check_distribution(metadata["expected"], circuit.num_clbits)


def check_distribution(expected: object, num_bits: int) -> dict[str, float]:
    if not isinstance(expected, Mapping) or not expected:
        raise ReferenceUnavailable('metadata["expected"] must be a non-empty {bitstring: probability} mapping')
    out: dict[str, float] = {}
    for key, value in expected.items():
        bits = str(key).replace(" ", "")
        if not _BITS.fullmatch(bits) or len(bits) != num_bits:
            raise ReferenceUnavailable(f'metadata["expected"]: {key!r} is not a bitstring of {num_bits} bits')
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ReferenceUnavailable(f'metadata["expected"]: probability of {key!r} must be a finite number >= 0')
        out[bits] = out.get(bits, 0.0) + float(value)
    total = sum(out.values())
    if abs(total - 1.0) > _SUM_TOLERANCE:
        raise ReferenceUnavailable(f'metadata["expected"]: probabilities sum to {total:g}, not 1')
    return {k: v / total for k, v in out.items() if v > 0}


def ideal_distribution(circuit: QuantumCircuit, max_qubits: int = DEFAULT_IDEAL_MAX_QUBITS) -> dict[str, float]:
    """Exact output distribution over the circuit's clbits. Raises ReferenceUnavailable."""
    from qiskit.quantum_info import Statevector

    qubit_index = {q: i for i, q in enumerate(circuit.qubits)}
    clbit_index = {c: i for i, c in enumerate(circuit.clbits)}
    clbit_source: dict[int, int] = {}  # clbit -> the qubit last measured into it
    measured: set[int] = set()
    gates = []
    for inst in circuit.data:
        op, qubits = inst.operation, [qubit_index[q] for q in inst.qubits]
        if op.name == "measure":
            clbit_source[clbit_index[inst.clbits[0]]] = qubits[0]
            measured.add(qubits[0])
        elif op.name in _SKIPPED:
            continue
        elif op.name == "reset" or inst.clbits or isinstance(op, ControlFlowOp) or getattr(op, "condition", None):
            raise ReferenceUnavailable(f"non-unitary operation {op.name!r}")
        elif measured.intersection(qubits):
            raise ReferenceUnavailable(f"{op.name!r} acts on a qubit after its measurement")
        else:
            gates.append((op, qubits))
    if not clbit_source:
        raise ReferenceUnavailable("the circuit measures nothing")
    active = sorted({q for _, qubits in gates for q in qubits} | set(clbit_source.values()))
    if len(active) > max_qubits:
        raise ReferenceUnavailable(f"{len(active)} active qubits, more than the ideal-simulation limit {max_qubits}")
    position = {q: i for i, q in enumerate(active)}
    compact = QuantumCircuit(len(active))
    for op, qubits in gates:
        compact.append(op, [position[q] for q in qubits])
    try:
        state = Statevector(compact)
    except Exception as exc:  # noqa: BLE001 - e.g. an opaque gate without a matrix
        raise ReferenceUnavailable(f"cannot simulate: {type(exc).__name__}") from None
    sources = sorted(set(clbit_source.values()))
    # probabilities_dict keys put qargs[0] rightmost.
    marginal = state.probabilities_dict(qargs=[position[q] for q in sources])
    width = circuit.num_clbits
    out: dict[str, float] = {}
    for key, p in marginal.items():
        if p <= 1e-15:
            continue
        bit_of = {q: key[len(sources) - 1 - i] for i, q in enumerate(sources)}
        bits = ["0"] * width
        for clbit, qubit in clbit_source.items():
            bits[width - 1 - clbit] = bit_of[qubit]
        outcome = "".join(bits)
        out[outcome] = out.get(outcome, 0.0) + p
    return out
