"""Braket probe execution at the network edge: the real boto3 clients (parameter validation,
signing, the REST-JSON and S3 parsers) and the real Braket SDK path (AwsDevice, AwsQuantumTask
create/metadata/result/cancel, results.json parsed by the schema classes) talk to a task
server written here, which answers at botocore's ``before-send`` hook (what would go on the
wire). A dynamic server rather than a Stubber queue: how often a task is polled depends on
timing. Program translation is checked against qiskit with Braket's local simulator."""

from __future__ import annotations

import io
import itertools
import json
import logging
import re
import time
from urllib.parse import unquote, urlparse

import numpy as np
import pytest
import urllib3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from test_braket_provider import ARNS, SECRET, Rig, device_payload

from qpu_exporter.providers.base import ProviderError
from qpu_exporter.providers.braket.provider import (
    PROBE_TAGS,
    compiled_program,
    counts_in_qiskit_order,
    verbatim_program,
)
from qpu_exporter.rb.circuits import rb_circuits

BUCKET = "probe-results-bucket"
PREFIX = "qpu-exporter/probes"
BASIS = ("rz", "sx", "x", "cz")
ACCOUNT = "123456789012"


def _response(url: str, status: int, body: bytes, content_type: str = "application/json", headers=None) -> AWSResponse:
    raw = urllib3.HTTPResponse(body=io.BytesIO(body), status=status, preload_content=False)
    return AWSResponse(url, status, {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}, raw)


class BraketEdge:
    """Braket control plane + S3, answering signed requests before they are sent.

    ``states(index, polls)`` gives the status GetQuantumTask reports for task ``index`` on
    its ``polls``-th poll; ``respond(task)`` gives (measuredQubits, Braket-ordered counts)
    for a completed task's results.json."""

    def __init__(self, session, device: str, respond=None, states=None, failure_reason=None, create_error=None):
        self.device = device
        self.respond = respond
        self.states = states or (lambda index, polls: ["QUEUED", "RUNNING", "COMPLETED"][min(polls, 2)])
        self.failure_reason = failure_reason
        self.create_error = create_error
        self.lose_create_response: set[int] = set()  # create calls (0-based) that create, then time out
        self.searches: list[dict] = []
        self.tasks: list[dict] = []
        self.cancelled: list[int] = []
        self.s3_reads: list[str] = []
        self.calls: list[str] = []
        self._ids = itertools.count(1)
        session.events.register("before-send", self._send)

    # --- routing --------------------------------------------------------------------------------
    def _send(self, request, **_):
        url = urlparse(request.url)
        path = unquote(url.path)
        if url.hostname.startswith("braket."):
            self.calls.append(f"{request.method} {path}")
            if request.method == "GET" and path.startswith("/device/"):
                return _response(request.url, 200, json.dumps(device_payload(self.device)).encode())
            if request.method == "POST" and path == "/quantum-task":
                return self._create(request)
            if request.method == "POST" and path == "/quantum-tasks":
                return self._search(request)
            m = re.match(r"^/quantum-task/(?P<arn>.+?)(?P<cancel>/cancel)?$", path)
            if m:
                task = next(t for t in self.tasks if t["arn"] == m.group("arn"))
                return self._cancel(request, task) if m.group("cancel") else self._get(request, task)
        if ".s3." in url.hostname or url.hostname.startswith("s3."):
            return self._s3(request, url, path)
        raise AssertionError(f"unexpected request {request.method} {request.url}")

    def _create(self, request):
        if self.create_error is not None:
            status, code = self.create_error
            body = json.dumps({"message": f"rejected; key {SECRET}"}).encode()
            return _response(request.url, status, body, headers={"x-amzn-ErrorType": f"{code}:http://internal/"})
        task = self.add_task(json.loads(request.body))
        if task["index"] in self.lose_create_response:  # created, but the answer never arrives
            raise ReadTimeoutError(endpoint_url=request.url)
        return _response(request.url, 201, json.dumps({"quantumTaskArn": task["arn"]}).encode())

    def add_task(self, params: dict, status: str = "CREATED") -> dict:
        index = next(self._ids) - 1
        task_id = f"{index + 1:08d}-0000-4000-8000-000000000000"
        task = {"index": index, "id": task_id, "arn": f"arn:aws:braket:eu-north-1:{ACCOUNT}:quantum-task/{task_id}",
                "params": params, "source": json.loads(params["action"])["source"], "polls": 0, "status": status}
        self.tasks.append(task)
        return task

    def _search(self, request):
        """SearchQuantumTasks: the device filter is applied; the summary carries the folder."""
        body = json.loads(request.body)
        self.searches.append(body)
        device = next(f["values"][0] for f in body["filters"] if f["name"] == "deviceArn")
        keys = ("quantumTaskArn", "status", "deviceArn", "shots", "outputS3Bucket", "outputS3Directory", "createdAt")
        found = [{k: self._meta(t)[k] for k in keys} for t in self.tasks if t["params"]["deviceArn"] == device]
        return _response(request.url, 200, json.dumps({"quantumTasks": found}).encode())

    def _meta(self, task) -> dict:
        p = task["params"]
        meta = {"quantumTaskArn": task["arn"], "status": task["status"], "deviceArn": p["deviceArn"],
                "deviceParameters": "{}", "shots": p["shots"], "outputS3Bucket": p["outputS3Bucket"],
                "outputS3Directory": f"{p['outputS3KeyPrefix']}/{task['id']}", "createdAt": "2026-11-20T09:00:00Z",
                "actionMetadata": {"actionType": "braket.ir.openqasm.program", "programCount": 1},
                "queueInfo": {"queue": "QUANTUM_TASKS_QUEUE", "position": "3", "queuePriority": "Normal"}}
        if task["status"] == "FAILED":
            meta["failureReason"] = self.failure_reason or "unknown"
        return meta

    def _get(self, request, task):
        if task["status"] not in ("COMPLETED", "FAILED", "CANCELLING", "CANCELLED"):
            task["status"] = self.states(task["index"], task["polls"])
            task["polls"] += 1
        return _response(request.url, 200, json.dumps(self._meta(task)).encode())

    def _cancel(self, request, task):
        self.cancelled.append(task["index"])
        task["status"] = "CANCELLING"
        body = {"quantumTaskArn": task["arn"], "cancellationStatus": "CANCELLING"}
        return _response(request.url, 200, json.dumps(body).encode())

    def _s3(self, request, url, path):
        self.s3_reads.append(path)
        task = next(t for t in self.tasks if path.endswith(f"/{t['params']['outputS3KeyPrefix']}/{t['id']}/results.json"))
        assert path.startswith(f"/{BUCKET}/") or url.hostname.startswith(BUCKET), path
        measured, counts = self.respond(task)
        rows = [[int(b) for b in key] for key, n in counts.items() for _ in range(n)]
        body = {"braketSchemaHeader": {"name": "braket.task_result.gate_model_task_result", "version": "1"},
                "measurements": rows, "measuredQubits": measured,
                "taskMetadata": {"braketSchemaHeader": {"name": "braket.task_result.task_metadata", "version": "1"},
                                 "id": task["arn"], "shots": task["params"]["shots"], "deviceId": task["params"]["deviceArn"]},
                "additionalMetadata": {"action": {"braketSchemaHeader": {"name": "braket.ir.openqasm.program", "version": "1"},
                                                  "source": task["source"]}}}
        return _response(request.url, 200, json.dumps(body).encode())


