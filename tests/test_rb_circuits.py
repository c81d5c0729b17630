"""RB circuits: inversion is exact, basis gates only, seeds reproduce, fingerprints canonical."""

from __future__ import annotations

import pytest

qiskit_aer = pytest.importorskip("qiskit_aer")

from qpu_exporter.rb import circuits as rbc  # noqa: E402

ECR_BASIS = ["rz", "sx", "x", "ecr"]
CZ_BASIS = ["rz", "sx", "x", "cz"]


@pytest.fixture(scope="module")
def ideal():
    return qiskit_aer.AerSimulator(method="density_matrix")


CASES = [((5,), b, g) for b in (ECR_BASIS, CZ_BASIS) for g in (None, "sx", "x")] + [
    ((3, 4), b, g) for b in (ECR_BASIS, CZ_BASIS) for g in (None, "cz", "ecr", "cx")
]


@pytest.mark.parametrize("qubits,basis,gate", CASES)
def test_noiseless_sequences_return_all_zeros(ideal, qubits, basis, gate):
    circs = rbc.rb_circuits(qubits, [1, 2, 7, 25], 3, basis, seed=17, interleaved_gate=gate)
    assert len(circs) == 4 * 3 * (2 if gate else 1)
    # Density-matrix probabilities are exact: any inversion error would show as p(0..0) < 1.
    result = ideal.run([c.circuit for c in circs], shots=64, seed_simulator=1).result()
    zero = "0" * len(qubits)
    for i, c in enumerate(circs):
        assert result.get_counts(i) == {zero: 64}, c.circuit.name
        ops = set(c.circuit.count_ops())
        assert ops <= set(basis) | {"barrier", "measure"}
        assert c.physical_qubits == tuple(qubits)


def test_structure_barrier_per_clifford_and_two_qubit_direction():
    std, c = rbc.rb_circuits((3, 4), [6], 1, ECR_BASIS, seed=2, interleaved_gate="cz")
    assert not std.interleaved and c.interleaved and std.circuit.count_ops()["barrier"] == 7
    ops = c.circuit.count_ops()
    # 6 Cliffords + 6 interleaved gates + the inverse, each closed by a barrier.
    assert ops["barrier"] == 13
    qubits = c.circuit.qubits
    for inst in c.circuit.data:
        if inst.operation.num_qubits == 2 and inst.operation.name != "barrier":
            assert [qubits.index(q) for q in inst.qubits] == [0, 1]


def test_seed_determines_circuits():
    # Lengths >= 10: a length-1 sequence has only 24 possible circuits, so seeds may coincide.
    args = ((0,), [10, 30, 50], 2, CZ_BASIS)
    a = [c.fingerprint for c in rbc.rb_circuits(*args, seed=5)]
    b = [c.fingerprint for c in rbc.rb_circuits(*args, seed=5)]
    c = [c.fingerprint for c in rbc.rb_circuits(*args, seed=6)]
    assert a == b
    assert len(set(a)) == len(a)  # every sequence distinct
    assert not set(a) & set(c)
    two_a = [x.fingerprint for x in rbc.rb_circuits((3, 4), [4], 3, ECR_BASIS, seed=9, interleaved_gate="ecr")]
    two_b = [x.fingerprint for x in rbc.rb_circuits((3, 4), [4], 3, ECR_BASIS, seed=9, interleaved_gate="ecr")]
    assert two_a == two_b


def test_single_circuit_regenerates_from_its_record():
    full = rbc.rb_circuits((2,), [3, 40], 4, ECR_BASIS, seed=123)
    target = full[6]  # length 40, sample 2
    again = rbc.rb_circuits((2,), [target.length], target.sample + 1, ECR_BASIS, seed=target.seed)[-1]
    assert again.fingerprint == target.fingerprint


def test_fingerprint_is_sha256_of_canonical_text_including_layout():
    (c,) = rbc.rb_circuits((0,), [3], 1, CZ_BASIS, seed=1)
    import hashlib

    text = rbc.canonical_text(c.circuit, c.physical_qubits)
    assert hashlib.sha256(text.encode()).hexdigest() == c.fingerprint
    assert text.splitlines()[1].endswith("physical 0")
    assert rbc.circuit_fingerprint(c.circuit, (7,)) != c.fingerprint


def test_two_qubit_decomposition_is_the_whole_group():
    """All 11520 indices give distinct Cliffords, so uniform indices = uniform Cliffords."""
    assert len(rbc._all_two_qubit_keys(CZ_BASIS)) == rbc.TWO_QUBIT_GROUP_ORDER == 11520


def test_bad_arguments():
    with pytest.raises(ValueError, match="interleaved_gate"):
        rbc.rb_circuits((0,), [1, 2], 1, CZ_BASIS, seed=1, interleaved_gate="cz")
    with pytest.raises(ValueError, match="interleaved_gate"):
        rbc.rb_circuits((0,), [1, 2], 1, CZ_BASIS, seed=1, interleaved_gate="h")
    with pytest.raises(ValueError, match="physical_qubits"):
        rbc.rb_circuits((1, 1), [1, 2], 1, CZ_BASIS, seed=1)


def test_mean_gate_counts():
    one = rbc.mean_gates_per_clifford(1, CZ_BASIS)
    assert one["sx"] + one.get("x", 0) == pytest.approx(20 / 24)  # 4 of 24 Cliffords need no pulse
    two = rbc.mean_gates_per_clifford(2, CZ_BASIS)
    assert two["cz"] == pytest.approx(1.5)  # the textbook 1.5 two-qubit gates per 2q Clifford
