"""IBM usage and cost as IBM bills them, through the real qiskit-ibm-runtime client stubbed at
HTTP: usage still pending is read again until final (across a restart), job and batch mode
bill each job's quantum time, session mode the session's active time once, and a price the
plan does not publish is counted as unknown, never as 0."""

from __future__ import annotations

import copy
import json
import re
from urllib.parse import parse_qs, urlparse

import pytest

from qpu_exporter.model import JOB_DONE, parse_timestamp
from qpu_exporter.scheduler import Poller
from qpu_exporter.store import Store
from qpu_exporter.view import FleetView
from test_ibm_provider import API, JOBS_NOW, SDK, make_provider, payloads, stub  # noqa: F401 - fixtures

BACKEND = "ibm_sherbrooke"
HOUR = 3600.0


def _iso(t: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Account:
    """A job list, per-job metrics and sessions the test changes between polls, served in the
    shapes of qiskit-ibm-runtime's fake client (SDK payloads in tests/fixtures/ibm)."""

    def __init__(self, rs):
        self.jobs: list[dict] = []
        self.metrics: dict[str, dict] = {}
        self.sessions: dict[str, dict] = {}
        self.calls: list[str] = []
        rs.remove("GET", re.compile(re.escape(API) + r"/jobs(\?.*)?$"))
        rs.add_callback("GET", re.compile(re.escape(API) + r"/jobs(\?.*)?$"), callback=self._list)
        rs.add_callback("GET", re.compile(re.escape(API) + r"/jobs/[^/]+/metrics$"), callback=self._metrics)
        rs.add_callback("GET", re.compile(re.escape(API) + r"/sessions/[^/?]+$"), callback=self._session)

    def job(self, job_id: str, created: float, ended: float, usage: dict | None = None, session: str | None = None):
        entry = copy.deepcopy(SDK["job_entry"])
        entry.update(id=job_id, backend=BACKEND, created=_iso(created), ended=_iso(ended), session_id=session)
        self.jobs.append(entry)
        self.metrics[job_id] = {"timestamps": {"created": _iso(created), "running": _iso(created + 60),
                                               "finished": _iso(ended)},
                                **copy.deepcopy(usage if usage is not None else SDK["usage_completed"])}

    def _list(self, request):
        q = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        pool = [] if q.get("pending") == "true" else self.jobs
        if "created_after" in q:
            pool = [j for j in pool if parse_timestamp(j["created"]) >= parse_timestamp(q["created_after"])]
        return 200, {}, json.dumps({"jobs": pool, "count": len(pool)})

    def _metrics(self, request):
        job_id = urlparse(request.url).path.split("/")[-2]
        self.calls.append(f"metrics:{job_id}")
        return 200, {}, json.dumps(self.metrics[job_id])

    def _session(self, request):
        sid = urlparse(request.url).path.split("/")[-1]
        self.calls.append(f"session:{sid}")
        return 200, {}, json.dumps(self.sessions[sid])


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _poller(tmp_path, clock, **cfg):
    provider = make_provider(**cfg)
    provider.clock = clock
    store = Store(tmp_path / "state.db")
    return Poller([provider], store, FleetView(), clock=clock), provider, store


def _count(store, name, **labels) -> float:
    want = {"provider": "ibm", "backend": BACKEND, **labels}
    return sum(v for (n, lab), v in store.counters().items() if n == name and dict(lab) == want)


def test_pending_usage_is_read_again_until_final_across_a_restart(stub, tmp_path):
    account = Account(stub)
    clock = Clock(JOBS_NOW)
    pending = copy.deepcopy(SDK["usage_pending"])
    pending["usage"]["qpu_charge_time_seconds"] = 0  # what RuntimeJobV2.usage() returns then
    account.job("j-pending", JOBS_NOW - 2 * HOUR, JOBS_NOW - HOUR, usage=pending)
    account.job("j-final", JOBS_NOW - 2 * HOUR, JOBS_NOW - HOUR)
    poller, provider, store = _poller(tmp_path, clock)
    poller.poll_jobs(provider, BACKEND)
    assert _count(store, "qpu_jobs_total") == 2
    assert _count(store, "qpu_job_usage_seconds_total") == 123  # only the final one
    assert _count(store, "qpu_cost_usd_total") == pytest.approx(123 * 1.60)

    clock.t += 600  # still pending on the next poll: read again, nothing counted yet
    poller.poll_jobs(provider, BACKEND)
    assert account.calls.count("metrics:j-pending") == 2 and account.calls.count("metrics:j-final") == 1
    assert _count(store, "qpu_job_usage_seconds_total") == 123
    store.close()

    # A restart (new provider, same state file) long after the cursor: usage is now final.
    account.metrics["j-pending"].update(copy.deepcopy(SDK["usage_completed"]))
    account.metrics["j-pending"]["usage"]["qpu_charge_time_seconds"] = 7
    clock.t += 2 * HOUR
    # No extra look-back after the restart: only the stored pending state reaches the job.
    poller, provider, store = _poller(tmp_path, clock, jobs_lookback="0s")
    for _ in range(2):  # the second poll sees the same job again: counted once
        poller.poll_jobs(provider, BACKEND)
    assert _count(store, "qpu_jobs_total") == 2
    assert _count(store, "qpu_job_usage_seconds_total") == 123 + 7
    assert _count(store, "qpu_cost_usd_total") == pytest.approx(130 * 1.60)
    assert store.oldest_pending_usage("ibm", BACKEND) is None
    store.close()


def test_usage_that_never_becomes_final_is_counted_unknown_after_the_settle_timeout(stub, tmp_path):
    account = Account(stub)
    clock = Clock(JOBS_NOW)
    account.job("j", JOBS_NOW - 2 * HOUR, JOBS_NOW - HOUR, usage=SDK["usage_pending"])
    poller, provider, store = _poller(tmp_path, clock, usage_settle_timeout="2h")
    poller.poll_jobs(provider, BACKEND)
    clock.t += HOUR + 1  # two hours after the job finished: give up
    poller.poll_jobs(provider, BACKEND)
    poller.poll_jobs(provider, BACKEND)
    assert _count(store, "qpu_jobs_cost_unknown_total", reason="usage_not_final") == 1
    assert _count(store, "qpu_cost_usd_total") == 0 and _count(store, "qpu_job_usage_seconds_total") == 0
    assert account.calls.count("metrics:j") == 2  # given up: never read again
    store.close()


def test_session_mode_bills_the_session_once_job_and_batch_mode_bill_each_job(stub, tmp_path):
    account = Account(stub)
    clock = Clock(JOBS_NOW)
    t0 = JOBS_NOW - 3 * HOUR
    account.job("solo", t0, t0 + 100)  # job mode: session_id empty
    account.job("self", t0, t0 + 100, session="self")  # job mode as the SDK's fake client marks it
    account.job("b1", t0 + 10, t0 + 200, session="batch-1")
    account.job("b2", t0 + 20, t0 + 300, session="batch-1")
    account.job("s1", t0 + 30, t0 + 400, session="sess-1")
    account.job("s2", t0 + 40, t0 + 500, session="sess-1")
    account.sessions["batch-1"] = {**SDK["session_details"], "id": "batch-1", "mode": "batch", "elapsed_time": 999}
    account.sessions["sess-1"] = {**SDK["session_details"], "id": "sess-1", "state": "active"}
    poller, provider, store = _poller(tmp_path, clock)
    poller.poll_jobs(provider, BACKEND)
    assert _count(store, "qpu_jobs_total") == 6
    # Four job/batch-mode jobs at 123 quantum seconds each; the session is still active.
    assert _count(store, "qpu_job_usage_seconds_total") == 4 * 123
    clock.t += 600
    account.sessions["sess-1"]["state"] = "closed"  # closed: its active time (330 s) is final
    poller.poll_jobs(provider, BACKEND)
    poller.poll_jobs(provider, BACKEND)
    assert _count(store, "qpu_jobs_total") == 6  # the session's charge is not a job
    assert _count(store, "qpu_job_usage_seconds_total") == 4 * 123 + 330
    assert _count(store, "qpu_cost_usd_total") == pytest.approx((4 * 123 + 330) * 1.60)
    assert _count(store, "qpu_jobs_cost_unknown_total") == 0
    assert account.calls.count("session:batch-1") == 1  # a batch's mode is asked once
    store.close()


@pytest.mark.parametrize("billing,cost,reason", [
    ({"plan": "open"}, 0.0, None),
    ({"plan": "flex", "usd_per_qpu_second": 1.2}, 123 * 1.2, None),
    ({"plan": "premium"}, None, "subscription"),
    ({"plan": "premium", "usd_per_qpu_second": 0}, 0.0, None),
    ({}, None, "no_billing_plan"),
])
def test_the_plan_prices_jobs_and_probes_or_says_it_cannot(stub, tmp_path, billing, cost, reason):
    account = Account(stub)
    account.job("j", JOBS_NOW - 2 * HOUR, JOBS_NOW - HOUR)
    poller, provider, store = _poller(tmp_path, Clock(JOBS_NOW), billing=billing)
    poller.poll_jobs(provider, BACKEND)
    [job] = [j for j in provider.jobs(BACKEND, None) if j.status == JOB_DONE]
    assert job.usage_seconds == 123
    if cost is None:
        assert job.cost_usd is None and job.cost_unknown_reason == reason
        assert _count(store, "qpu_jobs_cost_unknown_total", reason=reason) == 1
        assert _count(store, "qpu_cost_usd_total") == 0
        assert provider.probe_cost_usd(BACKEND, 10.0, [100]) is None
    else:
        assert job.cost_usd == pytest.approx(cost)
        assert _count(store, "qpu_cost_usd_total") == pytest.approx(cost)
        assert _count(store, "qpu_jobs_cost_unknown_total") == 0
        assert provider.probe_cost_usd(BACKEND, 10.0, [100]) == pytest.approx(cost / 123 * 10)
    store.close()
