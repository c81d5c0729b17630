"""Tagged jobs from IBM and Braket, through the real SDK paths (stubbed at the network edge as in
test_ibm_provider.py / test_braket_provider.py), the poller, the store and the exposition:
untagged jobs, odd tag values, secret-looking ones and the overflow to workload "other"."""

from __future__ import annotations

import copy
import json
import re
from collections import defaultdict

import pytest
import responses

from conftest import parse_samples
from qpu_exporter.exposition import families
from qpu_exporter.scheduler import Poller
from qpu_exporter.store import Store
from qpu_exporter.textformat import render
from qpu_exporter.view import FleetView
from qpu_exporter.workloads import WorkloadBook
from test_ibm_provider import payloads, stub  # noqa: F401 - the fixtures

SECRET_TAG = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
LONG = "x" * 500
# Tag list per fixture job, in creation order, and the workload each must count under with
# max=3: chem, Química and quoted_value fill the kept set, later new values overflow.
IBM_TAGS = [
    (["team:chem"], "chem"),
    (["qpu-exporter-probe", "team=chem"], "chem"),
    ([], "untagged"),
    (["team: Química ", "experiment:42"], "Química"),
    (['team:"quoted\nvalue"'], "quoted_value"),
    ([f"team:{LONG}"], "other"),  # too long
    ([f"team:{SECRET_TAG}"], "other"),  # looks like a GitHub token
    (["team:ml"], "other"),  # overflow: three values already kept
    (["team:chem", "team:ml"], "other"),  # ambiguous
    (["project:chem"], "untagged"),  # another key
]
IBM_REASONS = {"too_long": 1, "looks_secret": 1, "overflow": 1, "ambiguous": 1}


def _export(store: Store, view: FleetView) -> str:
    return render(families(view.copy(), store.counters(), version="t", revision="t", daily_budget_usd=1,
                           workloads=True)).decode()


def _check(text: str, provider: str, backend: str, expected: dict[str, int], reasons: dict[str, int]) -> None:
    samples = parse_samples(text)
    jobs = {lab["workload"]: v for n, lab, v in samples if n == "qpu_workload_jobs_total" and lab["backend"] == backend}
    assert jobs == expected
    got = {lab["reason"]: v for n, lab, v in samples if n == "qpu_workload_tag_rejections_total" and lab["backend"] == backend}
    assert got == reasons
    # Conservation: per backend, the workload counters sum to the backend ones.
    for backend_name, twin in (("qpu_jobs_total", "qpu_workload_jobs_total"),
                               ("qpu_jobs_failed_total", "qpu_workload_jobs_failed_total"),
                               ("qpu_job_usage_seconds_total", "qpu_workload_usage_seconds_total"),
                               ("qpu_cost_usd_total", "qpu_workload_cost_usd_total")):
        total = sum(v for n, lab, v in samples if n == backend_name and lab.get("provider") == provider
                    and lab.get("backend") == backend)
        parts = sum(v for n, lab, v in samples if n == twin and lab.get("provider") == provider
                    and lab.get("backend") == backend)
        assert parts == pytest.approx(total, rel=1e-12, abs=1e-12), backend_name
    # No raw tag text reaches the exposition: secrets, the long value, newlines, quotes.
    assert SECRET_TAG not in text and "x" * 64 not in text and "quoted\\n" not in text and '\\"quoted' not in text


def test_ibm_job_tags_become_workloads(payloads, tmp_path, caplog):
    import test_ibm_provider as ibm

    jobs = copy.deepcopy(payloads["jobs"])
    final = sorted(jobs["final"], key=lambda j: j["created"])
    for entry, (tags, _) in zip(final, IBM_TAGS, strict=True):
        entry["tags"] = tags
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        ibm.register_endpoints(rs, payloads, jobs)
        provider = ibm.make_provider()
        store, view = Store(tmp_path / "s.db"), FleetView()
        poller = Poller([provider], store, view, clock=lambda: ibm.JOBS_NOW, workloads=WorkloadBook("team", 3))
        assert "ibm_sherbrooke" in poller.discover(provider)
        poller.poll_jobs(provider, "ibm_sherbrooke")
        poller.poll_jobs(provider, "ibm_sherbrooke")  # the overlapping re-poll counts nothing twice
    expected: dict[str, int] = defaultdict(int)
    for _, workload in IBM_TAGS:
        expected[workload] += 1
    _check(_export(store, view), "ibm", "ibm_sherbrooke", dict(expected), IBM_REASONS)
    assert sorted(store.kept_workloads()) == sorted(["chem", "Química", "quoted_value"])
    assert SECRET_TAG not in caplog.text and SECRET_TAG.encode() not in (tmp_path / "s.db").read_bytes()
    store.close()


