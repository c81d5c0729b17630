"""The instrumentation around qiskit-ibm-runtime's SamplerV2 in job mode, stubbed only at HTTP:
the real SDK (IAM, service, backend, ISA check, POST /jobs, polling, result decoding) talks to
the job server of tests/test_ibm_probe_execution.py. Checks the workload job tag next to the
user's own, that the sampler's options are left as they were, the calibration age at
submission (and its absence when the service cannot say), failures, retries and a timed-out wait."""

from __future__ import annotations

import json
import re
import time

import pytest
from prometheus_client import generate_latest
from test_ibm_probe_execution import BACKEND, JobServer
from test_ibm_provider import API, CRN, TOKEN, payloads, stub  # noqa: F401 - fixtures

from conftest import sample
from qpu_exporter.instrument import Instrumentation
from qpu_exporter.probes.agreement import bell_circuit, hellinger_fidelity
from qpu_exporter.providers.ibm.provider import isa_circuit
from qpu_exporter.providers.ibm.properties import parse_timestamp

pytestmark = pytest.mark.filterwarnings("ignore:The SamplerV2 class is deprecated:DeprecationWarning")
W = "vqe-h2"
IBM = {"workload": W, "provider": "ibm", "backend": BACKEND}


def _service():
    from qiskit_ibm_runtime import QiskitRuntimeService

    return QiskitRuntimeService(channel="ibm_quantum_platform", token=TOKEN, instance=CRN)


def _bell_isa():
    """A Bell circuit in sherbrooke's basis on its native ECR pair (1 -> 0), device-wide."""
    qc = bell_circuit(("rz", "sx", "x", "ecr"), [1, 0])
    qc.name = "bell"
    return isa_circuit(qc, 127)


def metric(inst, name, **labels):
    return sample(generate_latest(inst.registry).decode(), name, **labels)


def test_job_mode_tags_options_results_and_calibration_age(stub, payloads):
    from qiskit.primitives import PrimitiveResult
    from qiskit_ibm_runtime import RuntimeJobV2, SamplerV2

    server = JobServer(stub, lambda circuits, shots: [{"00": shots[0] - 90, "11": 80, "01": 10}],
                       states=("Queued", "Completed"))
    backend = _service().backend(BACKEND)
    inst = Instrumentation(W, tag_key="group")
    sampler = inst.wrap(SamplerV2(mode=backend, options={"environment": {"job_tags": ["experiment-7"]}}),
                        reference="ideal")
    before = time.time()
    job = sampler.run([_bell_isa()], shots=1000)
    after = time.time()
    assert type(job) is RuntimeJobV2
    [body] = server.bodies
    assert body["tags"] == ["experiment-7", "group:vqe-h2"]  # the user's tag kept, ours added
    assert sampler.options.environment.job_tags == ["experiment-7"]  # and the options left as they were
    assert [p[2] for p in body["params"]["pubs"]] == [1000]  # shots untouched
    result = job.result()
    assert type(result) is PrimitiveResult
    counts = result[0].join_data().get_counts()
    assert counts == {"00": 910, "11": 80, "01": 10}

    calibrated = parse_timestamp(payloads[BACKEND]["props"]["last_update_date"])
    age = metric(inst, "qpu_client_calibration_age_seconds", **IBM)
    assert before - calibrated - 1 <= age <= after - calibrated + 1
    assert metric(inst, "qpu_client_executions_total", **IBM, status="ok") == 1
    assert metric(inst, "qpu_client_shots_total", **IBM) == 1000
    assert metric(inst, "qpu_client_hellinger_fidelity_ratio", **IBM, circuit="bell") == pytest.approx(
        hellinger_fidelity({k: v / 1000 for k, v in counts.items()}, {"00": 0.5, "11": 0.5}))
    # The calibration was read from the service when the job was submitted.
    assert sum(1 for c in stub.calls if re.search(rf"/backends/{BACKEND}/properties", c.request.url)) >= 1


def test_failed_job_retry_timed_out_wait_and_a_calibration_outage(stub):
    from qiskit_ibm_runtime import SamplerV2
    from qiskit_ibm_runtime.exceptions import RuntimeJobFailureError, RuntimeJobTimeoutError

    server = JobServer(stub, lambda circuits, shots: [{"00": shots[0] // 2, "11": shots[0] - shots[0] // 2}],
                       states=("Queued", "Failed"), reason="Internal error", reason_code=8041)
    inst = Instrumentation(W, calibration_refresh=0)  # re-read the calibration at every submission
    sampler = inst.wrap(SamplerV2(mode=_service().backend(BACKEND)))
    job = sampler.run([_bell_isa()], shots=100)
    with pytest.raises(RuntimeJobFailureError):
        job.result()
    assert metric(inst, "qpu_client_executions_total", **IBM, status="failed") == 1
    assert server.bodies[0]["tags"] == ["team:vqe-h2"]  # the default tag key

    server.states = ("Queued",)  # the resubmission waits in the queue ...
    job = sampler.run([_bell_isa()], shots=100)
    assert metric(inst, "qpu_client_retries_total", **IBM) == 1
    with pytest.raises(RuntimeJobTimeoutError):
        job.result(timeout=0.3)
    assert metric(inst, "qpu_client_executions_total", **IBM, status="ok") is None  # still queued: not counted
    assert metric(inst, "qpu_client_executions_total", **IBM, status="failed") == 1
    server.states = ("Completed",)  # ... and then completes
    job.result()
    assert metric(inst, "qpu_client_executions_total", **IBM, status="ok") == 1
    assert metric(inst, "qpu_client_shots_total", **IBM) == 100
    assert metric(inst, "qpu_client_calibration_age_seconds", **IBM) > 0

    # The properties endpoint goes down: the next job still runs, and its calibration age is
    # unknown, so the series disappears rather than keep the previous job's number.
    stub.replace("GET", re.compile(re.escape(f"{API}/backends/{BACKEND}/properties") + r"(\?.*)?$"),
                 status=503, body=json.dumps({"errors": [{"message": "unavailable"}]}))
    assert sampler.run([_bell_isa()], shots=50).result()[0].join_data().get_counts() == {"00": 25, "11": 25}
    assert metric(inst, "qpu_client_calibration_age_seconds", **IBM) is None
    assert metric(inst, "qpu_client_instrumentation_errors_total", workload=W, stage="calibration") == 1
    assert metric(inst, "qpu_client_executions_total", **IBM, status="ok") == 2
