"""The store on both engines (SQLite file, real PostgreSQL): the same behaviour from the same
code; per-instance job counting; shared probe state; reservations and leases that hold across
processes; the schema the migrations build is the one the queries use."""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest
from sqlalchemy import create_engine, inspect

from qpu_exporter.aggregates import job_increments
from qpu_exporter.model import CalibrationSnapshot, JobRecord, Measurement, QubitCalibration
from qpu_exporter.store import SHARED_COUNTERS, StateError, StorageError
from qpu_exporter.store.tables import metadata

NOW = 1_800_000_000.0
LABELS = {"provider": "simulated", "backend": "b1"}


def _job(i: int, status: str = "done", cost: float | None = 0.5) -> JobRecord:
    return JobRecord("simulated", "b1", f"job-{i}", status, NOW + i, NOW + i + 5, 2.0, 3.0,
                     None if cost is None else 1.5, cost, "" if status == "done" else "execution_error")


def _snap(t: float, t1: float) -> CalibrationSnapshot:
    return CalibrationSnapshot("simulated", "b1", t + 1, t, [QubitCalibration(0, {"t1": Measurement(t1, t)}, True)], [])


def _counter(store, name: str, **labels) -> float | None:
    want = {**LABELS, **labels}
    return store.counters().get((name, tuple(sorted(want.items()))))


def test_state_round_trip_and_reopen(state):
    store = state.store()
    assert store.meta_default("simulation_origin", "1.5") == "1.5"
    assert store.meta_default("simulation_origin", "9") == "1.5"
    assert store.record_calibration(_snap(NOW, 1e-4)) == 1
    assert store.record_calibration(_snap(NOW, 1e-4)) == 0  # same measurement: no new row
    assert store.record_calibration(_snap(NOW + 60, 2e-4)) == 1
    new = store.record_jobs([_job(1), _job(2, "failed"), _job(1)], job_increments, NOW)
    assert [j.job_id for j in new] == ["job-1", "job-2"]
    assert store.record_jobs([_job(2, "failed"), _job(3)], job_increments, NOW) == [_job(3)]
    store.set_cursor("simulated", "b1", "jobs", NOW + 8)
    rid = store.record_probe_run("simulated", "b1", "0", "", NOW, NOW + 9, "ok", "", 300, 0.25, NOW,
                                 {"result": {"epc": 1e-3}}, [("qpu_probe_runs_total", LABELS, 1.0)])
    store.save_drift_state('{"x": 1}')
    store.close()

    again = state.store()
    assert again.meta("simulation_origin") == "1.5" and again.meta("nope", "d") == "d"
    assert [r[4:] for r in again.calibration_history()] == [(NOW, 1e-4), (NOW + 60, 2e-4)]
    assert again.latest_calibration("simulated", "b1").qubits[0].values["t1"].value == 2e-4
    assert _counter(again, "qpu_jobs_total") == 3 and _counter(again, "qpu_jobs_failed_total") == 1
    assert _counter(again, "qpu_job_usage_seconds_total") == 4.5
    assert again.job_ids("simulated", "b1") == {"job-1", "job-2", "job-3"} and again.job_count() == 3
    assert again.cursor("simulated", "b1", "jobs") == NOW + 8
    assert again.probe_run(rid)["record"] == {"result": {"epc": 1e-3}}
    assert again.last_probe_started("simulated", "b1") == NOW
    assert _counter(again, "qpu_probe_runs_total") == 1
    assert again.load_drift_state() == ('{"x": 1}', True)
    # Unknown usage and cost stay unknown (NULL), never 0; counter rows keep the released
    # store's label spelling, so an upgraded file keeps one row per counter.
    again.record_jobs([_job(9, cost=None)], lambda j: [], NOW)
    with again.engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT usage_seconds, cost_usd, workload FROM jobs WHERE job_id = 'job-9'").one()
        labels = conn.exec_driver_sql("SELECT labels FROM counters WHERE name = 'qpu_jobs_total'").scalar_one()
    assert tuple(row) == (None, None, None)
    assert labels == json.dumps(tuple(sorted(LABELS.items())))
    assert again.prune(NOW + 30) == 1 + 4  # the first calibration row (fetched at NOW + 1) and the jobs
    assert len(again.calibration_history()) == 1 and again.job_count() == 0
    assert _counter(again, "qpu_jobs_total") == 3  # counters are kept
    again.close()