def rig_for(device: str, region: str, **cfg) -> Rig:
    cfg.setdefault("probe_s3_bucket", BUCKET)
    cfg.setdefault("probe_poll_interval", 0.1)
    return Rig([device], region=region, **cfg)


def garnet(respond=None, **kw) -> tuple:
    edge_kw = {k: kw.pop(k) for k in ("states", "failure_reason", "create_error") if k in kw}
    rig = rig_for("Garnet", "eu-north-1", **kw)
    edge = BraketEdge(rig.provider._boto_session, "Garnet", respond, **edge_kw)
    return rig.provider, edge


def rb_1q(qubit: int, lengths=(1, 4, 12), seed: int = 5):
    out = [c.circuit for c in rb_circuits([qubit], list(lengths), 1, BASIS, seed)]
    for c in out:
        c.metadata = {"physical_qubits": [qubit]}
    return out


# --- runs -----------------------------------------------------------------------------------------

def test_verbatim_1q_probe_on_garnet(caplog):
    def respond(task):  # a different split per task: input order is checkable
        n = task["params"]["shots"]
        return [5], {"0": n - 9 * (task["index"] + 1), "1": 9 * (task["index"] + 1)}

    provider, edge = garnet(respond)
    circuits = rb_1q(5)
    counts = provider.run_circuits("Garnet", circuits, 250, seed=1)
    assert counts == [{"0": 241, "1": 9}, {"0": 232, "1": 18}, {"0": 223, "1": 27}]

    assert len(edge.tasks) == 3
    for task, original in zip(edge.tasks, circuits):
        p = task["params"]
        assert (p["deviceArn"], p["shots"], p["outputS3Bucket"]) == (ARNS["Garnet"], 250, BUCKET)
        # One folder per attempt, shared by its tasks: <prefix>/<device>/<16 hex digits>
        assert re.fullmatch(rf"{PREFIX}/Garnet/[0-9a-f]{{16}}", p["outputS3KeyPrefix"]) and p["tags"] == PROBE_TAGS
        assert p["outputS3KeyPrefix"] == edge.tasks[0]["params"]["outputS3KeyPrefix"]
        src = task["source"]
        assert "#pragma braket verbatim" in src and "qubit[" not in src
        assert set(re.findall(r"\$(\d+)", src)) == {"5"}  # the physical qubit, nothing else
        pulses = re.findall(r"^prx\(", src, flags=re.M)
        gates = [i.operation.name for i in original.data]
        # Every sx and x became exactly one prx pulse; rz went into the pulses' phases.
        assert len(pulses) == gates.count("sx") + gates.count("x") > 0
        assert "rz" not in src and src.rstrip().endswith("c[0] = measure $5;")
    assert len(edge.s3_reads) == 3
    assert all(t["polls"] >= 3 for t in edge.tasks[:1])  # the first was polled through QUEUED, RUNNING
    assert SECRET not in caplog.text


