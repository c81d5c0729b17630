"""IBM probe execution against HTTP-level stubs (``responses``): the real qiskit-ibm-runtime
SamplerV2 path (ISA check, QPY encoding, POST /jobs, GET /jobs/{id} polling, GET
/jobs/{id}/results through RuntimeDecoder) serving a job server written here. The result
payload is built by hand in the wire format the decoder reads (PrimitiveResult ->
SamplerPubResult -> DataBin -> BitArray, arrays as base64(zlib(np.save))), so the real
decoding code runs on it."""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import time
import zlib

from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
import requests
import responses
from test_ibm_provider import API, TOKEN, make_provider, payloads, stub  # noqa: F401 - fixtures

from qpu_exporter.config import ProbesConfig
from qpu_exporter.probes.runner import ProbeRunner
from qpu_exporter.probes.targets import ProbeTarget
from qpu_exporter.providers.base import ProviderError
from qpu_exporter.providers.ibm.provider import ATTEMPT_TAG_PREFIX, PROBE_JOB_TAG
from qpu_exporter.rb.circuits import rb_circuits
from qpu_exporter.store import Store

# The SDK deprecates SamplerV2 in favour of a client-side sampler (0.50); the legacy one is
# still what runs server-side post-processing in job mode, which is what we want to test.
pytestmark = pytest.mark.filterwarnings("ignore:The SamplerV2 class is deprecated:DeprecationWarning")

BACKEND = "ibm_sherbrooke"
BASIS = ("rz", "sx", "x", "ecr")
JOBS_LIST_URL = re.compile(re.escape(API) + r"/jobs(\?.*)?$")  # the same pattern as the stub fixture's
JOB_URL = re.compile(re.escape(f"{API}/jobs/") + r"(?P<id>[^/?]+)(?P<rest>/[a-z]+)?(\?.*)?$")


# --- the wire format of a SamplerV2 result ----------------------------------------------------

def _ndarray(a: np.ndarray) -> dict:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return {"__type__": "ndarray", "__value__": base64.standard_b64encode(zlib.compress(buf.getvalue())).decode()}


def _bit_array(counts: dict[str, int], num_bits: int, rng: np.random.Generator) -> dict:
    """Shots as packed big-endian bytes (clbit 0 = least significant bit of the last byte)."""
    nbytes = (num_bits + 7) // 8
    rows = [int(k, 2).to_bytes(nbytes, "big") for k, n in counts.items() for _ in range(n)]
    array = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), nbytes)
    array = array[rng.permutation(len(rows))]
    return {"__type__": "BitArray", "__value__": {"array": _ndarray(array), "num_bits": num_bits}}


def sampler_result(per_pub: list[tuple[str, int, dict[str, int]]], seed: int = 0) -> str:
    """[(register name, bits, counts)] -> the JSON body of GET /jobs/{id}/results."""
    rng = np.random.default_rng(seed)
    pubs = []
    for creg, bits, counts in per_pub:
        data = {"__type__": "DataBin", "__value__": {"field_names": [creg], "shape": [],
                                                     "fields": {creg: _bit_array(counts, bits, rng)}}}
        pubs.append({"__type__": "SamplerPubResult", "__value__": {"data": data, "metadata": {"circuit_metadata": {}}}})
    return json.dumps({"__type__": "PrimitiveResult",
                       "__value__": {"pub_results": pubs, "metadata": {"version": 2}}})


