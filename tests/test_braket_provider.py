"""Braket provider against botocore's Stubber: the real boto3 client, paginators and
parameter validation, serving GetDevice payloads (tests/fixtures/braket/get_device_*.json:
synthetic, Braket schema, values borrowed from IBM snapshots) and hand-made task records."""

from __future__ import annotations

import copy
import json
import statistics
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import ANY, Stubber

from qpu_exporter.providers.braket.config import BraketProviderConfig
from qpu_exporter.model import JOB_CANCELLED, JOB_DONE, JOB_FAILED
from qpu_exporter.providers.base import ProviderError
from qpu_exporter.providers.braket.provider import BraketProvider, parse_queue_size, window_open
from qpu_exporter.providers.ibm.properties import parse_timestamp
from qpu_exporter.providers.braket.prices import load_price_table

FIX = Path(__file__).parent / "fixtures" / "braket"
ARNS = {
    "Garnet": "arn:aws:braket:eu-north-1::device/qpu/iqm/Garnet",
    "Ankaa-3": "arn:aws:braket:us-west-1::device/qpu/rigetti/Ankaa-3",
    "Forte-1": "arn:aws:braket:us-east-1::device/qpu/ionq/Forte-1",
}
SECRET = "aws-secret-key-DO-NOT-LEAK-0123456789"


def device_payload(name: str) -> dict:
    return json.loads((FIX / f"get_device_{name}.json").read_text())


def caps_of(payload: dict) -> dict:
    return json.loads(payload["deviceCapabilities"])


def with_caps(payload: dict, caps: dict) -> dict:
    return {**payload, "deviceCapabilities": json.dumps(caps)}


class Rig:
    """A provider whose per-region clients are stubbed."""

    def __init__(self, names: list[str] | None, region: str = "us-east-1", clock=None, **cfg):
        devices = None if names is None else [ARNS[n] for n in names]
        session = boto3.Session(region_name=region, aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key=SECRET)
        config = BraketProviderConfig(kind="braket", region=region, devices=devices, **cfg)
        self.now = parse_timestamp("2026-11-20T09:30:00Z")
        self.provider = BraketProvider(config, boto_session=session, clock=clock or (lambda: self.now))
        self.stubs: dict[str, Stubber] = {}

    def stub(self, region: str) -> Stubber:
        if region not in self.stubs:
            self.stubs[region] = Stubber(self.provider.client(region))
            self.stubs[region].activate()
        return self.stubs[region]

    def get_device(self, name: str, payload: dict | None = None) -> None:
        arn = ARNS[name]
        self.stub(arn.split(":")[3]).add_response("get_device", payload or device_payload(name), {"deviceArn": arn})

    def done(self) -> None:
        for s in self.stubs.values():
            s.assert_no_pending_responses()


# --- discovery and status ---------------------------------------------------------------------

def test_configured_devices_and_status():
    rig = Rig(["Garnet", "Ankaa-3"])
    rig.get_device("Garnet")
    rig.get_device("Ankaa-3")
    infos = {i.backend: i for i in rig.provider.backends()}
    assert {n: (i.provider, i.num_qubits, i.processor) for n, i in infos.items()} == {
        "Garnet": ("braket", 20, "IQM"), "Ankaa-3": ("braket", 12, "Rigetti")}

    rig.get_device("Ankaa-3")
    st = rig.provider.status("Ankaa-3")
    assert (st.operational, st.status_message) == (False, "offline")
    assert st.pending_jobs == 4000 + 2  # '>4000' normal (a lower bound) + '2' priority
    assert rig.provider.queue_depth("Ankaa-3") == {"normal": 4000, "priority": 2, "jobs": 0, "exact": False}
    rig.get_device("Garnet")
    st = rig.provider.status("Garnet")
    assert (st.operational, st.pending_jobs) == (True, 13)
    assert rig.provider.queue_depth("Garnet")["exact"] is True
    rig.done()


