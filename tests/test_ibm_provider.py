"""IBM provider against HTTP-level stubs (``responses``): the real qiskit-ibm-runtime code
path (IAM token, Global Search, Global Catalog, RuntimeClient) serving payloads built
from the fake backends' real calibration snapshots (tests/fixtures/ibm)."""

from __future__ import annotations

import gzip
import json
import logging
import re
import statistics
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import jwt
import pytest
import requests
import responses

from qpu_exporter.providers.ibm.config import IbmProviderConfig
from qpu_exporter.model import JOB_CANCELLED, JOB_DONE, JOB_FAILED
from qpu_exporter.providers.ibm import provider as ibm_module
from qpu_exporter.providers.base import ProviderError
from qpu_exporter.providers.fake_snapshots import load_snapshot
from qpu_exporter.providers.ibm.provider import IbmProvider
from qpu_exporter.providers.ibm.properties import parse_timestamp

FIX = Path(__file__).parent / "fixtures" / "ibm"
TOKEN = "ibm-api-key-SECRET-0123456789"
CRN = "crn:v1:bluemix:public:quantum-computing:us-east:a/abc123:instance-1::"
API = "https://quantum.cloud.ibm.com/api/v1"
IAM = "https://iam.cloud.ibm.com/identity/token"
BACKENDS = ("ibm_sherbrooke", "ibm_kingston")