class JobServer:
    """POST /jobs, GET /jobs/{id}, GET /jobs/{id}/results, POST /jobs/{id}/cancel.

    ``states`` is the sequence of API states successive GET /jobs/{id} return (the last
    repeats); ``respond(circuits, shots)`` makes the counts of a completed job from the
    circuits the SDK actually submitted (decoded from the request body)."""

    def __init__(self, rs, respond=None, states=("Queued", "Running", "Completed"), reason=None, reason_code=None,
                 lose_post_response: bool = False):
        self.respond = respond
        self.states = states
        self.reason, self.reason_code = reason, reason_code
        self.lose_post_response = lose_post_response  # create the job, then time out the response
        self.jobs: dict[str, dict] = {}
        self.bodies: list[dict] = []
        self.cancelled: list[str] = []
        self.list_queries: list[dict] = []
        self._ids = itertools.count(1)
        rs.add_callback("POST", f"{API}/jobs", callback=self._post)
        rs.add_callback("GET", JOB_URL, callback=self._get)
        rs.add_callback("POST", JOB_URL, callback=self._cancel)
        rs.replace(responses.CallbackResponse("GET", JOBS_LIST_URL, callback=self._list))

    def _post(self, request):
        from qiskit_ibm_runtime import RuntimeDecoder

        body = json.loads(request.body, cls=RuntimeDecoder)
        self.bodies.append(body)
        job_id = f"d2probe{next(self._ids):03d}"
        self.jobs[job_id] = {"body": body, "gets": 0}
        if self.lose_post_response:
            return requests.exceptions.ReadTimeout("read timed out")
        return 200, {}, json.dumps({"id": job_id, "backend": body["backend"]})

    def _list(self, request):
        """GET /jobs: IBM's filters (a job matches when it carries every tag asked for)."""
        query = parse_qs(urlparse(request.url).query)
        self.list_queries.append(query)
        out = []
        for job_id, job in self.jobs.items():
            state = self.states[min(job["gets"], len(self.states) - 1)]
            pending = state in ("Queued", "Running")
            if query.get("pending") == ["true"] and not pending or query.get("pending") == ["false"] and pending:
                continue
            if not set(query.get("tags", [])) <= set(job["body"].get("tags", [])):
                continue
            out.append({"id": job_id, "backend": job["body"]["backend"], "status": state,
                        "state": {"status": state}, "tags": job["body"].get("tags", [])})
        return 200, {}, json.dumps({"jobs": out, "count": len(out)})

    def _state(self, job_id: str) -> dict:
        job = self.jobs[job_id]
        status = self.states[min(job["gets"], len(self.states) - 1)]
        job["gets"] += 1
        state = {"status": status}
        if status == "Failed" and self.reason is not None:
            state.update(reason=self.reason, reason_code=self.reason_code)
        return {"id": job_id, "backend": job["body"]["backend"], "state": state, "status": status,
                "program": {"id": "sampler"}, "created": "2025-02-26T12:00:00Z"}

    def _get(self, request):
        m = JOB_URL.match(request.url)
        job_id, rest = m.group("id"), m.group("rest")
        if job_id not in self.jobs:
            return 404, {}, json.dumps({"errors": [{"message": "no such job"}]})
        if rest is None:
            return 200, {}, json.dumps(self._state(job_id))
        if rest == "/results":
            if self.states[-1] == "Failed":  # the SDK reads a failed job's error text here
                return 200, {}, f"Traceback (most recent call last):\n  ...\nRuntimeError: {self.reason}"
            pubs = self.jobs[job_id]["body"]["params"]["pubs"]
            counts = self.respond([p[0] for p in pubs], [p[2] for p in pubs])
            regs = [(p[0].cregs[0].name, p[0].num_clbits, c) for p, c in zip(pubs, counts)]
            return 200, {}, sampler_result(regs)
        return 404, {}, "{}"

    def _cancel(self, request):
        m = JOB_URL.match(request.url)
        if m.group("rest") != "/cancel":
            return 404, {}, "{}"
        self.cancelled.append(m.group("id"))
        return 204, {}, ""

    def circuits(self, index: int = -1) -> list:
        return [p[0] for p in self.bodies[index]["params"]["pubs"]]


def fast_provider(**overrides):
    overrides.setdefault("probe_poll_interval", 0.1)
    return make_provider(**overrides)


def rb_1q(qubit: int, lengths=(1, 5, 20), seed: int = 11):
    out = [c.circuit for c in rb_circuits([qubit], list(lengths), 1, BASIS, seed)]
    for c in out:
        c.metadata = {"physical_qubits": [qubit]}
    return out


def ops(circuit) -> list[tuple]:
    """(name, params, device qubits) per instruction; qubit indices within the circuit."""
    index = {q: i for i, q in enumerate(circuit.qubits)}
    return [(i.operation.name, tuple(float(p) for p in i.operation.params), tuple(index[q] for q in i.qubits))
            for i in circuit.data]


# --- runs ---------------------------------------------------------------------------------------

def test_one_qubit_probe_counts_in_input_order_and_the_submitted_circuits(stub):
    def respond(circuits, shots):  # a different split per circuit: order is checkable
        return [{"0": s - 7 * (i + 1), "1": 7 * (i + 1)} for i, s in enumerate(shots)]

    server = JobServer(stub, respond)
    circuits = rb_1q(5)
    counts = fast_provider().run_circuits(BACKEND, circuits, 300, seed=1)
    assert counts == [{"0": 293, "1": 7}, {"0": 286, "1": 14}, {"0": 279, "1": 21}]

    [body] = server.bodies
    assert body["program_id"] == "sampler" and body["backend"] == BACKEND
    assert PROBE_JOB_TAG in body["tags"]
    assert [p[2] for p in body["params"]["pubs"]] == [300, 300, 300]  # the job's shots, per circuit
    sent = server.circuits()
    assert [c.name for c in sent] == [c.name for c in circuits]
    for original, isa in zip(circuits, sent):
        assert isa.num_qubits == 127  # as wide as the device: an ISA circuit
        # Gate for gate, barriers included, each on device qubit 5: nothing was optimised away.
        assert ops(isa) == [(name, params, tuple(5 for _ in qs)) for name, params, qs in ops(original)]
        assert sum(1 for i in isa.data if i.operation.name == "barrier") >= 2
    assert server.jobs["d2probe001"]["gets"] >= 3  # polled through Queued and Running


