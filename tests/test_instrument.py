"""The instrumentation library around the real qiskit-aer SamplerV2 (and qiskit's reference
primitives): results untouched, metric values checked against independent computations, the
execution log, references, label caps, and failures that stay inside the instrumentation."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from prometheus_client import generate_latest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit.quantum_info import hellinger_fidelity
from qiskit_aer.primitives import SamplerV2

from conftest import free_port, http_get, parse_samples, require_binary, sample
from qpu_exporter.instrument import Instrumentation
from qpu_exporter.instrument.reference import ReferenceUnavailable, ideal_distribution
from qpu_exporter.rb.circuits import circuit_fingerprint

W = "vqe-h2"


def bell(name: str | None = "bell") -> QuantumCircuit:
    qc = QuantumCircuit(2, name=name)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def metric(inst: Instrumentation, name: str, **labels) -> float | None:
    return sample(generate_latest(inst.registry).decode(), name, **labels)


def series(inst: Instrumentation, name: str) -> list[dict]:
    return [lab for n, lab, _ in parse_samples(generate_latest(inst.registry).decode()) if n == name]


LOCAL = {"workload": W, "provider": "local", "backend": "aer_simulator"}


# --- the wrapped call ------------------------------------------------------------------------

def test_wrapped_sampler_gives_the_same_results_types_and_object():
    plain = SamplerV2(seed=7)
    wrapped_target = SamplerV2(seed=7)
    inst = Instrumentation(W)
    wrapped = inst.wrap(wrapped_target, reference="ideal")
    assert wrapped is wrapped_target and type(wrapped) is SamplerV2
    circuits = [bell(), bell("other-bell")]
    expected_job = plain.run(circuits, shots=300)
    job = wrapped.run(circuits, shots=300)
    assert type(job) is type(expected_job)
    result, expected = job.result(), expected_job.result()
    assert type(result) is type(expected) and type(result[0]) is type(expected[0])
    for got, want in zip(result, expected):  # same seed, same counts: nothing was changed
        assert got.data.meas.get_counts() == want.data.meas.get_counts()
        assert got.data.meas.num_shots == 300
    assert job.result() is result  # a second result() call is the SDK's own cache
    assert metric(inst, "qpu_client_executions_total", **LOCAL, status="ok") == 1  # counted once
    assert metric(inst, "qpu_client_shots_total", **LOCAL) == 600
    assert metric(inst, "qpu_client_execution_duration_seconds_count", **LOCAL) == 1
    inst.unwrap(wrapped)
    assert "run" not in vars(wrapped)
    wrapped.run([bell()], shots=10).result()
    assert metric(inst, "qpu_client_executions_total", **LOCAL, status="ok") == 1


def test_fidelity_run_to_run_and_the_execution_log(tmp_path):
    inst = Instrumentation(W, fidelity_objective=0.95)
    inst.log_to(tmp_path / "runs.jsonl")
    sampler = inst.wrap(SamplerV2(seed=11), reference="ideal")
    all_counts = []
    for _ in range(3):
        result = sampler.run([bell()], shots=500).result()
        all_counts.append(result[0].data.meas.get_counts())
    ideal = {"00": 0.5, "11": 0.5}
    labels = {**LOCAL, "circuit": "bell"}
    assert metric(inst, "qpu_client_hellinger_fidelity_ratio", **labels) == pytest.approx(
        hellinger_fidelity(all_counts[-1], ideal))
    assert metric(inst, "qpu_client_run_to_run_hellinger_fidelity_ratio", **labels) == pytest.approx(
        hellinger_fidelity(all_counts[-1], all_counts[-2]))
    assert metric(inst, "qpu_client_hellinger_fidelity_objective_ratio", workload=W) == 0.95
    assert metric(inst, "qpu_client_calibration_age_seconds", **LOCAL) is None  # Aer: no calibration, no number

    lines = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    fingerprint = circuit_fingerprint(bell(), [0, 1])
    for line, counts in zip(lines, all_counts):
        assert line["counts"] == counts and line["shots"] == 500 and line["seed"] == 11
        assert (line["fingerprint"], line["backend"], line["status"]) == (fingerprint, "aer_simulator", "ok")
        assert line["calibration_time"] is None and line["reference"] == "ideal"
    assert lines[0]["run_to_run_hellinger_fidelity"] is None
    assert lines[2]["run_to_run_hellinger_fidelity"] == pytest.approx(hellinger_fidelity(all_counts[2], all_counts[1]))


def test_log_lines_are_compare_inputs(tmp_path, capsys):
    from qpu_exporter.cli import main

    inst = Instrumentation(W)
    inst.log_to(tmp_path / "runs.jsonl")
    sampler = inst.wrap(SamplerV2(seed=3))
    sampler.run([bell()], shots=400).result()
    lopsided = QuantumCircuit(2, name="lopsided")
    lopsided.ry(1.0, 0)
    lopsided.cx(0, 1)
    lopsided.measure_all()
    sampler.run([lopsided], shots=400).result()
    first, second = (tmp_path / "runs.jsonl").read_text().splitlines()
    (tmp_path / "a.json").write_text(first)
    (tmp_path / "b.json").write_text(second)
    assert main(["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    assert json.loads(capsys.readouterr().out)["different"] is True


def test_metadata_expected_overrides_and_a_malformed_one_is_counted_not_raised():
    inst = Instrumentation(W)
    sampler = inst.wrap(SamplerV2(seed=5))  # no ideal reference: only circuits that carry one
    skewed = bell("skewed")
    skewed.metadata = {"expected": {"00": 0.9, "11": 0.1}}
    plain = bell("plain")
    broken = bell("broken")
    broken.metadata = {"expected": {"00": 0.7}}  # does not sum to 1
    result = sampler.run([skewed, plain, broken], shots=800).result()
    counts = result[0].data.meas.get_counts()
    assert metric(inst, "qpu_client_hellinger_fidelity_ratio", **LOCAL, circuit="skewed") == pytest.approx(
        hellinger_fidelity(counts, {"00": 0.9, "11": 0.1}))
    assert metric(inst, "qpu_client_hellinger_fidelity_ratio", **LOCAL, circuit="plain") is None
    assert metric(inst, "qpu_client_hellinger_fidelity_ratio", **LOCAL, circuit="broken") is None
    assert metric(inst, "qpu_client_instrumentation_errors_total", workload=W, stage="reference") == 1
    assert metric(inst, "qpu_client_executions_total", **LOCAL, status="ok") == 1


def test_parameter_sweep_is_one_circuit_per_binding(tmp_path):
    theta = Parameter("theta")
    ansatz = QuantumCircuit(1, name="ansatz")
    ansatz.ry(theta, 0)
    ansatz.measure_all()
    values = np.array([[0.0], [np.pi], [np.pi / 2]])
    inst = Instrumentation(W)
    inst.log_to(tmp_path / "runs.jsonl")
    sampler = inst.wrap(SamplerV2(seed=2), reference="ideal")
    result = sampler.run([(ansatz, values)], shots=200).result()
    lines = [json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert [line["counts"] for line in lines] == [result[0].data.meas.get_counts(loc=i) for i in range(3)]
    assert len({line["fingerprint"] for line in lines}) == 3 and {line["circuit"] for line in lines} == {"ansatz"}
    assert lines[0]["hellinger_fidelity"] == 1.0 and lines[1]["hellinger_fidelity"] == 1.0
    # the gauge holds the latest binding's score: ry(pi/2) against 50/50
    assert metric(inst, "qpu_client_hellinger_fidelity_ratio", **LOCAL, circuit="ansatz") == pytest.approx(
        lines[2]["hellinger_fidelity"])


def test_generator_pubs_reach_the_sdk():
    inst = Instrumentation(W)
    sampler = inst.wrap(SamplerV2(seed=1))
    result = sampler.run((c for c in [bell(), bell()]), shots=50).result()
    assert len(result) == 2 and metric(inst, "qpu_client_shots_total", **LOCAL) == 100


# --- failures --------------------------------------------------------------------------------

def test_sdk_errors_propagate_unchanged_and_resubmission_is_a_retry():
    inst = Instrumentation(W)
    sampler = inst.wrap(SamplerV2())
    with pytest.raises(ValueError, match="shots must be positive"):
        SamplerV2().run([bell()], shots=0)
    with pytest.raises(ValueError, match="shots must be positive"):
        sampler.run([bell()], shots=0)
    assert metric(inst, "qpu_client_executions_total", **LOCAL, status="failed") == 1
    assert metric(inst, "qpu_client_retries_total", **LOCAL) is None
    sampler.run([bell()], shots=10).result()  # the same circuit again, after its failure
    assert metric(inst, "qpu_client_retries_total", **LOCAL) == 1
    sampler.run([bell()], shots=10).result()  # after a success: not a retry
    assert metric(inst, "qpu_client_retries_total", **LOCAL) == 1
    theta = Parameter("t")
    unbound = QuantumCircuit(1)
    unbound.rx(theta, 0)
    unbound.measure_all()
    with pytest.raises(ValueError, match="number of values"):  # the SDK's message, not ours
        sampler.run([unbound])
    assert metric(inst, "qpu_client_executions_total", **LOCAL, status="failed") == 2


def test_a_broken_execution_log_is_counted_and_the_run_goes_on(tmp_path, caplog):
    inst = Instrumentation(W)
    inst.log_to(tmp_path / "runs.jsonl")
    inst._log._file.close()  # the disk went away under the log
    sampler = inst.wrap(SamplerV2(seed=1))
    for _ in range(2):
        counts = sampler.run([bell()], shots=100).result()[0].data.meas.get_counts()
        assert sum(counts.values()) == 100
    assert metric(inst, "qpu_client_instrumentation_errors_total", workload=W, stage="log") == 2
    assert metric(inst, "qpu_client_executions_total", **LOCAL, status="ok") == 2
    warnings = [r for r in caplog.records if "instrumentation failed" in r.getMessage()]
    assert len([r for r in warnings if r.levelname == "WARNING"]) == 1  # repeats go to debug


def test_push_to_nowhere_returns_false_and_counts():
    inst = Instrumentation(W)
    assert inst.push(f"http://127.0.0.1:{free_port()}", timeout=2) is False
    assert metric(inst, "qpu_client_instrumentation_errors_total", workload=W, stage="push") == 1


def test_bad_arguments_are_refused():
    for kwargs in ({"workload": "has space"}, {"workload": ""}, {"workload": W, "tag_key": "a:b"},
                   {"workload": W, "fidelity_objective": 1.5}, {"workload": W, "max_circuits": 0},
                   {"workload": W, "ideal_max_qubits": True}, {"workload": W, "calibration_refresh": -1}):
        with pytest.raises(ValueError):
            Instrumentation(**kwargs)
    inst = Instrumentation(W)
    with pytest.raises(ValueError, match="reference"):
        inst.wrap(SamplerV2(), reference="noisy")
    with pytest.raises(TypeError, match="cannot instrument"):
        inst.wrap(object())
    sampler = inst.wrap(SamplerV2())
    with pytest.raises(ValueError, match="already instrumented"):
        Instrumentation("other").wrap(sampler)
    with pytest.raises(ValueError, match="not instrumented"):
        Instrumentation("other").unwrap(sampler)


# --- labels and references -------------------------------------------------------------------

def test_circuit_labels_are_cut_capped_and_auto_names_fall_back_to_the_fingerprint():
    inst = Instrumentation(W, max_circuits=3, circuit_name_length=10)
    sampler = inst.wrap(SamplerV2(seed=1), reference="ideal")
    anonymous = bell(None)  # qiskit names it circuit-<n>
    circuits = [bell("a-very-long-circuit-name"), anonymous, bell("second"), bell("third"), bell("fourth")]
    sampler.run(circuits, shots=20).result()
    circuit_labels = {lab["circuit"] for lab in series(inst, "qpu_client_hellinger_fidelity_ratio")}
    assert circuit_labels == {"a-very-lon", circuit_fingerprint(anonymous, [0, 1])[:12], "second", "other"}


def test_ideal_reference_of_multi_register_and_device_wide_circuits():
    qr = QuantumRegister(3)
    qc = QuantumCircuit(qr, ClassicalRegister(1, "a"), ClassicalRegister(2, "b"), name="registers")
    qc.x(0)
    qc.x(2)
    qc.measure([0, 1, 2], [0, 1, 2])
    assert ideal_distribution(qc) == {"101": pytest.approx(1.0)}
    inst = Instrumentation(W)
    sampler = inst.wrap(SamplerV2(seed=1), reference="ideal")
    sampler.run([qc], shots=50).result()
    assert metric(inst, "qpu_client_hellinger_fidelity_ratio", **LOCAL, circuit="registers") == pytest.approx(1.0)

    wide = QuantumCircuit(127, 2)  # an ISA-like circuit: two active qubits on a 127-qubit device
    wide.h(90)
    wide.cx(90, 3)
    wide.measure([3, 90], [1, 0])
    assert ideal_distribution(wide, max_qubits=2) == {"00": pytest.approx(0.5), "11": pytest.approx(0.5)}
    with pytest.raises(ReferenceUnavailable, match="limit 1"):
        ideal_distribution(wide, max_qubits=1)
    mid = QuantumCircuit(1, 1)
    mid.measure(0, 0)
    mid.x(0)
    with pytest.raises(ReferenceUnavailable, match="after its measurement"):
        ideal_distribution(mid)


# --- exposition ------------------------------------------------------------------------------

def test_serve_and_promtool_check_metrics():
    promtool = require_binary("promtool")
    with Instrumentation(W, fidelity_objective=0.9) as inst:
        sampler = inst.wrap(SamplerV2(seed=1), reference="ideal")
        sampler.run([bell()], shots=100).result()
        sampler.run([bell()], shots=100).result()
        port = inst.serve(0)
        code, body, _ = http_get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200
    text = body.decode()
    assert sample(text, "qpu_client_executions_total", **LOCAL, status="ok") == 2
    names = {n for n, _, _ in parse_samples(text)}
    from qpu_exporter.catalog import CLIENT_SPECS

    for name, spec in CLIENT_SPECS.items():  # every catalogued metric is exposed under its name
        exposed = name if spec.type != "histogram" else f"{name}_count"
        if name not in ("qpu_client_retries_total", "qpu_client_calibration_age_seconds",
                        "qpu_client_instrumentation_errors_total"):
            assert exposed in names, name
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_numpy_counts_equal_qiskits_get_counts():
    from qiskit.primitives.containers import BitArray

    from qpu_exporter.instrument.qiskit_samplers import bit_counts

    rng = np.random.default_rng(1)
    for width in (1, 3, 8, 9, 16, 64, 65, 127):
        bits = BitArray.from_bool_array(rng.random((2, 300, width)) < 0.3)
        for i in range(2):
            assert bit_counts(bits.array[i], bits.num_bits) == bits.get_counts(loc=i), width


def test_a_wrong_argument_fails_as_it_does_unwrapped():
    plain_error = wrapped_error = None
    try:
        SamplerV2().run(bell(), shots=10)  # a circuit instead of a list of pubs
    except Exception as exc:  # noqa: BLE001
        plain_error = exc
    inst = Instrumentation(W)
    try:
        inst.wrap(SamplerV2()).run(bell(), shots=10)
    except Exception as exc:  # noqa: BLE001
        wrapped_error = exc
    assert plain_error is not None and type(wrapped_error) is type(plain_error)
    assert str(wrapped_error) == str(plain_error)
    assert metric(inst, "qpu_client_executions_total", **LOCAL, status="failed") == 1