def test_braket_task_tags_become_workloads(tmp_path):
    from test_braket_provider import Rig, _search_pages, _tasks_fixture

    fx = _tasks_fixture()
    tasks = [t for t in fx["tasks"] if t["status"] in ("COMPLETED", "FAILED", "CANCELLED")]
    assert len(tasks) == 5
    tags = [
        ({"team": "chem", "CostCenter": "42"}, "chem"),
        (None, "untagged"),  # the summary has no tags at all
        ({"team": "AKIAIOSFODNN7EXAMPLE"}, "other"),  # an AWS access key id as a value
        ({"team": "ml"}, "other"),  # overflow with max=1
        ({"Team": "chem", "team": 'chem"\n'}, "chem"),  # keys are case-sensitive; the value is cleaned
    ]
    for task, (t, _) in zip(tasks, tags, strict=True):
        if t is not None:
            task["tags"] = t
    rig = Rig(["Garnet"], max_task_lookups_per_poll=0)
    rig.get_device("Garnet")
    rig.provider.backends()
    _search_pages(rig.stub("eu-north-1"), tasks, page=2)
    store, view = Store(tmp_path / "s.db"), FleetView()
    poller = Poller([rig.provider], store, view, clock=lambda: rig.now, workloads=WorkloadBook("team", 1))
    poller.poll_jobs(rig.provider, "Garnet")
    rig.done()  # one paged search, no per-task call for the tags
    assert view.copy().health[("braket", "Garnet", "jobs")].success
    _check(_export(store, view), "braket", "Garnet", {"chem": 2, "untagged": 1, "other": 2},
           {"looks_secret": 1, "overflow": 1})
    store.close()


def test_braket_tags_survive_the_real_response_parser():
    """Tags as botocore parses them off the wire (JSON map), not as the stubber passes them."""
    import botocore.session
    from botocore.parsers import create_parser

    model = botocore.session.get_session().get_service_model("braket")
    op = model.operation_model("SearchQuantumTasks")
    body = {"quantumTasks": [{"quantumTaskArn": "arn:t", "status": "COMPLETED", "deviceArn": "arn:d", "shots": 1,
                              "outputS3Bucket": "b", "outputS3Directory": "d", "createdAt": "2026-11-20T08:00:00Z",
                              "tags": {"team": "chem"}}]}
    parsed = create_parser(model.metadata["protocol"]).parse(
        {"status_code": 200, "headers": {}, "body": json.dumps(body).encode()}, op.output_shape)
    from qpu_exporter.providers.braket.provider import task_tags

    assert task_tags(parsed["quantumTasks"][0]["tags"]) == (("team", "chem"),)


def test_ibm_job_tag_forms():
    from qpu_exporter.providers.ibm.provider import job_tags

    assert job_tags(["team:chem", "team=a:b", "team:a=b", "probe", " team :x", 3, None]) == (
        ("team", "chem"), ("team", "a:b"), ("team", "a=b"), ("team", "x"))
    assert job_tags(None) == () and job_tags("team:chem") == ()
    assert re.fullmatch(r"x{256}", job_tags([f"team:{LONG}"])[0][1])  # bounded before it is kept in memory


# --- IBM usage that settles later, and session charges: conservation on every path -------------

TWIN_OF = {"qpu_jobs_total": "qpu_workload_jobs_total", "qpu_jobs_failed_total": "qpu_workload_jobs_failed_total",
           "qpu_job_usage_seconds_total": "qpu_workload_usage_seconds_total",
           "qpu_cost_usd_total": "qpu_workload_cost_usd_total"}