def test_two_qubit_keys_are_in_qiskit_order(stub):
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, 2, name="pair")
    qc.x(0)
    qc.barrier()
    qc.ecr(0, 1)
    qc.measure([0, 1], [0, 1])
    qc.metadata = {"physical_qubits": [1, 0]}  # ecr (1, 0) is native on sherbrooke
    server = JobServer(stub, lambda circuits, shots: [{"01": shots[0] - 3, "10": 3}])
    [counts] = fast_provider().run_circuits(BACKEND, [qc], 100, seed=1)
    # clbit 0 was set in 97 shots: rightmost character, as in qiskit.
    assert counts == {"01": 97, "10": 3}
    [isa] = server.circuits()
    assert ops(isa) == [("x", (), (1,)), ("barrier", (), (1, 0)), ("ecr", (), (1, 0)),
                        ("measure", (), (1,)), ("measure", (), (0,))]


def test_circuit_outside_the_target_is_invalid_input_and_nothing_is_sent(stub):
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(1, 1, name="not_isa")
    qc.h(0)  # not a basis gate of the device
    qc.measure(0, 0)
    qc.metadata = {"physical_qubits": [3]}
    server = JobServer(stub)
    with pytest.raises(ProviderError) as err:
        fast_provider().run_circuits(BACKEND, [qc], 100, seed=1)
    assert err.value.kind == "invalid_input" and "h" in str(err.value)
    assert server.bodies == []
    qc.metadata = {"physical_qubits": [500]}
    with pytest.raises(ProviderError) as err:
        fast_provider().run_circuits(BACKEND, [qc], 100, seed=1)
    assert err.value.kind == "invalid_input" and "500" in str(err.value)


@pytest.mark.parametrize("state,code,kind,klass", [
    ("Failed", 8041, "job_failed", "internal_error"),
    ("Failed", 1517, "job_failed", "invalid_input"),
    ("Cancelled", None, "job_cancelled", ""),
])
def test_failed_or_cancelled_job(stub, state, code, kind, klass):
    server = JobServer(stub, states=("Queued", state), reason=f"server echoed {TOKEN} in a traceback",
                       reason_code=code)
    with pytest.raises(ProviderError) as err:
        fast_provider().run_circuits(BACKEND, rb_1q(5, lengths=(1,)), 100, seed=1)
    assert err.value.kind == kind
    assert TOKEN not in str(err.value) and TOKEN not in repr(err.value.args)
    assert klass in str(err.value) and "d2probe001" in str(err.value)
    assert server.cancelled == []


def test_job_not_final_within_probe_timeout_is_cancelled_and_a_timeout(stub):
    server = JobServer(stub, states=("Queued",))
    started = time.monotonic()
    with pytest.raises(ProviderError) as err:
        fast_provider(probe_timeout=0.5).run_circuits(BACKEND, rb_1q(5, lengths=(1,)), 100, seed=1)
    assert err.value.kind == "timeout"
    assert time.monotonic() - started < 15  # bounded (generously: a loaded machine)
    assert server.jobs["d2probe001"]["gets"] >= 2  # it did poll meanwhile
    assert server.cancelled == ["d2probe001"]  # nobody would read it: not left to spend QPU time


