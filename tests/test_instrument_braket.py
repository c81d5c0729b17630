"""The instrumentation around Braket: the real LocalSimulator, and AwsDevice with the real SDK
and boto3 clients answered at botocore's before-send hook by the task server of
tests/test_braket_probe_execution.py (GetDevice, CreateQuantumTask, GetQuantumTask, S3)."""

from __future__ import annotations

import json
import time

import boto3
import numpy as np
import pytest
from braket.aws import AwsDevice, AwsQuantumTask, AwsSession
from braket.circuits import Circuit, Noise
from braket.devices import LocalSimulator
from braket.ir.openqasm import Program
from braket.tasks import GateModelQuantumTaskResult
from braket.tasks.local_quantum_task import LocalQuantumTask
from prometheus_client import generate_latest
from test_braket_probe_execution import BUCKET, BraketEdge
from test_braket_provider import ARNS, SECRET, caps_of, device_payload

from conftest import sample
from qpu_exporter.instrument import Instrumentation
from qpu_exporter.instrument.braket_devices import PROGRAM_FINGERPRINT_VERSION, program_fingerprint, to_qiskit
from qpu_exporter.instrument.reference import ideal_distribution
from qpu_exporter.probes.agreement import hellinger_fidelity
from qpu_exporter.providers.ibm.properties import parse_timestamp
from qpu_exporter.rb.circuits import circuit_fingerprint

W = "vqe-h2"
GARNET = {"workload": W, "provider": "braket", "backend": "Garnet"}
LOCAL = {"workload": W, "provider": "local", "backend": "StateVectorSimulator"}


def metric(inst, name, **labels):
    return sample(generate_latest(inst.registry).decode(), name, **labels)


def garnet_device(respond, states=None):
    session = boto3.Session(region_name="eu-north-1", aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key=SECRET)
    edge = BraketEdge(session, "Garnet", respond, states=states)
    return AwsDevice(ARNS["Garnet"], aws_session=AwsSession(boto_session=session)), edge


# --- translation to qiskit ----------------------------------------------------------------------

def _random_circuit(rng, qubits=(0, 2, 5)) -> Circuit:
    c = Circuit()
    one = ["h", "x", "y", "z", "s", "si", "t", "ti", "v", "vi", "i"]
    angled = ["rx", "ry", "rz", "phaseshift"]
    two = ["cnot", "cy", "cz", "cv", "swap", "iswap", "ecr"]
    two_angled = ["cphaseshift", "xx", "yy", "zz"]
    for _ in range(18):
        kind = rng.integers(7)
        a, b, d = (int(q) for q in rng.permutation(qubits))
        angle = float(rng.uniform(-np.pi, np.pi))
        if kind == 0:
            getattr(c, one[rng.integers(len(one))])(a)
        elif kind == 1:
            getattr(c, angled[rng.integers(len(angled))])(a, angle)
        elif kind == 2:
            getattr(c, two[rng.integers(len(two))])(a, b)
        elif kind == 3:
            getattr(c, two_angled[rng.integers(len(two_angled))])(a, b, angle)
        elif kind == 4:
            c.u(a, angle, 0.3, -0.7)
        elif kind == 5:
            c.prx(a, angle, 0.4)
        else:
            (c.ccnot if rng.integers(2) else c.cswap)(a, b, d)
    return c


def test_translation_matches_brakets_own_simulator():
    rng = np.random.default_rng(17)
    simulator = LocalSimulator()
    for _ in range(6):
        circuit = _random_circuit(rng)
        qc, used, measured = to_qiskit(circuit)
        assert used == measured == [0, 2, 5]
        ours = ideal_distribution(qc)
        exact = simulator.run(circuit.copy().probability(), shots=0).result().values[0]
        # Braket's vector is indexed with qubit 0 most significant; qiskit keys put clbit 0 (qubit 0) rightmost.
        theirs = {format(i, "03b")[::-1]: p for i, p in enumerate(exact) if p > 1e-12}
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert ours[key] == pytest.approx(theirs[key], abs=1e-9)


def test_fingerprint_is_the_qiskit_one_and_untranslatable_programs_hash_their_source(tmp_path):
    import hashlib

    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    translated, used, _ = to_qiskit(Circuit().h(3).cnot(3, 7))
    assert circuit_fingerprint(translated, used) == circuit_fingerprint(qc, [3, 7])

    inst = Instrumentation(W)
    inst.log_to(tmp_path / "runs.jsonl")
    device = inst.wrap(LocalSimulator(), reference="ideal")
    # A gate outside the translation table (an arbitrary unitary); noise channels take the same path.
    opaque = Circuit().h(0).unitary(matrix=np.array([[0, 1], [1, 0]]), targets=[1])
    with pytest.raises(ValueError, match="Depolarizing"):
        to_qiskit(Circuit().h(0).apply_gate_noise(Noise.Depolarizing(0.1)))
    device.run(opaque, shots=50).result()
    source = "OPENQASM 3.0;\nbit[1] b;\nqubit[1] q;\nx q[0];\nb[0] = measure q[0];"
    device.run(Program(source=source), shots=20).result()
    opaque_line, program_line = (json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines())
    assert program_line["fingerprint"] == program_fingerprint(source) == hashlib.sha256(
        f"{PROGRAM_FINGERPRINT_VERSION}\n{source}".encode()).hexdigest()
    assert program_line["counts"] == {"1": 20}
    from braket.circuits.serialization import IRType

    assert opaque_line["fingerprint"] == program_fingerprint(opaque.to_ir(IRType.OPENQASM).source)
    assert opaque_line["reference"] is None and program_line["reference"] is None  # no ideal for these
    assert metric(inst, "qpu_client_executions_total", **LOCAL, status="ok") == 2