def test_counts_are_rekeyed_from_measured_qubits_to_qiskit_clbits():
    from qiskit import QuantumCircuit

    circuits = []
    for physical in ([4, 7], [7, 4]):
        qc = QuantumCircuit(2, 2, name=f"pair_{physical[0]}")
        qc.x(0)
        qc.measure([0, 1], [0, 1])
        qc.metadata = {"physical_qubits": physical}
        circuits.append(qc)

    # The device lists measured qubits ascending; $4 read 1 in 90 shots.
    provider, edge = garnet(lambda task: ([4, 7], {"10": 90, "01": 10}))
    first, second = provider.run_circuits("Garnet", circuits, 100, seed=1)
    assert first == {"01": 90, "10": 10}  # clbit 0 is $4: rightmost
    assert second == {"10": 90, "01": 10}  # clbit 1 is $4
    assert "c[0] = measure $7;" in edge.tasks[1]["source"]


def test_counts_in_qiskit_order_pure():
    assert counts_in_qiskit_order({"011": 5}, [2, 9, 4], {0: 9, 1: 2}, 3, "x") == {"001": 5}
    with pytest.raises(ProviderError) as err:
        counts_in_qiskit_order({"0": 5}, [2], {0: 9}, 1, "x")
    assert err.value.kind == "malformed"


def test_compiled_mode_keeps_qiskit_gates_through_the_shim():
    provider, edge = garnet(lambda task: ([3], {"0": task["params"]["shots"]}), probe_verbatim=False)
    [counts] = provider.run_circuits("Garnet", rb_1q(3, lengths=(3,)), 64, seed=1)
    assert counts == {"0": 64}
    src = edge.tasks[0]["source"]
    assert "gate sx a { v a; }" in src and "include" not in src and "verbatim" not in src
    assert "qubit[" not in src and set(re.findall(r"\$(\d+)", src)) == {"3"}
    assert src.count("barrier $3;") == 4  # three Cliffords and the inverse, each closed by a barrier


def test_failed_task_is_task_failed_without_secrets_and_the_rest_are_cancelled(caplog):
    caplog.set_level(logging.INFO)  # (botocore's DEBUG log prints response bodies verbatim)
    states = lambda index, polls: ["COMPLETED", "FAILED", "QUEUED"][index]  # noqa: E731
    provider, edge = garnet(lambda task: ([5], {"0": task["params"]["shots"]}), states=states,
                            failure_reason=f"Device compilation failed; credentials {SECRET} rejected")
    with pytest.raises(ProviderError) as err:
        provider.run_circuits("Garnet", rb_1q(5), 100, seed=1)
    assert err.value.kind == "task_failed"
    assert SECRET not in str(err.value) and ACCOUNT not in str(err.value)
    assert "00000002" in str(err.value)  # which task, by id
    assert edge.cancelled == [2]  # the queued one; finished ones are left alone
    assert SECRET not in caplog.text


def test_task_not_final_within_probe_timeout_is_a_timeout_and_cancelled():
    provider, edge = garnet(states=lambda index, polls: "QUEUED", probe_timeout=0.4)
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        provider.run_circuits("Garnet", rb_1q(5, lengths=(1, 2)), 100, seed=1)
    assert err.value.kind == "timeout"
    assert time.monotonic() - started < 15
    assert edge.tasks[0]["polls"] >= 2 and sorted(edge.cancelled) == [0, 1]
    assert edge.s3_reads == []


