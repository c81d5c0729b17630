"""Jobs whose usage is not final when first seen: counted as jobs at once, their usage and
cost exactly once when final, across restarts; costs that cannot be known are counted as
unknown, never as 0. On both engines (the ``state`` fixture)."""

from __future__ import annotations

from dataclasses import replace

from qpu_exporter.aggregates import job_increments, usage_increments
from qpu_exporter.model import JOB_DONE, JobRecord
from qpu_exporter.store import Store


def _job(job_id: str, **kw) -> JobRecord:
    base = dict(provider="ibm", backend="ibm_fez", job_id=job_id, status=JOB_DONE, created_at=1000.0,
                finished_at=1100.0, queue_seconds=50.0, execution_seconds=50.0, usage_seconds=None,
                cost_usd=None, usage_pending=True)
    base.update(kw)
    return JobRecord(**base)


def _count(store: Store, name: str, **labels) -> float:
    want = {"provider": "ibm", "backend": "ibm_fez", **labels}
    return sum(v for (n, lab), v in store.counters().items() if n == name and dict(lab) == want)


def _record(store: Store, jobs, now: float = 2000.0):
    return store.record_jobs(jobs, job_increments, now, usage_increments)


def test_pending_usage_settles_once_and_survives_a_restart(state):
    store = state.store()
    assert _record(store, [_job("a", created_at=900.0), _job("b")])
    assert _count(store, "qpu_jobs_total") == 2
    assert _count(store, "qpu_job_usage_seconds_total") == 0 and _count(store, "qpu_cost_usd_total") == 0
    assert store.oldest_pending_usage("ibm", "ibm_fez") == 900.0
    _record(store, [_job("a", created_at=900.0)])  # still pending: nothing moves
    assert _count(store, "qpu_job_usage_seconds_total") == 0
    store.close()

    store = state.store()  # a restart: the pending state is in the file
    assert store.oldest_pending_usage("ibm", "ibm_fez") == 900.0
    final = _job("a", created_at=900.0, usage_seconds=7.0, cost_usd=11.2, usage_pending=False)
    assert _record(store, [final]) == []  # not a new job ...
    assert _count(store, "qpu_jobs_total") == 2  # ... so not counted again
    assert _count(store, "qpu_job_usage_seconds_total") == 7.0 and _count(store, "qpu_cost_usd_total") == 11.2
    _record(store, [final, final])  # seen again (overlapping windows): never counted twice
    assert _count(store, "qpu_job_usage_seconds_total") == 7.0 and _count(store, "qpu_cost_usd_total") == 11.2
    assert store.oldest_pending_usage("ibm", "ibm_fez") == 1000.0  # only "b" is left

    # "b" never becomes final: the provider gives up, and its cost is counted as unknown.
    gave_up = _job("b", usage_pending=False, cost_unknown_reason="usage_not_final")
    _record(store, [gave_up, gave_up])
    assert _count(store, "qpu_jobs_cost_unknown_total", reason="usage_not_final") == 1
    assert _count(store, "qpu_cost_usd_total") == 11.2
    assert store.oldest_pending_usage("ibm", "ibm_fez") is None
    store.close()


def test_unknown_cost_is_counted_not_added_as_zero(state):
    store = state.store()
    known = _job("k", usage_pending=False, usage_seconds=3.0, cost_usd=4.8)
    unpriced = _job("u", usage_pending=False, usage_seconds=None, cost_unknown_reason="unpriced_device")
    in_session = _job("s", usage_pending=False, billed_with="session:x")  # billed by its session
    charge = _job("session:x", usage_pending=False, usage_seconds=60.0, cost_usd=96.0, counts_as_job=False)
    _record(store, [known, unpriced, in_session, charge])
    assert _count(store, "qpu_jobs_total") == 3  # the session's charge is not a job
    assert _count(store, "qpu_job_usage_seconds_total") == 63.0
    assert _count(store, "qpu_cost_usd_total") == 4.8 + 96.0
    assert _count(store, "qpu_jobs_cost_unknown_total", reason="unpriced_device") == 1
    assert sum(v for (n, _), v in store.counters().items() if n == "qpu_jobs_cost_unknown_total") == 1
    # A later record cannot turn an unknown cost into a known one after the fact: counters
    # never move for a job that was not pending.
    _record(store, [replace(unpriced, cost_usd=1.0)])
    assert _count(store, "qpu_cost_usd_total") == 4.8 + 96.0
    store.close()
