"""Braket provider against botocore's Stubber: the real boto3 client, paginators and
parameter validation, serving GetDevice payloads (tests/fixtures/braket/get_device_*.json:
synthetic, Braket schema, values borrowed from IBM snapshots) and hand-made task records."""

from __future__ import annotations

import json
import statistics
from datetime import datetime
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import ANY, Stubber

from qpu_exporter.providers.braket.config import BraketProviderConfig
from qpu_exporter.model import JOB_CANCELLED, JOB_DONE, JOB_FAILED, REPORTED_EPC
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


def calibration_of_document(caps: dict):
    """The provider's calibration of a device document, served by GetDevice under Garnet's ARN
    (the real parse path: discovery, then a calibration poll)."""
    rig = Rig(["Garnet"])
    payload = with_caps(device_payload("Garnet"), caps)
    rig.get_device("Garnet", payload)
    rig.provider.backends()
    rig.get_device("Garnet", payload)
    snap = rig.provider.calibration("Garnet")
    rig.done()
    return snap


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


def _device_summary(name: str, status: str = "ONLINE", device_type: str = "QPU") -> dict:
    arn = ARNS.get(name, f"arn:aws:braket:us-east-1::device/qpu/x/{name}")
    provider = {"Garnet": "IQM", "Ankaa-3": "Rigetti"}.get(name, "IonQ")
    return {"deviceArn": arn, "deviceName": name, "providerName": provider, "deviceType": device_type, "deviceStatus": status}


def test_default_discovery_searches_every_qpu_region_without_a_type_filter():
    from qpu_exporter.providers.braket.config import QPU_REGIONS

    rig = Rig(None, region="us-east-1")
    found = {"us-east-1": [_device_summary("Forte-1"), _device_summary("Harmony", status="RETIRED"),
                           _device_summary("SV1", device_type="SIMULATOR")],
             "eu-north-1": [_device_summary("Garnet")], "us-west-1": [_device_summary("Ankaa-3")]}
    for region in QPU_REGIONS:
        # The service model: SearchDevices supports only a deviceArn filter; type and status
        # are filtered client-side, as the SDK's AwsDevice.get_devices does.
        rig.stub(region).add_response("search_devices", {"devices": found.get(region, [])},
                                      {"filters": [], "maxResults": 100})
    for name in ("Forte-1", "Garnet", "Ankaa-3"):
        rig.get_device(name)
    infos = {i.backend: i.num_qubits for i in rig.provider.backends()}
    assert infos == {"Forte-1": 36, "Garnet": 20, "Ankaa-3": 12}
    rig.done()


def test_regions_narrow_discovery_and_a_failing_region_is_skipped():
    rig = Rig(None, region="us-east-1", regions=["eu-north-1", "us-west-1"])
    rig.stub("eu-north-1").add_response("search_devices", {"devices": [_device_summary("Garnet")]},
                                        {"filters": [], "maxResults": 100})
    rig.stub("us-west-1").add_client_error("search_devices", "InternalServiceException", "down", http_status_code=500)
    rig.get_device("Garnet")
    assert [i.backend for i in rig.provider.backends()] == ["Garnet"]
    rig.done()
    assert "us-east-1" not in rig.stubs  # not asked at all


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
    rb = next(g for g in snap.gates if g.gate == REPORTED_EPC and g.qubits == (int(key),))
    assert rb.error.value == pytest.approx(1 - fids["RANDOMIZED_BENCHMARKING"])
    assert rb.error.measured_at is None  # v1 publishes no measurement times
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
    assert gates[REPORTED_EPC].qubits == () and gates[REPORTED_EPC].error.value == pytest.approx(1 - 0.9998)
    assert gates["2q_rb"].error.value == pytest.approx(1 - 0.9952)
    assert snap.calibrated_at == parse_timestamp("2026-11-20T08:00:00Z")
    assert gates[REPORTED_EPC].error.measured_at == snap.calibrated_at


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


def _task_detail(task: dict, **extra) -> dict:
    """A GetQuantumTask response for a searched task (the fields the service model requires)."""
    return {"quantumTaskArn": task["quantumTaskArn"], "status": task["status"], "deviceArn": task["deviceArn"],
            "deviceParameters": "{}", "shots": task["shots"], "outputS3Bucket": "b", "outputS3Directory": "d",
            "createdAt": datetime.fromisoformat(task["createdAt"].replace("Z", "+00:00")), **extra}


def _stub_task_lookups(stub: Stubber, tasks: list[dict], reasons: dict, associations: dict | None = None) -> None:
    """One GetQuantumTask per finished, billable-or-failed task, in search order."""
    for task in tasks:
        if task["status"] not in ("COMPLETED", "FAILED"):
            continue
        arn = task["quantumTaskArn"]
        extra = {"failureReason": reasons[arn]} if arn in reasons else {}
        if associations and arn in associations:
            extra["associations"] = associations[arn]
        stub.add_response("get_quantum_task", _task_detail(task, **extra), {"quantumTaskArn": arn})