@pytest.mark.parametrize("status,code,kind", [(500, "InternalServiceException", "http_5xx"),
                                              (400, "ValidationException", "invalid_input"),
                                              (403, "AccessDeniedException", "auth")])
def test_create_faults_are_classified(status, code, kind):
    provider, edge = garnet(create_error=(status, code), retries=0)
    with pytest.raises(ProviderError) as err:
        provider.run_circuits("Garnet", rb_1q(5, lengths=(1,)), 100, seed=1)
    assert err.value.kind == kind and SECRET not in str(err.value)


def test_a_task_created_by_a_call_whose_response_was_lost_is_cancelled(caplog):
    """The second CreateQuantumTask reaches Braket, which creates the task, but the response
    times out: the attempt fails as a timeout, the first task (whose handle we hold) and the
    lost one (found under the attempt's own S3 folder) are cancelled; a queued probe task of
    an earlier attempt is left alone."""
    provider, edge = garnet(retries=0)
    earlier = {"deviceArn": ARNS["Garnet"], "shots": 100, "outputS3Bucket": BUCKET,
               "outputS3KeyPrefix": f"{PREFIX}/Garnet/0123456789abcdef", "action": json.dumps({"source": "x"})}
    edge.add_task(earlier, status="QUEUED")
    edge.lose_create_response = {2}
    with pytest.raises(ProviderError) as err:
        provider.run_circuits("Garnet", rb_1q(5, lengths=(1, 2, 3)), 100, seed=1)
    assert err.value.kind == "timeout"
    assert len(edge.tasks) == 3  # the third circuit was never submitted
    folder = edge.tasks[1]["params"]["outputS3KeyPrefix"]
    assert folder.startswith(f"{PREFIX}/Garnet/") and folder == edge.tasks[2]["params"]["outputS3KeyPrefix"]
    assert len(edge.searches) == 1 and sorted(edge.cancelled) == [1, 2]
    assert ACCOUNT not in caplog.text and ACCOUNT not in str(err.value)


def test_no_bucket_or_no_native_translation_is_unsupported_and_sends_nothing():
    provider, edge = garnet(probe_s3_bucket=None)
    with pytest.raises(ProviderError) as err:
        provider.run_circuits("Garnet", rb_1q(5, lengths=(1,)), 100, seed=1)
    assert err.value.kind == "unsupported" and "probe_s3_bucket" in str(err.value)
    assert edge.calls == []

    rig = rig_for("Forte-1", "us-east-1")
    edge = BraketEdge(rig.provider._boto_session, "Forte-1")
    with pytest.raises(ProviderError) as err:
        rig.provider.run_circuits("Forte-1", rb_1q(5, lengths=(1,)), 100, seed=1)
    assert err.value.kind == "unsupported" and "probe_verbatim" in str(err.value)
    assert not any("quantum-task" in c for c in edge.calls)


# --- translation semantics: Braket's own interpreter against qiskit ---------------------------------

def _random_circuit(rng: np.random.Generator, physical: list[int], two_q: str):
    """Layers of rz(random angle) + sx (sometimes x) on both qubits, with the 2q gate in
    between: generic output probabilities, so a wrong phase or qubit shows up."""
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, 2, name="random")
    for _ in range(6):
        for q in (0, 1):
            qc.rz(float(rng.uniform(-3.2, 3.2)), q)
            qc.x(q) if rng.random() < 0.2 else qc.sx(q)
        if rng.random() < 0.6:
            getattr(qc, two_q)(*((0, 1) if rng.random() < 0.5 else (1, 0)))
        if rng.random() < 0.3:
            qc.barrier()
    qc.measure([0, 1], [1, 0])  # crossed on purpose
    qc.metadata = {"physical_qubits": physical}
    return qc


def _exact_probabilities(source: str, clbit_qubits: dict[int, int]) -> dict[str, float]:
    """Run the program on Braket's local state-vector simulator with an exact probability
    result (measurements swapped for the result pragma); keys in qiskit clbit order."""
    from braket.devices import LocalSimulator
    from braket.ir.openqasm import Program

    qubits = [clbit_qubits[i] for i in sorted(clbit_qubits)]  # clbit 0 first
    body = [ln for ln in source.splitlines() if " = measure " not in ln and not ln.startswith("bit[")]
    body.append("#pragma braket result probability " + ", ".join(f"${q}" for q in qubits))
    probs = LocalSimulator("braket_sv").run(Program(source="\n".join(body)), shots=0).result().values[0]
    out = {}
    for index, p in enumerate(probs):  # Braket: first listed qubit is the most significant bit
        bits = format(index, f"0{len(qubits)}b")  # bits[i] is clbit i
        out[bits[::-1]] = float(p)
    return out


