"""Random Clifford sequences for 1q and 2q RB, the inverting Clifford, interleaving, fingerprints.

Circuits are built *on the probed qubits only* (1 or 2 qubits, measured into as many clbits) and
carry the physical indices they stand for; the executor maps logical qubit i to
``physical_qubits[i]``. For 2q probes pass the pair in the backend's native direction: every
two-qubit gate we emit acts as (0 -> 1), i.e. ``physical_qubits[0] -> physical_qubits[1]``.

Why this construction:
- Each Clifford is synthesised once into the basis gates (transpile of that single Clifford at
  optimization_level=1, cached per basis), and sequences are assembled from those pieces with a
  barrier after every Clifford. Nothing ever optimises across Cliffords, which is what
  ``optimization_level=0`` on the whole sequence would guarantee, at a fraction of the cost.
- 1q: the 24-element group with precomputed product and inverse tables (sequences of 10^4
  Cliffords cost milliseconds). 2q: a uniform draw from the 11520-element group through the
  standard decomposition into four classes, C1xC1 . {I, CX, CX.CX', SWAP} . (S1xS1), whose
  pieces are all cached; the sequence's unitary is tracked with 4x4 products and the inverse is
  synthesised from it (exact Clifford recovered with ``Clifford.from_matrix``).
- Sequences at different lengths are *independent* draws (no nested prefixes), so per-length
  means are independent, as the fit assumes.
- Generation is a pure function of (seed, interleaved flag, length, sample index): any probe
  circuit can be regenerated exactly; its fingerprint is sha256 of a canonical text form.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Barrier, CircuitInstruction, Measure, Operation
from qiskit.quantum_info import Clifford, Operator

__all__ = [
    "INTERLEAVABLE_GATES",
    "RBCircuit",
    "rb_circuits",
    "rb_circuits_from_design",
    "canonical_text",
    "circuit_fingerprint",
    "mean_gates_per_clifford",
]

# gate name -> number of qubits; interleaved gates act on (0,) or (0, 1).
INTERLEAVABLE_GATES: dict[str, int] = {"sx": 1, "x": 1, "cz": 2, "ecr": 2, "cx": 2}
FINGERPRINT_VERSION = "qpu-exporter-rb-circuit-v1"

_Piece = tuple[tuple[Operation, tuple[int, ...]], ...]  # basis instructions on logical qubits


@dataclass(frozen=True)
class RBCircuit:
    circuit: QuantumCircuit
    physical_qubits: tuple[int, ...]
    length: int  # random Cliffords, excluding the inverse (qiskit-experiments' xval)
    sample: int  # index of this random sequence among those of the same length and kind
    interleaved: bool
    interleaved_gate: str | None
    seed: int  # the generation seed; (seed, interleaved, length, sample) determine the circuit
    fingerprint: str

    def metadata(self) -> dict[str, Any]:
        return {
            "length": self.length,
            "sample": self.sample,
            "interleaved": self.interleaved,
            "interleaved_gate": self.interleaved_gate,
            "physical_qubits": list(self.physical_qubits),
            "seed": self.seed,
            "fingerprint": self.fingerprint,
        }


# --------------------------------------------------------------------------------------------
# Canonical text and fingerprint


def _fmt_param(value: Any) -> str:
    # 12 significant digits: stable across platforms' last-bit float noise.
    return format(float(value), ".12g")


def canonical_text(circuit: QuantumCircuit, physical_qubits: Sequence[int]) -> str:
    """One line per instruction: ``name(params) q..;c..``; header names the physical qubits."""
    qidx = {q: i for i, q in enumerate(circuit.qubits)}
    cidx = {c: i for i, c in enumerate(circuit.clbits)}
    lines = [
        FINGERPRINT_VERSION,
        f"qubits {circuit.num_qubits} clbits {circuit.num_clbits} physical {','.join(map(str, physical_qubits))}",
    ]
    # Sequences reuse a few operation objects; memoise their text (the hot loop of long circuits).
    memo: dict[tuple[int, tuple, tuple], str] = {}
    for inst in circuit.data:
        op = inst.operation
        key = (id(op), inst.qubits, inst.clbits)
        line = memo.get(key)
        if line is None:
            params = ",".join(_fmt_param(p) for p in op.params)
            qs = ",".join(str(qidx[q]) for q in inst.qubits)
            cs = ",".join(str(cidx[c]) for c in inst.clbits)
            line = memo[key] = f"{op.name}({params}) {qs};{cs}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def circuit_fingerprint(circuit: QuantumCircuit, physical_qubits: Sequence[int]) -> str:
    return hashlib.sha256(canonical_text(circuit, physical_qubits).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# Basis libraries (cached per basis gate set)


def _pieces_from(circuit: QuantumCircuit) -> _Piece:
    qidx = {q: i for i, q in enumerate(circuit.qubits)}
    return tuple((inst.operation, tuple(qidx[q] for q in inst.qubits)) for inst in circuit.data)


def _to_basis(circuits: list[QuantumCircuit], basis: tuple[str, ...]) -> list[_Piece]:
    """Synthesise small circuits into the basis; 2q gates only in the (0 -> 1) direction."""
    num_qubits = circuits[0].num_qubits
    coupling = [[0, 1]] if num_qubits == 2 else None
    layout = list(range(num_qubits))
    out = transpile(
        circuits,
        basis_gates=list(basis),
        coupling_map=coupling,
        initial_layout=layout,
        optimization_level=1,
        seed_transpiler=0,
    )
    if isinstance(out, QuantumCircuit):
        out = [out]
    pieces = []
    for circ in out:
        # A routed/laid-out circuit may carry a final permutation; our pieces must not.
        if circ.layout is not None and circ.layout.final_layout is not None:
            perm = circ.layout.final_index_layout()
            if list(perm) != layout:
                raise RuntimeError("basis synthesis permuted qubits; cannot use it for RB")
        pieces.append(_pieces_from(circ))
    return pieces


def _clifford_key(cliff: Clifford) -> bytes:
    return np.packbits(cliff.tableau).tobytes()


class _OneQubitGroup:
    """The 24 single-qubit Cliffords: words, unitaries, product and inverse tables."""

    def __init__(self) -> None:
        words: list[tuple[str, ...]] = [()]
        keys = {_clifford_key(Clifford(QuantumCircuit(1))): 0}
        frontier = [()]
        while frontier:  # breadth-first closure under h and s gives shortest words
            nxt = []
            for word in frontier:
                for gen in ("h", "s"):
                    cand = word + (gen,)
                    key = _clifford_key(Clifford(_word_circuit(cand, 1)))
                    if key not in keys:
                        keys[key] = len(words)
                        words.append(cand)
                        nxt.append(cand)
            frontier = nxt
        assert len(words) == 24
        self.words = words
        self.keys = keys
        self.cliffords = [Clifford(_word_circuit(w, 1)) for w in words]
        # compose[i][j]: apply i, then j.
        self.compose = [[keys[_clifford_key(ci.compose(cj))] for cj in self.cliffords] for ci in self.cliffords]
        self.inverse = [keys[_clifford_key(c.adjoint())] for c in self.cliffords]
        self.unitaries = [Operator(c.to_circuit()).data for c in self.cliffords]

    def index_of(self, circuit: QuantumCircuit) -> int:
        return self.keys[_clifford_key(Clifford(circuit))]


def _word_circuit(word: Sequence[str], num_qubits: int, qubit: int = 0) -> QuantumCircuit:
    qc = QuantumCircuit(num_qubits)
    for g in word:
        getattr(qc, g)(qubit)
    return qc


@lru_cache(maxsize=1)
def _one_qubit_group() -> _OneQubitGroup:
    return _OneQubitGroup()


def _gate_circuit(gate: str, num_qubits: int) -> QuantumCircuit:
    qc = QuantumCircuit(num_qubits)
    getattr(qc, gate)(*range(num_qubits))
    return qc


# The three 2q "core" layers, and the 3-element subgroup S1 = {I, SH, (SH)^2} (as h/s words).
_CORES = ("cx", "cx_cx10", "swap")
_S1_WORDS: tuple[tuple[str, ...], ...] = ((), ("h", "s"), ("h", "s", "h", "s"))
# Class sizes 576 + 5184 + 5184 + 576 = 11520 (the 2q Clifford group, Paulis included).
_CLASS_SIZES = (24 * 24, 24 * 24 * 9, 24 * 24 * 9, 24 * 24)
TWO_QUBIT_GROUP_ORDER = sum(_CLASS_SIZES)


def _core_circuit(core: str) -> QuantumCircuit:
    qc = QuantumCircuit(2)
    if core == "cx":
        qc.cx(0, 1)
    elif core == "cx_cx10":
        qc.cx(0, 1)
        qc.cx(1, 0)
    else:
        qc.swap(0, 1)
    return qc


class _BasisLibrary:
    """Basis-gate pieces for a basis gate set."""

    def __init__(self, basis: tuple[str, ...]):
        self.basis = basis
        grp = _one_qubit_group()
        self.group1 = grp
        self.one_q = _to_basis([_word_circuit(w, 1) for w in grp.words], basis)
        self.s1 = [grp.index_of(_word_circuit(w, 1)) for w in _S1_WORDS]
        self._two_q: dict[str, tuple[_Piece, np.ndarray]] | None = None
        self._gates: dict[str, tuple[_Piece, np.ndarray]] = {}

    def core(self, name: str) -> tuple[_Piece, np.ndarray]:
        if self._two_q is None:
            circs = [_core_circuit(c) for c in _CORES]
            pieces = _to_basis(circs, self.basis)
            self._two_q = {c: (p, Operator(circ).data) for c, p, circ in zip(_CORES, pieces, circs)}
        return self._two_q[name]

    def gate(self, name: str) -> tuple[_Piece, np.ndarray]:
        if name not in self._gates:
            circ = _gate_circuit(name, INTERLEAVABLE_GATES[name])
            self._gates[name] = (_to_basis([circ], self.basis)[0], Operator(circ).data)
        return self._gates[name]

    def clifford_2q(self, cliff: Clifford) -> _Piece:
        return _to_basis([cliff.to_circuit()], self.basis)[0]


@lru_cache(maxsize=8)
def _library(basis: tuple[str, ...]) -> _BasisLibrary:
    missing = {"rz", "sx"} - set(basis)
    if missing and not {"rx", "rz"} <= set(basis) and "u" not in basis:
        raise ValueError(f"basis_gates: cannot synthesise Cliffords from {list(basis)}")
    return _BasisLibrary(basis)


# --------------------------------------------------------------------------------------------
# Two-qubit random Cliffords via the class decomposition


def _decode_2q(index: int) -> tuple[int, int, int, int, int]:
    """index in [0, 11520) -> (class, a0, a1, s0, s1) with a in C1 (24), s in S1 (3)."""
    for cls, size in enumerate(_CLASS_SIZES):
        if index < size:
            a0, rest = index % 24, index // 24
            a1, rest = rest % 24, rest // 24
            s0, s1 = (rest % 3, rest // 3) if cls in (1, 2) else (0, 0)
            return cls, a0, a1, s0, s1
        index -= size
    raise ValueError("two-qubit Clifford index out of range")


def _two_qubit_element(lib: _BasisLibrary, index: int) -> tuple[list[tuple[Operation, tuple[int, ...]]], np.ndarray]:
    """Basis instructions and 4x4 unitary (qiskit little-endian) of the index-th element."""
    cls, a0, a1, s0, s1 = _decode_2q(index)
    grp = lib.group1
    instructions: list[tuple[Operation, tuple[int, ...]]] = []
    for op, _ in lib.one_q[a0]:
        instructions.append((op, (0,)))
    for op, _ in lib.one_q[a1]:
        instructions.append((op, (1,)))
    unitary = np.kron(grp.unitaries[a1], grp.unitaries[a0])
    if cls > 0:
        core_name = _CORES[{1: 0, 2: 1, 3: 2}[cls]]
        piece, core_u = lib.core(core_name)
        instructions.extend(piece)
        unitary = core_u @ unitary
    if cls in (1, 2):
        i0, i1 = lib.s1[s0], lib.s1[s1]
        for op, _ in lib.one_q[i0]:
            instructions.append((op, (0,)))
        for op, _ in lib.one_q[i1]:
            instructions.append((op, (1,)))
        unitary = np.kron(grp.unitaries[i1], grp.unitaries[i0]) @ unitary
    return instructions, unitary


# --------------------------------------------------------------------------------------------
# Sequence assembly


def _circuit_rng(seed: int, interleaved: bool, length: int, sample: int) -> np.random.Generator:
    return np.random.default_rng([seed, int(interleaved), length, sample])


def _append_piece(qc: QuantumCircuit, piece: Sequence[tuple[Operation, tuple[int, ...]]], qubit_map: Sequence[int] | None = None) -> None:
    qubits = qc.qubits
    for op, qs in piece:
        targets = tuple(qubits[qubit_map[q] if qubit_map else q] for q in qs)
        qc._append(CircuitInstruction(op, targets, ()))


def _sequence_1q(lib: _BasisLibrary, length: int, rng: np.random.Generator, gate: str | None) -> QuantumCircuit:
    grp = lib.group1
    qc = QuantumCircuit(1, 1)
    barrier = Barrier(1)
    q = qc.qubits
    total = 0  # identity is element 0
    gate_index = gate_piece = None
    if gate is not None:
        gate_piece, _ = lib.gate(gate)
        gate_index = grp.index_of(_gate_circuit(gate, 1))
    compose = grp.compose
    for element in rng.integers(24, size=length).tolist():
        _append_piece(qc, lib.one_q[element])
        qc._append(CircuitInstruction(barrier, q, ()))
        total = compose[total][element]
        if gate_piece is not None:
            _append_piece(qc, gate_piece)
            qc._append(CircuitInstruction(barrier, q, ()))
            total = compose[total][gate_index]
    _append_piece(qc, lib.one_q[grp.inverse[total]])
    qc._append(CircuitInstruction(barrier, q, ()))
    qc._append(CircuitInstruction(Measure(), (q[0],), (qc.clbits[0],)))
    return qc


def _sequence_2q(lib: _BasisLibrary, length: int, rng: np.random.Generator, gate: str | None) -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    barrier = Barrier(2)
    q = qc.qubits
    total = np.eye(4, dtype=complex)
    gate_piece = gate_u = None
    if gate is not None:
        gate_piece, gate_u = lib.gate(gate)
    for index in rng.integers(TWO_QUBIT_GROUP_ORDER, size=length).tolist():
        instructions, unitary = _two_qubit_element(lib, index)
        _append_piece(qc, instructions)
        qc._append(CircuitInstruction(barrier, q, ()))
        total = unitary @ total
        if gate_piece is not None:
            _append_piece(qc, gate_piece)
            qc._append(CircuitInstruction(barrier, q, ()))
            total = gate_u @ total
    inverse = Clifford.from_matrix(_strip_phase(total.conj().T))
    _append_piece(qc, lib.clifford_2q(inverse))
    qc._append(CircuitInstruction(barrier, q, ()))
    for i in range(2):
        qc._append(CircuitInstruction(Measure(), (q[i],), (qc.clbits[i],)))
    return qc


def _strip_phase(u: np.ndarray) -> np.ndarray:
    """Remove the global phase so ``Clifford.from_matrix`` sees a clean Clifford unitary."""
    flat = u.ravel()
    k = int(np.argmax(np.abs(flat)))
    return u * (abs(flat[k]) / flat[k])


def rb_circuits(
    physical_qubits: Sequence[int],
    lengths: Sequence[int],
    samples_per_length: int | Sequence[int],
    basis_gates: Sequence[str],
    seed: int,
    interleaved_gate: str | None = None,
) -> list[RBCircuit]:
    """Standard RB circuits, plus as many interleaved ones when ``interleaved_gate`` is given.

    Order: for each length, its standard samples, then (if interleaved) its interleaved samples.
    """
    physical = tuple(int(q) for q in physical_qubits)
    n = len(physical)
    if n not in (1, 2) or len(set(physical)) != n:
        raise ValueError("physical_qubits: need one qubit or a pair of distinct qubits")
    if interleaved_gate is not None:
        if interleaved_gate not in INTERLEAVABLE_GATES:
            raise ValueError(f"interleaved_gate: {interleaved_gate!r} not one of {sorted(INTERLEAVABLE_GATES)}")
        if INTERLEAVABLE_GATES[interleaved_gate] != n:
            raise ValueError(f"interleaved_gate: {interleaved_gate} acts on {INTERLEAVABLE_GATES[interleaved_gate]} qubit(s), probe has {n}")
    lengths = [int(m) for m in lengths]
    if any(m < 1 for m in lengths):
        raise ValueError("lengths: must be >= 1")
    samples = [int(samples_per_length)] * len(lengths) if isinstance(samples_per_length, (int, np.integer)) else [int(k) for k in samples_per_length]
    if len(samples) != len(lengths):
        raise ValueError("samples_per_length: one entry per length")
    lib = _library(tuple(basis_gates))
    build = _sequence_1q if n == 1 else _sequence_2q
    kinds = [False] + ([True] if interleaved_gate else [])
    out: list[RBCircuit] = []
    for length, k in zip(lengths, samples):
        for inter in kinds:
            gate = interleaved_gate if inter else None
            for sample in range(k):
                qc = build(lib, length, _circuit_rng(seed, inter, length, sample), gate)
                qc.name = f"rb_{'i' + gate + '_' if gate else ''}m{length}_s{sample}"
                out.append(
                    RBCircuit(
                        circuit=qc,
                        physical_qubits=physical,
                        length=length,
                        sample=sample,
                        interleaved=inter,
                        interleaved_gate=gate,
                        seed=seed,
                        fingerprint=circuit_fingerprint(qc, physical),
                    )
                )
    return out


def rb_circuits_from_design(design: Any, physical_qubits: Sequence[int], basis_gates: Sequence[str]) -> list[RBCircuit]:
    """Circuits for an ``RBDesign`` (or its dict form)."""
    rec = design.to_dict() if hasattr(design, "to_dict") else dict(design)
    return rb_circuits(
        physical_qubits,
        rec["lengths"],
        rec["samples_per_length"],
        basis_gates,
        rec["seed"],
        rec.get("interleaved_gate"),
    )


def mean_gates_per_clifford(num_qubits: int, basis_gates: Sequence[str]) -> dict[str, float]:
    """Average basis-gate counts per random Clifford (exact average over the group)."""
    lib = _library(tuple(basis_gates))
    counts: dict[str, float] = {}
    if num_qubits == 1:
        for piece in lib.one_q:
            for op, _ in piece:
                counts[op.name] = counts.get(op.name, 0.0) + 1 / 24
        return counts
    if num_qubits != 2:
        raise ValueError("num_qubits: 1 or 2")
    # Exact average via the class decomposition: each part's expected count, weighted by class.
    one_q = {}
    for piece in lib.one_q:
        for op, _ in piece:
            one_q[op.name] = one_q.get(op.name, 0.0) + 1 / 24
    s1 = {}
    for i in lib.s1:
        for op, _ in lib.one_q[i]:
            s1[op.name] = s1.get(op.name, 0.0) + 1 / 3
    for cls, size in enumerate(_CLASS_SIZES):
        w = size / TWO_QUBIT_GROUP_ORDER
        parts = [one_q, one_q]
        if cls > 0:
            core = {}
            for op, _ in lib.core(_CORES[{1: 0, 2: 1, 3: 2}[cls]])[0]:
                core[op.name] = core.get(op.name, 0.0) + 1
            parts.append(core)
        if cls in (1, 2):
            parts.extend([s1, s1])
        for part in parts:
            for name, c in part.items():
                counts[name] = counts.get(name, 0.0) + w * c
    return counts


def _all_two_qubit_keys(basis_gates: Sequence[str]) -> set[bytes]:
    """Every element of the decomposition as a phase-free rounded unitary (tests check that all
    11520 are distinct, i.e. the decomposition is the whole group and uniform sampling is right)."""
    lib = _library(tuple(basis_gates))
    keys = set()
    for i in range(TWO_QUBIT_GROUP_ORDER):
        u = _strip_phase(_two_qubit_element(lib, i)[1])
        keys.add((np.round(u, 6) + 0.0).tobytes())  # +0.0 folds -0.0 into 0.0
    return keys