def test_default_discovery_searches_qpus_in_region():
    rig = Rig(None, region="us-east-1")
    stub = rig.stub("us-east-1")
    stub.add_response("search_devices", {"devices": [
        {"deviceArn": ARNS["Forte-1"], "deviceName": "Forte-1", "providerName": "IonQ", "deviceType": "QPU", "deviceStatus": "ONLINE"},
        {"deviceArn": "arn:aws:braket:us-east-1::device/qpu/ionq/Harmony", "deviceName": "Harmony", "providerName": "IonQ",
         "deviceType": "QPU", "deviceStatus": "RETIRED"},
    ]}, {"filters": [{"name": "deviceType", "values": ["QPU"]}], "maxResults": 100})
    rig.get_device("Forte-1")
    infos = rig.provider.backends()
    assert [(i.backend, i.num_qubits) for i in infos] == [("Forte-1", 36)]
    rig.done()


@pytest.mark.parametrize("text,expected", [("13", (13, True)), (">4000", (4000, False)), (">1000", (1000, False)),
                                           ("0 (1 prioritized job(s) running)", (0, True)), ("", (0, False))])
def test_parse_queue_size(text, expected):
    assert parse_queue_size(text) == expected


# --- availability windows ---------------------------------------------------------------------------

def _at(iso: str) -> float:
    return parse_timestamp(iso)


def test_window_open_rules():
    everyday = [{"executionDay": "Everyday", "windowStartHour": "00:00:00", "windowEndHour": "23:59:59"}]
    assert window_open(everyday, _at("2026-11-21T23:59:59.5Z"))
    weekdays = [{"executionDay": "Weekdays", "windowStartHour": "09:00:00", "windowEndHour": "17:00:00"}]
    assert window_open(weekdays, _at("2026-11-20T12:00:00Z"))  # a Friday
    assert not window_open(weekdays, _at("2026-11-21T12:00:00Z"))  # Saturday
    assert not window_open(weekdays, _at("2026-11-20T17:00:00Z"))  # end is exclusive
    overnight = [{"executionDay": "Monday", "windowStartHour": "22:00:00", "windowEndHour": "02:00:00"}]
    assert window_open(overnight, _at("2026-11-17T01:30:00Z"))  # Tuesday 01:30, Monday's window
    assert not window_open(overnight, _at("2026-11-16T01:30:00Z"))  # Monday 01:30: Sunday had none
    assert window_open([], _at("2026-11-16T01:30:00Z"))


def test_availability_window_from_device():
    rig = Rig(["Forte-1"])
    payload = device_payload("Forte-1")
    caps = caps_of(payload)
    caps["service"]["executionWindows"] = [{"executionDay": "Weekdays", "windowStartHour": "13:00:00", "windowEndHour": "20:00:00"}]
    rig.get_device("Forte-1", with_caps(payload, caps))
    rig.provider.backends()
    assert not rig.provider.availability_window_open("Forte-1")  # 09:30 UTC on a Friday
    assert rig.provider.availability_window_open("Forte-1", at=_at("2026-11-20T14:00:00Z"))


# --- calibration --------------------------------------------------------------------------------

def _calibration(name: str, payload: dict | None = None):
    rig = Rig([name])
    rig.get_device(name)
    rig.provider.backends()
    rig.get_device(name, payload)
    snap = rig.provider.calibration(name)
    rig.done()
    return snap


@pytest.mark.parametrize("name,twoq", [("Garnet", "cz"), ("Ankaa-3", "iswap")])
def test_calibration_v1_si_values(name, twoq):
    payload = device_payload(name)
    std = caps_of(payload)["standardized"]
    snap = _calibration(name)
    assert (snap.provider, snap.backend) == ("braket", name)
    assert snap.calibrated_at == parse_timestamp(caps_of(payload)["service"]["updatedAt"] + "Z")
    assert len(snap.qubits) == len(std["oneQubitProperties"])
    t1 = [q.values["t1"].value for q in snap.qubits]
    assert 1e-5 < statistics.median(t1) < 1e-3
    key, props = next(iter(std["oneQubitProperties"].items()))
    q = next(q for q in snap.qubits if q.qubit == int(key))
    fids = {f["fidelityType"]["name"]: f["fidelity"] for f in props["oneQubitFidelity"]}
    assert q.values["readout_error"].value == pytest.approx(1 - fids["READOUT"])
    rb = next(g for g in snap.gates if g.gate == "1q_rb" and g.qubits == (int(key),))
    assert rb.error.value == pytest.approx(1 - fids["RANDOMIZED_BENCHMARKING"])
    edges = [g for g in snap.gates if g.gate == twoq]
    assert len(edges) == len(std["twoQubitProperties"])
    edge_key, edge = next(iter(std["twoQubitProperties"].items()))
    a, b = map(int, edge_key.split("-"))
    g = next(g for g in edges if g.qubits == (a, b))
    assert g.error.value == pytest.approx(1 - edge["twoQubitGateFidelity"][0]["fidelity"])
    assert all(0 < g.error.value < 0.1 for g in edges if g.operational)