def test_tasks_paged_with_costs_failure_classes_and_queue_time():
    fx = _tasks_fixture()
    rig = Rig(["Garnet"])
    rig.get_device("Garnet")
    rig.provider.backends()
    stub = rig.stub("eu-north-1")
    _search_pages(stub, fx["tasks"])
    _stub_task_lookups(stub, fx["tasks"], fx["failure_reasons"])
    first = {j.job_id: j for j in rig.provider.jobs("Garnet", None)}
    rig.done()
    assert len(first) == 5  # the running and queued tasks are not final
    garnet = load_price_table().price("Garnet")
    by_index = {int(arn.rsplit("/", 1)[1][:8]): j for arn, j in first.items()}
    assert by_index[1].status == JOB_DONE and by_index[1].cost_usd == pytest.approx(garnet.per_task_usd + 1000 * garnet.per_shot_usd)
    assert by_index[1].finished_at - by_index[1].created_at == 300
    assert (by_index[3].status, by_index[3].error_class, by_index[3].cost_usd) == (JOB_FAILED, "timeout", 0.0)
    assert (by_index[5].status, by_index[5].error_class) == (JOB_FAILED, "invalid_input")
    assert (by_index[4].status, by_index[4].error_class, by_index[4].cost_usd) == (JOB_CANCELLED, "", 0.0)
    # Braket publishes no QPU time per task: unknown, not 0.
    assert all(j.provider == "braket" and j.backend == "Garnet" and j.usage_seconds is None for j in first.values())
    assert all(j.queue_seconds is None for j in first.values())  # never seen running

    # Later: the running task finished; its start is bounded by the poll that saw it running.
    running_seen = rig.now
    rig.now = parse_timestamp(fx["later"]["poll_at"])
    later = [dict(t, **fx["later"]["changes"].get(t["quantumTaskArn"], {})) for t in fx["tasks"]]
    _search_pages(stub, later)
    _stub_task_lookups(stub, [t for t in later if t["quantumTaskArn"].rsplit("/", 1)[1].startswith("00000006")], {})
    second = {j.job_id: j for j in rig.provider.jobs("Garnet", max(j.finished_at for j in first.values()))}
    rig.done()  # no GetQuantumTask again for tasks already recorded
    six = next(j for arn, j in second.items() if arn.rsplit("/", 1)[1].startswith("00000006"))
    assert six.status == JOB_DONE
    assert six.queue_seconds == pytest.approx(running_seen - parse_timestamp("2026-11-20T08:50:00Z"))
    assert six.execution_seconds == pytest.approx(parse_timestamp("2026-11-20T09:40:00Z") - running_seen)


def test_tasks_floor_reaches_back_to_oldest_unfinished_task():
    fx = _tasks_fixture()
    rig = Rig(["Garnet"], max_task_lookups_per_poll=0)
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


class TaskService:
    """SearchQuantumTasks answered as the service would: only tasks created at or after the
    createdAt filter; each newly listed finished task gets its GetQuantumTask queued."""

    def __init__(self, rig: Rig, region: str = "eu-north-1"):
        self.tasks: list[dict] = []
        self.floors: list[float] = []
        self.looked_up: set[str] = set()
        self.stub = rig.stub(region)
        rig.provider.client(region).meta.events.register(
            "provide-client-params.braket.SearchQuantumTasks", self._answer)

    def _answer(self, params, **_):
        floor = parse_timestamp({f["name"]: f["values"][0] for f in params["filters"]}["createdAt"])
        self.floors.append(floor)
        listed = [t for t in self.tasks if parse_timestamp(t["createdAt"]) >= floor]
        _search_pages(self.stub, listed, page=100)
        fresh = [t for t in listed if t["status"] in ("COMPLETED", "FAILED") and t["quantumTaskArn"] not in self.looked_up]
        _stub_task_lookups(self.stub, fresh, {})
        self.looked_up |= {t["quantumTaskArn"] for t in fresh}