def _gz(name: str) -> dict:
    with gzip.open(FIX / name, "rt", encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def payloads() -> dict:
    out = {}
    for b in BACKENDS:
        short = b.removeprefix("ibm_")
        out[b] = {"conf": _gz(f"conf_{short}.json.gz"), "props": _gz(f"props_{short}.json.gz")}
    out["jobs"] = json.loads((FIX / "jobs.json").read_text())
    return out


def _iam(request):
    now = int(time.time())
    token = jwt.encode({"iat": now, "exp": now + 3600}, "k" * 32, algorithm="HS256")
    body = {"access_token": token, "refresh_token": "r", "token_type": "Bearer", "expires_in": 3600, "expiration": now + 3600}
    return 200, {}, json.dumps(body)


def _jobs_callback(jobs_fixture: dict):
    def callback(request):
        q = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        pool = jobs_fixture["pending"] if q.get("pending") == "true" else jobs_fixture["final"]
        if "created_after" in q:
            floor = parse_timestamp(q["created_after"])
            pool = [j for j in pool if parse_timestamp(j["created"]) >= floor]
        if "backend" in q:
            pool = [j for j in pool if j["backend"] == q["backend"]]
        pool = sorted(pool, key=lambda j: j["created"], reverse=q.get("sort") != "ASC")
        offset, limit = int(q.get("offset", 0)), int(q.get("limit", 10))
        return 200, {}, json.dumps({"jobs": pool[offset:offset + limit], "count": len(pool)})
    return callback


def serve_backends(rs, backends: dict[str, tuple[dict, dict]]) -> None:
    """The IBM Cloud control plane (IAM, Global Search, Global Catalog) and the runtime API's
    backend list, configurations and properties: name -> (configuration, properties)."""
    rs.add_callback("POST", IAM, callback=_iam)
    rs.add("POST", re.compile(r"https://api\.global-search-tagging\.cloud\.ibm\.com/v3/resources/search.*"),
           json={"items": [{"crn": CRN, "service_plan_unique_id": "plan-1", "name": "inst",
                            "doc": {"extensions": {"allocation": 1}}, "tags": []}]})
    rs.add("GET", re.compile(r"https://globalcatalog\.cloud\.ibm\.com/api/v1/.*"),
           json={"overview_ui": {"en": {"display_name": "Standard"}}, "metadata": {"pricing": {"type": "paid"}}})
    rs.add("GET", re.compile(re.escape(API) + r"/backends(\?.*)?$"), json={"devices": [{"name": b} for b in backends]})
    for b, (conf, props) in backends.items():
        rs.add("GET", f"{API}/backends/{b}/configuration", json=conf)
        rs.add("GET", re.compile(re.escape(f"{API}/backends/{b}/properties") + r"(\?.*)?$"), json=props)


def register_endpoints(rs, payloads: dict, jobs: dict) -> None:
    """The control plane and the runtime API of the ``stub`` fixture on a RequestsMock, with
    ``jobs`` as the job list fixture served by GET /jobs (tests with other job lists pass theirs)."""
    serve_backends(rs, {b: (payloads[b]["conf"], payloads[b]["props"]) for b in BACKENDS})
    rs.add("GET", f"{API}/backends/ibm_sherbrooke/status",
           json={"state": True, "status": "active", "length_queue": 42, "backend_version": "1.6.73"})
    rs.add("GET", f"{API}/backends/ibm_kingston/status",
           json={"state": False, "status": "internal", "length_queue": 3, "backend_version": "1.0.1"})
    rs.add_callback("GET", re.compile(re.escape(API) + r"/jobs(\?.*)?$"), callback=_jobs_callback(jobs))
    for job_id, metrics in jobs["metrics"].items():
        rs.add("GET", f"{API}/jobs/{job_id}/metrics", json=metrics)
    rs.add("GET", f"{API}/instances/usage", json=SDK["cloud_usage"])


@pytest.fixture
def stub(payloads):
    """A RequestsMock serving the IBM Cloud control plane and the runtime API."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        register_endpoints(rs, payloads, payloads["jobs"])
        yield rs


# The fixture's jobs ran on 2025-02-26 between 10:00 and 11:40 UTC; "now" is an hour later.
JOBS_NOW = parse_timestamp("2025-02-26T12:45:00Z")


SDK = json.loads((FIX / "sdk_payloads.json").read_text())  # shapes from qiskit-ibm-runtime itself


def make_provider(**overrides) -> IbmProvider:
    overrides.setdefault("billing", {"plan": "pay_as_you_go"})
    cfg = IbmProviderConfig(kind="ibm", instance=CRN, **overrides)
    return IbmProvider(cfg, environ={"QISKIT_IBM_TOKEN": TOKEN}, clock=lambda: JOBS_NOW)


def api_calls(rs, pattern: str) -> int:
    return sum(1 for c in rs.calls if re.search(pattern, c.request.url))


def replace(rs, method: str, url, **kwargs):
    rs.replace(method, url, **kwargs)


# --- discovery, status, calibration --------------------------------------------------------------

def test_backends_and_status(stub):
    p = make_provider()
    infos = {i.backend: i for i in p.backends()}
    assert set(infos) == set(BACKENDS)
    assert (infos["ibm_sherbrooke"].num_qubits, infos["ibm_sherbrooke"].processor) == (127, "Eagle r3")
    assert (infos["ibm_kingston"].num_qubits, infos["ibm_kingston"].processor) == (156, "Heron r2")
    assert all(i.provider == "ibm" for i in infos.values())
    configs = api_calls(stub, r"/configuration")
    p.backends()
    assert api_calls(stub, r"/configuration") == configs, "backends() must be cached after the first call"

    st = p.status("ibm_sherbrooke")
    assert (st.operational, st.pending_jobs, st.status_message) == (True, 42, "active")
    st = p.status("ibm_kingston")
    assert (st.operational, st.pending_jobs, st.status_message) == (False, 3, "internal")


def test_backend_filter(stub):
    p = make_provider(backends=["ibm_kingston", "ibm_nowhere"])
    assert [i.backend for i in p.backends()] == ["ibm_kingston"]


@pytest.mark.parametrize("backend,fake,twoq", [("ibm_sherbrooke", "fake_sherbrooke", "ecr"), ("ibm_kingston", "fake_kingston", "cz")])
def test_calibration_si_values(stub, backend, fake, twoq):
    p = make_provider()
    snap = p.calibration(backend)
    assert (snap.provider, snap.backend) == ("ibm", backend)
    _, raw = load_snapshot(fake)  # the original snapshot, with its own offsets
    assert snap.calibrated_at == pytest.approx(parse_timestamp(raw["last_update_date"]))
    t1 = [q.values["t1"].value for q in snap.qubits if "t1" in q.values]
    assert len(snap.qubits) == len(raw["qubits"])
    assert len(t1) == sum(1 for q in raw["qubits"] if any(e["name"] == "T1" for e in q))
    assert 1e-5 < statistics.median(t1) < 1e-3
    q0 = {e["name"]: e for e in raw["qubits"][0]}
    assert snap.qubits[0].values["t1"].value == pytest.approx(q0["T1"]["value"] * 1e-6)
    assert snap.qubits[0].values["t1"].measured_at == pytest.approx(parse_timestamp(q0["T1"]["date"]))
    assert snap.qubits[0].values["readout_duration"].value == pytest.approx(q0["readout_length"]["value"] * 1e-9)
    for name in ("t2", "readout_error", "prob_meas0_prep1", "prob_meas1_prep0"):
        assert name in snap.qubits[0].values
    has_freq = "frequency" in snap.qubits[0].values
    assert has_freq == (backend == "ibm_sherbrooke")  # Heron publishes no frequency
    if has_freq:
        assert 4e9 < snap.qubits[0].values["frequency"].value < 6e9

    gates = {(g.gate, g.qubits): g for g in snap.gates}
    assert ("rz", (0,)) not in gates  # virtual
    sx = gates[("sx", (0,))]
    assert 0 < sx.error.value < 1e-2 and 1e-8 < sx.duration.value < 1e-6
    edges = [g for g in snap.gates if g.gate == twoq]
    assert edges and all(len(g.qubits) == 2 for g in edges)
    raw_dead = sum(1 for g in raw["gates"] if g["gate"] == twoq and any(
        x["name"] == "gate_error" and x["value"] >= 1 for x in g["parameters"]))
    dead = [g for g in edges if not g.operational]
    assert len(dead) == raw_dead and all(g.error is None for g in dead)
    live = [g.error.value for g in edges if g.operational]
    assert 1e-4 < statistics.median(live) < 5e-2
    if backend == "ibm_kingston":
        assert raw_dead > 0
        assert any(g.gate == "measure_2" and g.error is not None for g in snap.gates)


def test_faulty_qubit_is_not_operational(stub, payloads):
    props = json.loads(json.dumps(payloads["ibm_sherbrooke"]["props"]))
    props["qubits"][5].append({"date": "2025-02-26T00:00:00Z", "name": "operational", "unit": "", "value": 0})
    stub.replace("GET", re.compile(re.escape(f"{API}/backends/ibm_sherbrooke/properties") + r"(\?.*)?$"), json=props)
    snap = make_provider().calibration("ibm_sherbrooke")
    assert not snap.qubits[5].operational
    assert all(q.operational for q in snap.qubits if q.qubit != 5)


# --- jobs ---------------------------------------------------------------------------------------

def test_jobs_paged_without_per_job_status_calls(stub, payloads, monkeypatch):
    monkeypatch.setattr(ibm_module, "JOBS_PAGE_SIZE", 4)  # 10 finished jobs -> 3 pages
    p = make_provider()
    p.backends()
    before = len(stub.calls)
    jobs = {j.job_id: j for j in p.jobs("ibm_sherbrooke", None)}
    made = [c.request.url for c in stub.calls[before:]]
    assert len(jobs) == 10
    assert not any(re.search(r"/jobs/[^/?]+(\?|$)", u) for u in made), "no per-job GET /jobs/{id}"
    list_calls = [u for u in made if re.search(r"/jobs\?", u)]
    assert len(list_calls) == 1 + 3  # the oldest pending job + 3 pages
    assert sum("/metrics" in u for u in made) == 10
    assert all(j.provider == "ibm" and j.backend == "ibm_sherbrooke" for j in jobs.values())

    fixture = {j["id"]: j for j in payloads["jobs"]["final"]}
    for job_id, rec in jobs.items():
        ts = payloads["jobs"]["metrics"][job_id]["timestamps"]
        assert rec.created_at == pytest.approx(parse_timestamp(ts["created"]))
        assert rec.finished_at == pytest.approx(parse_timestamp(ts["finished"]))
        assert rec.queue_seconds == pytest.approx(parse_timestamp(ts["running"]) - parse_timestamp(ts["created"]))
        assert rec.execution_seconds == pytest.approx(parse_timestamp(ts["finished"]) - parse_timestamp(ts["running"]))
        usage = payloads["jobs"]["metrics"][job_id]["usage"]["qpu_charge_time_seconds"]
        assert rec.usage_seconds == pytest.approx(usage)
        assert rec.cost_usd == pytest.approx(usage * 1.60)
        assert fixture[job_id]["state"].get("reason", "") not in rec.error_class or not rec.error_class
    assert jobs["d0job00"].status == JOB_DONE and jobs["d0job00"].error_class == ""
    assert (jobs["d0job06"].status, jobs["d0job06"].error_class) == (JOB_FAILED, "invalid_input")
    assert (jobs["d0job07"].status, jobs["d0job07"].error_class) == (JOB_FAILED, "internal_error")
    assert (jobs["d0job08"].status, jobs["d0job08"].error_class) == (JOB_CANCELLED, "")
    assert (jobs["d0job09"].status, jobs["d0job09"].error_class) == (JOB_FAILED, "timeout")  # ran too long

    # The next poll overlaps (the scheduler re-asks a window) but costs no metrics calls.
    before = len(stub.calls)
    since = max(j.finished_at for j in jobs.values()) - 600
    again = p.jobs("ibm_sherbrooke", since)
    assert {j.job_id for j in again} <= set(jobs)
    assert not any("/metrics" in c.request.url for c in stub.calls[before:])


def test_created_after_reaches_back_to_oldest_pending_job(stub, payloads):
    p = make_provider()
    p.jobs("ibm_sherbrooke", None)
    before = len(stub.calls)
    p.jobs("ibm_sherbrooke", JOBS_NOW)  # "since now": only the pending job's age keeps the floor low
    final_calls = [c.request.url for c in stub.calls[before:] if "pending=false" in c.request.url]
    floor = parse_timestamp(parse_qs(urlparse(final_calls[0]).query)["created_after"][0])
    assert floor == pytest.approx(parse_timestamp(payloads["jobs"]["pending"][0]["created"]))


def test_metrics_cap_defers_without_gaps(stub):
    p = make_provider(max_job_metrics_per_poll=3)
    seen: set[str] = set()
    for poll in range(4):
        batch = p.jobs("ibm_sherbrooke", None if poll == 0 else JOBS_NOW)
        assert all(j.queue_seconds is not None for j in batch), "never returned without its metrics"
        seen |= {j.job_id for j in batch}
        assert len(seen) == min(10, 3 * (poll + 1))
    assert api_calls(stub, r"/metrics") == 10


def test_instance_usage_reads_the_period_as_the_sdk_serves_it(stub):
    # The payload of qiskit-ibm-runtime's own fake client: the period is an object
    # usage_period {start_time, end_time}, the limit an allocation.
    usage = make_provider().instance_usage()
    assert usage["consumed_seconds"] == 6000 and usage["limit_seconds"] == 90000
    assert usage["remaining_seconds"] == 84000 and usage["limit_reached"] is False
    assert usage["period_start"] == parse_timestamp("2025-10-01T17:40:06.269Z")
    assert usage["period_end"] == parse_timestamp("2025-10-29T17:40:06.269Z")


# --- credentials ----------------------------------------------------------------------------------

def test_token_file(stub, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    p = IbmProvider(IbmProviderConfig(kind="ibm", instance=CRN, token_file=token_file), environ={})
    assert p.status("ibm_sherbrooke").pending_jobs == 42
    iam_bodies = [c.request.body for c in stub.calls if c.request.url.startswith(IAM)]
    assert iam_bodies and all(TOKEN in str(b) for b in iam_bodies)  # the file's token was used


def test_missing_token_is_auth():
    p = IbmProvider(IbmProviderConfig(kind="ibm", instance=CRN), environ={})
    with pytest.raises(ProviderError) as err:
        p.status("ibm_sherbrooke")
    assert err.value.kind == "auth"


# --- faults ---------------------------------------------------------------------------------------

STATUS = f"{API}/backends/ibm_sherbrooke/status"


def _poll_fails(p: IbmProvider) -> ProviderError:
    with pytest.raises(ProviderError) as err:
        p.status("ibm_sherbrooke")
    return err.value


def _connected(**overrides) -> IbmProvider:
    p = make_provider(**overrides)
    p._client()
    return p


def test_fault_timeout(stub):
    p = _connected()
    session = p._service._active_api_client._session
    assert session._timeout == (5.0, 30.0)  # bounded: the SDK's default read timeout is None
    stub.replace("GET", STATUS, body=requests.exceptions.ReadTimeout("read timed out"))
    assert _poll_fails(p).kind == "timeout"


@pytest.mark.parametrize("code", [500, 502, 503])
def test_fault_5xx(stub, code):
    p = _connected(retries=0)
    stub.replace("GET", STATUS, status=code, json={"error": "down"})
    err = _poll_fails(p)
    assert err.kind == "http_5xx" and str(code) in str(err)


def test_fault_rate_limited_carries_retry_after(stub):
    p = _connected()
    stub.replace("GET", STATUS, status=429, headers={"Retry-After": "17"}, json={"errors": [{"code": "rate"}]})
    err = _poll_fails(p)
    assert err.kind == "rate_limited" and err.retry_after == 17.0


def test_fault_expired_token_on_api(stub):
    p = _connected()
    stub.replace("GET", STATUS, status=401, json={"errors": [{"message": "token expired"}]})
    assert _poll_fails(p).kind == "auth"


def test_fault_wrong_api_key_at_iam(stub, caplog):
    stub.replace("POST", IAM, status=400, json={"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found."})
    caplog.set_level(logging.DEBUG)
    p = make_provider()
    err = _poll_fails(p)
    assert err.kind == "auth"
    assert TOKEN not in str(err) and TOKEN not in repr(err.args)
    assert TOKEN not in caplog.text


def test_fault_malformed_payloads(stub, payloads):
    p = _connected()
    stub.replace("GET", STATUS, body="<html>oops</html>", content_type="text/html")
    assert _poll_fails(p).kind == "malformed"
    bad = json.loads(json.dumps(payloads["ibm_sherbrooke"]["props"]))
    bad["gates"][0]["qubits"] = "zero"
    stub.replace("GET", re.compile(re.escape(f"{API}/backends/ibm_sherbrooke/properties") + r"(\?.*)?$"), json=bad)
    with pytest.raises(ProviderError) as err:
        p.calibration("ibm_sherbrooke")
    assert err.value.kind == "malformed"
    stub.replace("GET", re.compile(re.escape(API) + r"/jobs(\?.*)?$"), json={"unexpected": True})
    with pytest.raises(ProviderError) as err:
        p.jobs("ibm_sherbrooke", None)
    assert err.value.kind == "malformed"


def test_fault_connection_refused_is_unavailable(stub):
    p = _connected()
    stub.replace("GET", STATUS, body=requests.exceptions.ConnectionError("refused"))
    assert _poll_fails(p).kind == "unavailable"


def test_no_error_message_carries_the_token(stub, caplog):
    caplog.set_level(logging.DEBUG)
    p = _connected()
    for status in (400, 401, 403, 404, 429, 500):
        stub.replace("GET", STATUS, status=status, json={"error": {"message": f"echo {TOKEN}", "code": 1}})
        err = _poll_fails(p)
        assert TOKEN not in str(err)
    assert TOKEN not in caplog.text


# --- through the exporter: same metric names as the simulated fleet ------------------------------

def test_ibm_data_is_exported_under_the_common_metric_names(stub, tmp_path):
    from conftest import parse_samples
    from qpu_exporter.exposition import families
    from qpu_exporter.scheduler import Poller
    from qpu_exporter.store import Store
    from qpu_exporter.textformat import render
    from qpu_exporter.view import FleetView

    p = make_provider()
    store, view = Store(tmp_path / "s.db"), FleetView()
    poller = Poller([p], store, view, clock=lambda: JOBS_NOW)
    names = poller.discover(p)
    assert names
    for b in names:
        poller.poll_status(p, b)
        poller.poll_calibration(p, b)
        poller.poll_jobs(p, b)
    text = render(families(view.copy(), store.counters(), version="t", revision="t", daily_budget_usd=1)).decode()
    samples = parse_samples(text)
    got = {n for n, lab, _ in samples if lab.get("provider") == "ibm"}
    for name in ("qpu_backend_up", "qpu_backend_pending_jobs", "qpu_backend_info", "qpu_qubit_t1_seconds",
                 "qpu_qubit_readout_error_ratio", "qpu_gate_error_ratio", "qpu_gate_operational",
                 "qpu_jobs_total", "qpu_exporter_collector_success"):
        assert name in got, name
    t1 = [v for n, lab, v in samples if n == "qpu_qubit_t1_seconds" and lab["provider"] == "ibm"]
    assert 1e-5 < statistics.median(t1) < 1e-3
    assert sum(v for n, lab, v in samples if n == "qpu_jobs_total" and lab["provider"] == "ibm") > 0
    store.close()