def test_calibration_v3_device_level():
    payload = device_payload("Forte-1")
    std = caps_of(payload)["standardized"]
    snap = _calibration("Forte-1")
    assert len(snap.qubits) == 36
    assert all(q.values["t1"].value == 100.0 and q.values["t2"].value == 1.0 for q in snap.qubits)
    assert snap.qubits[7].values["readout_error"].value == pytest.approx(1 - std["readoutFidelity"][0]["fidelity"])
    gates = {g.gate: g for g in snap.gates}
    assert gates["1q_rb"].qubits == () and gates["1q_rb"].error.value == pytest.approx(1 - 0.9998)
    assert gates["2q_rb"].error.value == pytest.approx(1 - 0.9952)
    assert snap.calibrated_at == parse_timestamp("2026-11-20T08:00:00Z")
    assert gates["1q_rb"].error.measured_at == snap.calibrated_at


def test_dead_elements_units_and_directions():
    payload = device_payload("Garnet")
    caps = caps_of(payload)
    std = caps["standardized"]
    q1 = std["oneQubitProperties"]["1"]
    q1["T1"] = {"value": 28.9, "standardError": None, "unit": "us"}
    q1["T2"] = {"value": 0.0301, "standardError": None, "unit": "ms"}
    for f in std["oneQubitProperties"]["2"]["oneQubitFidelity"]:
        if f["fidelityType"]["name"] == "READOUT":
            f["fidelity"] = 0.0
    std["twoQubitProperties"]["1-2"]["twoQubitGateFidelity"][0]["fidelity"] = 0.0
    std["twoQubitProperties"]["1-16"]["twoQubitGateFidelity"] = [
        {"direction": {"control": 16, "target": 1}, "gateName": "CNOT", "fidelity": 0.99,
         "standardError": None, "fidelityType": {"name": "RANDOMIZED_BENCHMARKING", "description": None}},
        {"direction": {"control": 16, "target": 1}, "gateName": "CNOT", "fidelity": 0.98,
         "standardError": None, "fidelityType": {"name": "INTERLEAVED_RANDOMIZED_BENCHMARKING", "description": None}},
    ]
    snap = _calibration("Garnet", with_caps(payload, caps))
    qubits = {q.qubit: q for q in snap.qubits}
    assert qubits[1].values["t1"].value == pytest.approx(28.9e-6)
    assert qubits[1].values["t2"].value == pytest.approx(30.1e-6)
    assert not qubits[2].operational and "readout_error" not in qubits[2].values
    assert all(q.operational for n, q in qubits.items() if n != 2)
    gates = {(g.gate, g.qubits): g for g in snap.gates}
    dead = gates[("cz", (1, 2))]
    assert not dead.operational and dead.error is None
    cnot = gates[("cnot", (16, 1))]
    assert cnot.error.value == pytest.approx(0.02)  # interleaved RB preferred over RB


# --- tasks ----------------------------------------------------------------------------------------

def _tasks_fixture() -> dict:
    return json.loads((FIX / "tasks_garnet.json").read_text())


def _search_pages(stub: Stubber, tasks: list[dict], page: int = 4) -> None:
    def as_dt(t):
        t = dict(t)
        for k in ("createdAt", "endedAt"):
            if k in t:
                t[k] = datetime.fromisoformat(t[k].replace("Z", "+00:00"))
        return t
    chunks = [tasks[i:i + page] for i in range(0, len(tasks), page)] or [[]]
    for i, chunk in enumerate(chunks):
        resp = {"quantumTasks": [as_dt(t) for t in chunk]}
        if i + 1 < len(chunks):
            resp["nextToken"] = f"page-{i + 1}"
        expected = {"filters": ANY, "maxResults": 100}
        if i:
            expected["nextToken"] = f"page-{i}"
        stub.add_response("search_quantum_tasks", resp, expected)