def test_a_task_queued_since_before_a_restart_is_recorded_when_it_finishes(tmp_path):
    from qpu_exporter.scheduler import Poller
    from qpu_exporter.store import Store
    from qpu_exporter.view import FleetView

    fx = _tasks_fixture()
    t0 = parse_timestamp(fx["poll_at"])
    old = dict(fx["tasks"][6], createdAt="2026-11-20T08:30:00Z")  # QUEUED an hour before the first poll
    recent = fx["tasks"][0]

    def run(now: float, tasks: list[dict]) -> Store:
        rig = Rig(["Garnet"], clock=lambda: now)
        rig.get_device("Garnet")
        service = TaskService(rig)
        service.tasks = tasks
        store = Store(tmp_path / "state.db")
        poller = Poller([rig.provider], store, FleetView(), clock=lambda: now)
        poller.discover(rig.provider)
        poller.poll_jobs(rig.provider, "Garnet")
        rig.done()
        return store

    run(t0, [recent, old]).close()
    # Three days on, newer tasks finished (the cursor moved past the look-back) and the old
    # one is still queued; then a restart, after which it finishes.
    moved = dict(recent, createdAt="2026-11-23T09:10:00Z", endedAt="2026-11-23T09:15:00Z",
                 quantumTaskArn=recent["quantumTaskArn"].replace("00000001-", "00000009-"))
    run(t0 + 3 * 86400, [recent, old, moved]).close()
    done = dict(old, status="COMPLETED", endedAt="2026-11-23T10:00:00Z")
    store = run(t0 + 3 * 86400 + 3600, [recent, done, moved])
    recorded = store.job_ids("braket", "Garnet")
    assert old["quantumTaskArn"] in recorded
    garnet = load_price_table().price("Garnet")
    cost = sum(v for (n, lab), v in store.counters().items() if n == "qpu_cost_usd_total")
    assert cost == pytest.approx(garnet.task_cost(recent["shots"]) * 2 + garnet.task_cost(old["shots"]))
    store.close()


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


def _completed_tasks(rig: Rig, caps_change=None, associations=None, table=None):
    """The fixture's two COMPLETED tasks on Garnet through jobs(), with a price table and a
    device document changed as asked."""
    fx = _tasks_fixture()
    if table is not None:
        rig.provider._prices = table
    payload = device_payload("Garnet")
    if caps_change is not None:
        caps = caps_of(payload)
        caps_change(caps)
        payload = with_caps(payload, caps)
    rig.get_device("Garnet", payload)
    rig.provider.backends()
    stub = rig.stub("eu-north-1")
    tasks = fx["tasks"][:2]
    _search_pages(stub, tasks, page=100)
    _stub_task_lookups(stub, tasks, {}, associations)
    jobs = {int(j.job_id.rsplit("/", 1)[1][:8]): j for j in rig.provider.jobs("Garnet", None)}
    rig.done()
    return jobs


def test_unpriced_device_cost_is_unknown_not_zero():
    from qpu_exporter.providers.braket.prices import PriceTable

    def no_published_price(caps):
        caps["service"]["deviceCost"] = None

    jobs = _completed_tasks(Rig(["Garnet"]), no_published_price, table=PriceTable(as_of="", source=""))
    assert len(jobs) == 2
    assert all(j.cost_usd is None and j.cost_unknown_reason == "unpriced_device" for j in jobs.values())
    assert Rig(["Garnet"]).provider._prices.price("nowhere") is None


def test_a_device_missing_from_the_table_is_priced_from_the_published_device_cost():
    from qpu_exporter.providers.braket.prices import PriceTable

    def published(caps):
        caps["service"]["deviceCost"] = {"price": 0.002, "unit": "shot"}

    jobs = _completed_tasks(Rig(["Garnet"]), published, table=PriceTable(as_of="", source="", default_per_task_usd=0.3))
    assert jobs[1].cost_usd == pytest.approx(0.3 + 1000 * 0.002)
    assert jobs[2].cost_usd == pytest.approx(0.3 + 100 * 0.002)


def test_reservation_tasks_are_not_priced_as_on_demand():
    fx = _tasks_fixture()
    reserved = fx["tasks"][0]["quantumTaskArn"]
    window = "arn:aws:braket:eu-north-1:123456789012:reservation/00000000-aaaa-bbbb-cccc-000000000000"
    jobs = _completed_tasks(Rig(["Garnet"]), associations={reserved: [{"arn": window, "type": "RESERVATION_TIME_WINDOW_ARN"}]})
    assert jobs[1].cost_usd is None and jobs[1].cost_unknown_reason == "reservation"
    garnet = load_price_table().price("Garnet")
    assert jobs[2].cost_usd == pytest.approx(garnet.task_cost(100))  # on demand


def test_tasks_beyond_the_lookup_cap_wait_for_the_next_poll():
    fx = _tasks_fixture()
    rig = Rig(["Garnet"], max_task_lookups_per_poll=1)
    rig.get_device("Garnet")
    rig.provider.backends()
    stub = rig.stub("eu-north-1")
    tasks = fx["tasks"][:2]
    _search_pages(stub, tasks, page=100)
    _stub_task_lookups(stub, tasks[:1], {})
    first = rig.provider.jobs("Garnet", None)
    _search_pages(stub, tasks, page=100)
    _stub_task_lookups(stub, tasks[1:], {})
    second = rig.provider.jobs("Garnet", rig.now)
    rig.done()
    assert [j.job_id for j in first] == [tasks[0]["quantumTaskArn"]]
    assert {j.job_id for j in second} == {t["quantumTaskArn"] for t in tasks}
    assert all(j.cost_usd is not None for j in first + second)


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