# --- LocalSimulator ------------------------------------------------------------------------------

def test_local_simulator_results_unchanged_and_scored(tmp_path):
    inst = Instrumentation(W)
    inst.log_to(tmp_path / "runs.jsonl")
    device = inst.wrap(LocalSimulator(), reference="ideal")
    circuit = Circuit().h(0).cnot(0, 1).x(2)  # Braket order q0 q1 q2: 001 or 111
    task = device.run(circuit, shots=400)
    assert type(task) is LocalQuantumTask
    result = task.result()
    assert type(result) is GateModelQuantumTaskResult
    assert set(result.measurement_counts) <= {"001", "111"} and sum(result.measurement_counts.values()) == 400
    [line] = [json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines()]
    # qiskit order in the log: clbit 0 (qubit 0) rightmost
    assert line["counts"] == {k[::-1]: v for k, v in result.measurement_counts.items()}
    assert line["bit_order"] == "qiskit" and line["calibration_time"] is None
    ideal = {"100": 0.5, "111": 0.5}
    label = line["circuit"]
    assert label == line["fingerprint"][:12]
    assert metric(inst, "qpu_client_hellinger_fidelity_ratio", **LOCAL, circuit=label) == pytest.approx(
        hellinger_fidelity({k: v / 400 for k, v in line["counts"].items()}, ideal))
    assert metric(inst, "qpu_client_calibration_age_seconds", **LOCAL) is None
    assert metric(inst, "qpu_client_shots_total", **LOCAL) == 400


# --- AwsDevice -----------------------------------------------------------------------------------

def test_aws_device_tags_calibration_and_counts():
    def respond(task):
        return [0, 1], {"00": 45, "11": 50, "10": 5}  # Braket order: "10" is qubit 0 set

    device, edge = garnet_device(respond)
    inst = Instrumentation(W)
    device = inst.wrap(device, reference="ideal")
    before = time.time()
    task = device.run(Circuit().h(0).cnot(0, 1), s3_destination_folder=(BUCKET, "user/results"), shots=100,
                      poll_interval_seconds=0.05, tags={"project": "chem-7"})
    after = time.time()
    assert type(task) is AwsQuantumTask
    [created] = edge.tasks
    assert created["params"]["tags"] == {"project": "chem-7", "team": W}  # the user's tag kept, ours added
    assert created["params"]["shots"] == 100
    result = task.result()
    assert result.measurement_counts == {"00": 45, "11": 50, "10": 5}  # untouched, Braket order

    calibrated = parse_timestamp(caps_of(device_payload("Garnet"))["service"]["updatedAt"] + "Z")
    age = metric(inst, "qpu_client_calibration_age_seconds", **GARNET)
    assert before - calibrated - 1 <= age <= after - calibrated + 1
    qiskit_counts = {"00": 45, "11": 50, "01": 5}
    label = circuit_fingerprint(to_qiskit(Circuit().h(0).cnot(0, 1))[0], [0, 1])[:12]
    assert metric(inst, "qpu_client_hellinger_fidelity_ratio", **GARNET, circuit=label) == pytest.approx(
        hellinger_fidelity({k: v / 100 for k, v in qiskit_counts.items()}, {"00": 0.5, "11": 0.5}))
    assert metric(inst, "qpu_client_executions_total", **GARNET, status="ok") == 1


def test_aws_task_that_fails_then_a_retry():
    states = lambda index, polls: "FAILED" if index == 0 else "COMPLETED"  # noqa: E731
    device, edge = garnet_device(lambda task: ([0], {"1": task["params"]["shots"]}), states=states)
    inst = Instrumentation(W, tag_key="group")
    device = inst.wrap(device)
    circuit = Circuit().x(0)
    kwargs = {"s3_destination_folder": (BUCKET, "r"), "shots": 10, "poll_interval_seconds": 0.05}
    assert device.run(circuit, tags={"group": "theirs"}, **kwargs).result() is None  # the SDK's answer to FAILED
    assert edge.tasks[0]["params"]["tags"] == {"group": "theirs"}  # a tag the user set is not replaced
    assert metric(inst, "qpu_client_executions_total", **GARNET, status="failed") == 1
    assert device.run(circuit, **kwargs).result().measurement_counts == {"1": 10}
    assert edge.tasks[1]["params"]["tags"] == {"group": W}
    assert metric(inst, "qpu_client_retries_total", **GARNET) == 1
    assert metric(inst, "qpu_client_executions_total", **GARNET, status="ok") == 1


def test_partial_measurement_in_braket_order_is_rekeyed_and_scored(tmp_path):
    inst = Instrumentation(W)
    inst.log_to(tmp_path / "runs.jsonl")
    device = inst.wrap(LocalSimulator(), reference="ideal")
    circuit = Circuit().x(0).h(1).cnot(0, 2).measure([2, 1])  # clbit 0 is qubit 2 (always 1), clbit 1 qubit 1
    result = device.run(circuit, shots=200).result()
    assert result.measured_qubits == [2, 1]
    [line] = [json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert line["counts"] == {k[::-1]: v for k, v in result.measurement_counts.items()}
    assert set(line["counts"]) == {"01", "11"}
    assert line["hellinger_fidelity"] == pytest.approx(hellinger_fidelity(
        {k: v / 200 for k, v in line["counts"].items()}, {"01": 0.5, "11": 0.5}))