def test_submission_faults_are_classified(stub):
    JobServer(stub)
    stub.replace("POST", f"{API}/jobs", status=503, json={"errors": [{"message": f"busy {TOKEN}"}]})
    with pytest.raises(ProviderError) as err:
        fast_provider().run_circuits(BACKEND, rb_1q(5, lengths=(1,)), 100, seed=1)
    assert err.value.kind == "http_5xx" and TOKEN not in str(err.value)
    stub.replace("POST", f"{API}/jobs", body=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(ProviderError) as err:
        fast_provider().run_circuits(BACKEND, rb_1q(5, lengths=(1,)), 100, seed=1)
    assert err.value.kind == "timeout"


def test_a_job_created_by_a_submission_whose_response_was_lost_is_cancelled(stub):
    """POST /jobs reaches IBM and creates the job, but the response is lost (read timeout).
    The attempt fails as a timeout and the runner will retry: the job left behind is found
    by the attempt's own tag and cancelled; another queued probe job is never touched."""
    server = JobServer(stub, states=("Queued",), lose_post_response=True)
    decoy = {"backend": BACKEND, "tags": [PROBE_JOB_TAG, ATTEMPT_TAG_PREFIX + "0123456789abcdef"]}
    server.jobs["d2earlier"] = {"body": decoy, "gets": 0}
    with pytest.raises(ProviderError) as err:
        fast_provider().run_circuits(BACKEND, rb_1q(5, lengths=(1,)), 100, seed=1)
    assert err.value.kind == "timeout"
    [job_id] = [j for j in server.jobs if j != "d2earlier"]
    tags = server.jobs[job_id]["body"]["tags"]
    [attempt_tag] = [t for t in tags if t.startswith(ATTEMPT_TAG_PREFIX)]
    assert PROBE_JOB_TAG in tags and attempt_tag not in decoy["tags"]
    assert server.list_queries[-1]["tags"] == [attempt_tag] and server.list_queries[-1]["pending"] == ["true"]
    assert server.cancelled == [job_id]

    # A server that ignores the tag filter still cannot make us cancel a job without our tag.
    server.jobs.pop(job_id)
    server.cancelled.clear()
    server._list = lambda request: (200, {}, json.dumps({"jobs": [{"id": "d2earlier", **decoy}], "count": 1}))
    stub.replace(responses.CallbackResponse("GET", JOBS_LIST_URL, callback=server._list))
    with pytest.raises(ProviderError):
        fast_provider().run_circuits(BACKEND, rb_1q(5, lengths=(1,)), 100, seed=1)
    assert server.cancelled == []


def test_submission_read_timeout_is_bounded_by_request_timeout(stub):
    """POST /jobs asks requests for a 900 s read timeout; the provider caps it."""
    JobServer(stub, lambda circuits, shots: [{"0": s} for s in shots])
    fast_provider(request_timeout=12).run_circuits(BACKEND, rb_1q(5, lengths=(1,)), 100, seed=1)
    timeouts = [c.request.req_kwargs.get("timeout") for c in stub.calls
                if c.request.method == "POST" and c.request.url == f"{API}/jobs"]
    assert timeouts == [(5.0, 12.0)]


def test_malformed_result_is_malformed(stub):
    server = JobServer(stub, lambda circuits, shots: [{"0": s - 1} for s in shots])  # one shot short
    with pytest.raises(ProviderError) as err:
        fast_provider().run_circuits(BACKEND, rb_1q(5, lengths=(1,)), 100, seed=1)
    assert err.value.kind == "malformed" and "99" in str(err.value)
    assert server.bodies


# --- the probe runner end to end -------------------------------------------------------------

TRUE_P = 0.985  # depolarising parameter per Clifford of the stub "device": EPC = (1 - p) / 2


def test_probe_runner_fits_the_epc_of_the_stubbed_device(stub, tmp_path):
    """Design, circuits, SamplerV2 submission, polling, decoding, fit: the whole path. The
    job server derives each circuit's length from the payload (one barrier per Clifford plus
    one after the inverse) and samples survival 0.49 p^m + 0.5."""
    rng = np.random.default_rng(2024)
    lengths_seen: list[int] = []

    def respond(circuits, shots):
        out = []
        for c, s in zip(circuits, shots):
            m = sum(1 for i in c.data if i.operation.name == "barrier") - 1
            assert f"_m{m}_" in c.name  # the barrier count is the RB length
            lengths_seen.append(m)
            zeros = int(rng.binomial(s, 0.49 * TRUE_P**m + 0.5))
            out.append({"0": zeros, "1": s - zeros})
        return out

    server = JobServer(stub, respond)
    provider = fast_provider()
    cfg = ProbesConfig.model_validate({"shots_per_probe": 6000, "max_length": 200, "min_shots": 200, "max_circuits": 24,
                                       "retries": 0, "budget": {"shots_per_day": 100_000, "usd_per_day": 10_000}})
    store = Store(tmp_path / "state.db")
    seeds = iter(range(500, 10**6))
    runner = ProbeRunner([provider], store, cfg, new_seed=lambda: next(seeds))
    runner.register_backend("ibm", BACKEND)
    [out] = runner.probe_backend(provider, BACKEND, targets=[ProbeTarget("ibm", BACKEND, (5,))])
    assert out.status == "ok", out.reason
    assert len(server.bodies) == 1 and len(set(lengths_seen)) >= 3
    assert all(c.num_qubits == 127 for c in server.circuits())
    epc = (1 - TRUE_P) / 2
    assert out.epc == pytest.approx(epc, rel=0.25), (out.epc, out.epc_stderr)
    assert abs(out.epc - epc) < 4 * out.epc_stderr
    row = store.probe_run(out.run_id)
    assert [s["counts"] for s in row["record"]["sequences"]]  # the counts were recorded
    store.close()