def _per_workload(store: Store, name: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for (n, labels), value in store.counters().items():
        if n == name:
            out[dict(labels)["workload"]] += value
    return dict(out)


def _assert_conserved(store: Store) -> None:
    counters = store.counters()
    for backend_name, twin in TWIN_OF.items():
        total = sum(v for (n, _), v in counters.items() if n == backend_name)
        assert sum(v for (n, _), v in counters.items() if n == twin) == pytest.approx(total, abs=1e-9), backend_name


def _ibm_poller(tmp_path, clock, **cfg):
    """The IBM provider (real client, HTTP stubbed), a store and a poller resolving workloads
    against the store's kept set, as the exporter builds them at start."""
    from test_ibm_provider import make_provider

    provider = make_provider(**cfg)
    provider.clock = clock
    store = Store(tmp_path / "state.db")
    book = WorkloadBook("team", 5, store.kept_workloads())
    return Poller([provider], store, FleetView(), clock=clock, workloads=book), provider, store


def test_ibm_usage_settling_after_a_restart_goes_to_the_workload_its_job_counted_under(stub, tmp_path):
    from test_ibm_billing import BACKEND, HOUR, SDK, Account, Clock
    from test_ibm_provider import JOBS_NOW

    account = Account(stub)
    clock = Clock(JOBS_NOW)
    pending = copy.deepcopy(SDK["usage_pending"])
    pending["usage"]["qpu_charge_time_seconds"] = 0  # what RuntimeJobV2.usage() returns then
    account.job("j-pending", JOBS_NOW - 2 * HOUR, JOBS_NOW - HOUR, usage=pending)
    account.job("j-final", JOBS_NOW - 2 * HOUR, JOBS_NOW - HOUR)
    account.jobs[0]["tags"], account.jobs[1]["tags"] = ["team:chem"], ["team:ml"]
    poller, provider, store = _ibm_poller(tmp_path, clock)
    poller.poll_jobs(provider, BACKEND)
    assert _per_workload(store, "qpu_workload_jobs_total") == {"chem": 1, "ml": 1}
    assert _per_workload(store, "qpu_workload_usage_seconds_total") == {"ml": 123}  # chem's is pending
    _assert_conserved(store)
    store.close()

    # After a restart the usage is final, and the job was re-tagged meanwhile (job.update_tags):
    # its usage and cost go where the job was counted, once.
    account.metrics["j-pending"].update(copy.deepcopy(SDK["usage_completed"]))
    account.metrics["j-pending"]["usage"]["qpu_charge_time_seconds"] = 7
    account.jobs[0]["tags"] = ["team:finance"]
    clock.t += 2 * HOUR
    poller, provider, store = _ibm_poller(tmp_path, clock, jobs_lookback="0s")
    for _ in range(2):
        poller.poll_jobs(provider, BACKEND)
    assert _per_workload(store, "qpu_workload_jobs_total") == {"chem": 1, "ml": 1}
    assert _per_workload(store, "qpu_workload_usage_seconds_total") == {"chem": 7, "ml": 123}
    cost = _per_workload(store, "qpu_workload_cost_usd_total")
    assert cost == pytest.approx({"chem": 7 * 1.60, "ml": 123 * 1.60})
    _assert_conserved(store)
    assert "finance" not in store.kept_workloads() and store.oldest_pending_usage("ibm", BACKEND) is None
    store.close()


def test_an_ibm_session_charge_moves_usage_and_cost_under_its_own_workload(stub, tmp_path):
    """Session mode bills the session, a record that is not a job: its usage and cost go to the
    workload of its own tags (a session has none: untagged); its jobs count under theirs."""
    from test_ibm_billing import BACKEND, HOUR, SDK, Account, Clock
    from test_ibm_provider import JOBS_NOW

    account = Account(stub)
    clock = Clock(JOBS_NOW)
    t0 = JOBS_NOW - 3 * HOUR
    account.job("solo", t0, t0 + 100)
    account.job("s1", t0 + 30, t0 + 400, session="sess-1")
    account.job("s2", t0 + 40, t0 + 500, session="sess-1")
    account.job("c1", t0 + 50, t0 + 600, session="sess-2")
    for entry, tags in zip(account.jobs, (["team:chem"], ["team:chem"], ["team=ml"], ["team:ml"]), strict=True):
        entry["tags"] = tags
    # sess-1 is still active at the first poll (its charge pending, settled later); sess-2 closed
    # already (its charge final when first recorded).
    account.sessions["sess-1"] = {**SDK["session_details"], "id": "sess-1", "state": "active"}
    account.sessions["sess-2"] = {**SDK["session_details"], "id": "sess-2"}
    poller, provider, store = _ibm_poller(tmp_path, clock)
    poller.poll_jobs(provider, BACKEND)
    _assert_conserved(store)
    clock.t += 600
    account.sessions["sess-1"]["state"] = "closed"  # closed: its active time (330 s) is final
    poller.poll_jobs(provider, BACKEND)
    poller.poll_jobs(provider, BACKEND)
    assert _per_workload(store, "qpu_workload_jobs_total") == {"chem": 2, "ml": 2}  # the charges are no jobs
    assert _per_workload(store, "qpu_workload_usage_seconds_total") == {"chem": 123, "untagged": 2 * 330}
    assert _per_workload(store, "qpu_workload_cost_usd_total") == pytest.approx({"chem": 123 * 1.60,
                                                                                "untagged": 2 * 330 * 1.60})
    _assert_conserved(store)
    # Exported, the charge's workload has every series, its job count at 0.
    view = FleetView()
    poller.view = view
    assert "ibm_sherbrooke" in poller.discover(provider)
    text = _export(store, view)
    untagged = {n: v for n, lab, v in parse_samples(text) if lab.get("workload") == "untagged"
                and n in TWIN_OF.values()}
    assert untagged["qpu_workload_jobs_total"] == 0 and untagged["qpu_workload_usage_seconds_total"] == 2 * 330
    store.close()