@pytest.mark.parametrize("mode", ["prx", "rx_rz", "compiled_ecr"])
def test_programs_match_qiskit_exactly_on_the_braket_interpreter(mode):
    from qiskit.quantum_info import Statevector

    rng = np.random.default_rng({"prx": 1, "rx_rz": 2, "compiled_ecr": 3}[mode])
    for _ in range(4):
        qc = _random_circuit(rng, [int(x) for x in rng.choice(20, 2, replace=False)], "ecr" if mode == "compiled_ecr" else "cz")
        if mode == "prx":
            src = verbatim_program(qc, frozenset({"prx", "cz"}))
        elif mode == "rx_rz":
            src = verbatim_program(qc, frozenset({"rx", "rz", "cz", "iswap"}))
        else:
            src = compiled_program(qc)
        physical = qc.metadata["physical_qubits"]
        got = _exact_probabilities(src, {1: physical[0], 0: physical[1]})  # measure q0->c1, q1->c0
        ideal = Statevector(qc.remove_final_measurements(inplace=False)).probabilities_dict()
        # Statevector keys are qubit order (q1 q0); clbits are crossed: c0=q1, c1=q0.
        want = {f"{k[1]}{k[0]}": float(v) for k, v in ideal.items()}
        assert any(min(abs(v - r) for r in (0, 0.25, 0.5, 1)) > 0.02 for v in want.values())  # generic case
        for key in ("00", "01", "10", "11"):
            assert got.get(key, 0.0) == pytest.approx(want.get(key, 0.0), abs=1e-9), (mode, src)


# --- the probe runner end to end -------------------------------------------------------------

PULSE_Q = 0.996  # depolarising parameter per native pulse of the stub device


def test_probe_runner_auto_targets_and_fits_a_braket_device(tmp_path):
    """Braket publishes a 1q RB figure, not sx/x errors: auto-targeting must still pick
    qubits (and the cz pair), and a probe runs through tasks, S3 results and the fit. The
    stub device depolarises after every prx pulse, so a sequence survives with
    0.49 q^pulses + 0.5 and the EPC is 1 - E[q^pulses per Clifford] over the sequences."""
    from qpu_exporter.config import ProbesConfig
    from qpu_exporter.probes.runner import ProbeRunner
    from qpu_exporter.probes.targets import targets_for
    from qpu_exporter.store import Store

    rng = np.random.default_rng(7)
    pulses_per_clifford: list[float] = []

    def respond(task):
        src, shots = task["source"], task["params"]["shots"]
        (qubit,) = {int(q) for q in re.findall(r"\$(\d+)", src)}
        g = len(re.findall(r"^prx\(", src, flags=re.M))
        zeros = int(rng.binomial(shots, 0.49 * PULSE_Q**g + 0.5))
        return [qubit], {"0": zeros, "1": shots - zeros}

    provider, edge = garnet(respond)
    snap = provider.calibration("Garnet")
    defaults = targets_for(ProbesConfig(), snap)
    assert [t.interleaved for t in defaults if len(t.qubits) == 2] == ["cz"]
    assert sum(len(t.qubits) == 1 for t in defaults) == 3

    cfg = ProbesConfig.model_validate({"auto_pairs": 0, "shots_per_probe": 6000, "max_length": 300, "min_shots": 200,
                                       "max_circuits": 24, "retries": 0,
                                       "budget": {"shots_per_day": 100_000, "usd_per_day": 100_000}})
    store = Store(tmp_path / "state.db")
    seeds = iter(range(900, 10**6))
    runner = ProbeRunner([provider], store, cfg, new_seed=lambda: next(seeds))
    runner.register_backend("braket", "Garnet")
    [out] = runner.probe_backend(provider, "Garnet")
    assert out.status == "ok", out.reason
    assert len(out.target.qubits) == 1 and len(edge.tasks) == out.design["num_circuits"] >= 6

    # The truth from what was actually sent: per-Clifford pulse counts of the submitted sequences.
    record = store.probe_run(out.run_id)["record"]
    for task, seq in zip(edge.tasks, record["sequences"]):
        pulses_per_clifford.append(len(re.findall(r"^prx\(", task["source"], flags=re.M)) / (seq["length"] + 1))
    epc = (1 - PULSE_Q ** float(np.mean(pulses_per_clifford))) / 2
    assert out.epc_stderr < 0.5 * epc and abs(out.epc - epc) < 3 * out.epc_stderr, (out.epc, out.epc_stderr, epc)
    store.close()