def test_each_instance_counts_every_job_once_and_shares_probe_counters(state):
    """Two replicas see the same jobs: each counts all of them, once, in its own counters; a
    restart of one neither double counts nor goes backwards. Probe counters are shared."""
    a, b = state.store(instance="replica-a"), state.store(instance="replica-b")
    a.record_jobs([_job(i) for i in range(5)], job_increments, NOW)
    b.record_jobs([_job(i) for i in range(3)], job_increments, NOW)
    b.record_jobs([_job(i) for i in range(6)], job_increments, NOW)
    assert _counter(a, "qpu_jobs_total") == 5 and _counter(b, "qpu_jobs_total") == 6
    a.add_counters([(name, LABELS, 0.0) for name in SHARED_COUNTERS])  # the runner registers its backends
    b.record_probe_run("simulated", "b1", "0", "", NOW, NOW + 1, "failed", "x", 300, 0.1, None, {},
                       [("qpu_probe_runs_total", LABELS, 1.0), ("qpu_probe_failures_total", LABELS, 1.0),
                        ("qpu_probe_shots_total", LABELS, 300.0)])
    assert _counter(a, "qpu_probe_runs_total") == 0
    assert a.refresh_shared_counters() is True
    assert {n: _counter(a, n) for n in SHARED_COUNTERS} == {n: _counter(b, n) for n in SHARED_COUNTERS}
    assert a.refresh_shared_counters() is False
    a.close()
    a = state.store(instance="replica-a")  # restart: same totals, the same jobs are not new
    assert _counter(a, "qpu_jobs_total") == 5 and _counter(a, "qpu_probe_runs_total") == 1
    assert a.record_jobs([_job(i) for i in range(7)], job_increments, NOW) == [_job(5), _job(6)]
    assert _counter(a, "qpu_jobs_total") == 7 and _counter(b, "qpu_jobs_total") == 6
    assert a.cursor("simulated", "b1", "jobs") is None  # cursors are per instance too
    # A replica without detector state of its own starts from the newest other one.
    b.save_drift_state('{"from": "b"}')
    assert a.load_drift_state() == ('{"from": "b"}', False)
    a.close()
    # An instance not seen for the retention period (a replaced pod) is forgotten.
    b.prune(time.time() + 1)
    with b.engine.connect() as conn:
        left = {r[0] for r in conn.exec_driver_sql("SELECT DISTINCT instance FROM counters")}
    assert left == {"replica-b", ""}
    assert _counter(state.store(instance="replica-a"), "qpu_jobs_total") is None
    b.close()


def _reserve_worker(target: str, password: str | None, backend: str, start, out) -> None:
    from qpu_exporter.store import Store

    store = Store(target, password=password, instance=f"w-{backend}")
    granted = []
    start.wait()
    for _ in range(6):
        rid, _cap = store.reserve_probe_budget("simulated", backend, 100, 1.0, time.time(), time.time() - 86400,
                                               (500, None, 1200, None))
        if rid is not None:
            granted.append(rid)
    store.close()
    out.put(granted)


def test_reservations_from_many_processes_hold_every_cap(state):
    """Six processes (two per backend, as replicas; three backends, as shards) race for budget:
    each backend gets exactly its cap (5 x 100 shots) until the global cap (12 x 100) binds."""
    state.store().close()  # migrate once, before the race
    ctx = multiprocessing.get_context("fork")  # no open connection to inherit
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_reserve_worker, args=(state.target, state.password, f"b{i % 3}", start, out))
             for i in range(6)]
    for p in procs:
        p.start()
    time.sleep(0.1)
    start.set()
    granted = [rid for _ in procs for rid in out.get(timeout=120)]
    for p in procs:
        p.join(30)
    store = state.store()
    used = [store.probe_budget_used("simulated", f"b{i}", 0) for i in range(3)]
    assert len(granted) == len(set(granted)) == 12
    assert used[0][2] == 1200 and all(u[0] <= 500 for u in used)
    store.close()