def test_tasks_paged_with_costs_failure_classes_and_queue_time():
    fx = _tasks_fixture()
    rig = Rig(["Garnet"])
    rig.get_device("Garnet")
    rig.provider.backends()
    stub = rig.stub("eu-north-1")
    _search_pages(stub, fx["tasks"])
    for arn, reason in fx["failure_reasons"].items():
        task = next(t for t in fx["tasks"] if t["quantumTaskArn"] == arn)
        stub.add_response("get_quantum_task", {
            "quantumTaskArn": arn, "status": "FAILED", "failureReason": reason, "deviceArn": ARNS["Garnet"],
            "deviceParameters": "{}", "shots": task["shots"], "outputS3Bucket": "b", "outputS3Directory": "d",
            "createdAt": datetime.fromisoformat(task["createdAt"].replace("Z", "+00:00")),
        }, {"quantumTaskArn": arn})
    first = {j.job_id: j for j in rig.provider.jobs("Garnet", None)}
    rig.done()
    assert len(first) == 5  # the running and queued tasks are not final
    prices = load_price_table()
    garnet = prices.braket_price("Garnet")
    by_index = {int(arn.rsplit("/", 1)[1][:8]): j for arn, j in first.items()}
    assert by_index[1].status == JOB_DONE and by_index[1].cost_usd == pytest.approx(garnet.per_task_usd + 1000 * garnet.per_shot_usd)
    assert by_index[1].finished_at - by_index[1].created_at == 300
    assert (by_index[3].status, by_index[3].error_class, by_index[3].cost_usd) == (JOB_FAILED, "timeout", 0.0)
    assert (by_index[5].status, by_index[5].error_class) == (JOB_FAILED, "invalid_input")
    assert (by_index[4].status, by_index[4].error_class, by_index[4].cost_usd) == (JOB_CANCELLED, "", 0.0)
    assert all(j.provider == "braket" and j.backend == "Garnet" and j.usage_seconds == 0.0 for j in first.values())
    assert all(j.queue_seconds is None for j in first.values())  # never seen running

    # Later: the running task finished; its start is bounded by the poll that saw it running.
    running_seen = rig.now
    rig.now = parse_timestamp(fx["later"]["poll_at"])
    later = [dict(t, **fx["later"]["changes"].get(t["quantumTaskArn"], {})) for t in fx["tasks"]]
    _search_pages(stub, later)
    second = {j.job_id: j for j in rig.provider.jobs("Garnet", max(j.finished_at for j in first.values()))}
    rig.done()  # no GetQuantumTask again: failures are cached
    six = next(j for arn, j in second.items() if arn.rsplit("/", 1)[1].startswith("00000006"))
    assert six.status == JOB_DONE
    assert six.queue_seconds == pytest.approx(running_seen - parse_timestamp("2026-11-20T08:50:00Z"))
    assert six.execution_seconds == pytest.approx(parse_timestamp("2026-11-20T09:40:00Z") - running_seen)


def test_tasks_floor_reaches_back_to_oldest_unfinished_task():
    fx = _tasks_fixture()
    rig = Rig(["Garnet"], max_failure_lookups_per_poll=0)
    rig.get_device("Garnet")
    rig.provider.backends()
    stub = rig.stub("eu-north-1")
    _search_pages(stub, fx["tasks"], page=100)
    rig.provider.jobs("Garnet", None)
    seen = {}

    def capture(params, **_):
        seen.update(params)
    rig.provider.client("eu-north-1").meta.events.register("provide-client-params.braket.SearchQuantumTasks", capture)
    _search_pages(stub, [], page=100)
    rig.provider.jobs("Garnet", rig.now)
    created = {f["name"]: f["values"][0] for f in seen["filters"]}["createdAt"]
    assert parse_timestamp(created) == parse_timestamp("2026-11-20T08:50:00Z")  # the running task


# --- faults ---------------------------------------------------------------------------------------

def _garnet_rig() -> tuple[Rig, Stubber]:
    rig = Rig(["Garnet"])
    rig.get_device("Garnet")
    rig.provider.backends()
    return rig, rig.stub("eu-north-1")


def _status_fails(rig: Rig) -> ProviderError:
    with pytest.raises(ProviderError) as err:
        rig.provider.status("Garnet")
    assert SECRET not in str(err.value)
    return err.value