def _lease_worker(target: str, password: str | None, i: int, start, out) -> None:
    from qpu_exporter.store import Store

    store = Store(target, password=password, instance=f"l{i}")
    start.wait()
    out.put(store.acquire_probe_lease("simulated", "b1", f"holder-{i}", time.time(), 60))
    store.close()


def test_one_lease_among_racing_processes_and_renewal_only_by_its_holder(state):
    state.store().close()
    ctx = multiprocessing.get_context("fork")  # no open connection to inherit
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_lease_worker, args=(state.target, state.password, i, start, out)) for i in range(4)]
    for p in procs:
        p.start()
    time.sleep(0.1)
    start.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert sorted(results) == [False, False, False, True]
    store = state.store()
    with store.engine.connect() as conn:
        holder = conn.exec_driver_sql("SELECT holder FROM probe_leases").scalar_one()
    assert store.renew_probe_lease("simulated", "b1", holder, time.time(), 60)
    assert not store.renew_probe_lease("simulated", "b1", "someone-else", time.time(), 60)
    assert not store.acquire_probe_lease("simulated", "b1", "someone-else", time.time(), 60)
    assert store.acquire_probe_lease("simulated", "b1", "someone-else", time.time() + 61, 60)  # expired
    assert not store.renew_probe_lease("simulated", "b1", holder, time.time(), 60)
    store.close()


def test_the_migrated_schema_is_the_one_the_queries_use(state):
    from qpu_exporter.store import schema

    assert schema.HEAD == schema.head_of_scripts(), "schema.HEAD names the newest migration"
    state.store().close()
    url = state.target if state.kind == "postgresql" else f"sqlite:///{state.target}"
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"),
                           connect_args={"password": state.password} if state.password else {})
    insp = inspect(engine)
    for table in metadata.sorted_tables:
        # (SQLite reports a TEXT primary key of the released schema as nullable: its quirk.)
        cols = {c["name"]: c["nullable"] or c["name"] in table.primary_key for c in insp.get_columns(table.name)}
        assert cols == {c.name: c.nullable or c.primary_key for c in table.columns}, table.name
        assert insp.get_pk_constraint(table.name)["constrained_columns"] == [c.name for c in table.primary_key]
    assert set(insp.get_table_names()) == {t.name for t in metadata.sorted_tables} | {"alembic_version"}
    engine.dispose()


def test_faults_are_one_line_errors_without_secrets_or_parameters(state):
    store = state.store()
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE jobs")
    with pytest.raises(StorageError) as err:
        store.record_jobs([_job(1)], job_increments, NOW)
    assert "\n" not in str(err.value) and "job-1" not in str(err.value)
    assert _counter(store, "qpu_jobs_total") is None  # not recorded, so not counted
    store.close()
    store = state.store(instance="other")
    with store.engine.begin() as conn:  # as a newer release would leave it
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    store.close()
    with pytest.raises(StateError) as err:
        state.store()
    message = str(err.value)
    assert "\n" not in message and "newer qpu-exporter" in message and "0099" in message
    assert state.password is None or state.password not in message


def test_one_running_exporter_per_instance_name(pg_state):
    """A second exporter with the same instance name would share the first one's counters and
    job records: it is refused at start while the first runs, and welcome once it is gone."""
    first = pg_state.store(instance="replica-a")
    first.claim_instance()
    other = pg_state.store(instance="replica-b")
    other.claim_instance()  # another name: fine
    twin = pg_state.store(instance="replica-a")
    with pytest.raises(StateError) as err:
        twin.claim_instance()
    assert "'replica-a' is in use" in str(err.value) and "\n" not in str(err.value)
    first.close()
    twin.claim_instance()
    twin.keep_instance_claim()  # its session alive: nothing to do
    twin.close(), other.close()