def test_fault_timeout_is_bounded_and_classified():
    rig, _ = _garnet_rig()
    client = rig.provider.client("eu-north-1")
    assert (client.meta.config.read_timeout, client.meta.config.connect_timeout) == (30.0, 5.0)

    rig.stubs["eu-north-1"].deactivate()  # the request goes through signing to the wire...
    attempts = []

    def boom(**_):  # ...where the transport times out
        attempts.append(1)
        raise ReadTimeoutError(endpoint_url="https://braket.eu-north-1.amazonaws.com")
    client.meta.events.register("before-send.braket.GetDevice", boom)
    assert _status_fails(rig).kind == "timeout"
    assert len(attempts) == 2  # retries=1: bounded, the scheduler's backoff does the rest


def test_fault_5xx():
    rig, stub = _garnet_rig()
    stub.add_client_error("get_device", "InternalServiceException", "boom", http_status_code=500)
    assert _status_fails(rig).kind == "http_5xx"


def test_fault_rate_limited_with_retry_after():
    rig, stub = _garnet_rig()
    stub.add_client_error("get_device", "ThrottlingException", "slow down", http_status_code=429,
                          response_meta={"HTTPHeaders": {"retry-after": "9"}})
    err = _status_fails(rig)
    assert err.kind == "rate_limited" and err.retry_after == 9.0


@pytest.mark.parametrize("code,status", [("ExpiredTokenException", 403), ("UnrecognizedClientException", 403),
                                         ("AccessDeniedException", 403)])
def test_fault_credentials(code, status):
    rig, stub = _garnet_rig()
    stub.add_client_error("get_device", code, "The security token included in the request is expired",
                          http_status_code=status)
    assert _status_fails(rig).kind == "auth"


def test_fault_malformed_payloads():
    rig, stub = _garnet_rig()
    stub.add_response("get_device", {**device_payload("Garnet"), "deviceCapabilities": "{not json"}, {"deviceArn": ARNS["Garnet"]})
    assert _status_fails(rig).kind == "malformed"
    caps = caps_of(device_payload("Garnet"))
    caps["standardized"]["twoQubitProperties"] = {"one-two": {"twoQubitGateFidelity": []}}
    stub.add_response("get_device", with_caps(device_payload("Garnet"), caps), {"deviceArn": ARNS["Garnet"]})
    with pytest.raises(ProviderError) as err:
        rig.provider.calibration("Garnet")
    assert err.value.kind == "malformed"


def test_fault_unavailable_device():
    rig, stub = _garnet_rig()
    stub.add_client_error("get_device", "ResourceNotFoundException", "no such device", http_status_code=404)
    assert _status_fails(rig).kind == "unavailable"


def test_unpriced_device_costs_zero_not_a_crash():
    fx = _tasks_fixture()
    rig = Rig(["Garnet"], max_failure_lookups_per_poll=0)
    rig.provider._prices = copy.replace(rig.provider._prices, braket={}) if hasattr(copy, "replace") else \
        type(rig.provider._prices)(as_of="", source="", braket={})
    rig.get_device("Garnet")
    rig.provider.backends()
    _search_pages(rig.stub("eu-north-1"), fx["tasks"][:2], page=100)
    jobs = rig.provider.jobs("Garnet", None)
    assert len(jobs) == 2 and all(j.cost_usd == 0.0 for j in jobs)


def test_braket_records_are_exported_under_the_common_metric_names():
    from conftest import parse_samples
    from qpu_exporter.exposition import families
    from qpu_exporter.model import BackendInfo
    from qpu_exporter.quality import validate_snapshot
    from qpu_exporter.textformat import render
    from qpu_exporter.view import FleetView

    view = FleetView()
    for name in ("Garnet", "Ankaa-3"):
        snap, _ = validate_snapshot(_calibration(name))
        view.set_backend(BackendInfo("braket", name, len(snap.qubits), "test"))
        view.set_calibration(("braket", name), snap)
    samples = parse_samples(render(families(view.copy(), {}, version="t", revision="t", daily_budget_usd=1)).decode())
    for name in ("Garnet", "Ankaa-3"):
        t1 = [v for n, lab, v in samples if n == "qpu_qubit_t1_seconds" and lab["backend"] == name]
        err = [v for n, lab, v in samples if n == "qpu_gate_error_ratio" and lab["backend"] == name]
        assert t1 and all(1e-6 < v < 1e-2 for v in t1), name
        assert err and all(0 < v < 1 for v in err), name
        assert all(lab["provider"] == "braket" for n, lab, _ in samples if lab.get("backend") == name)
