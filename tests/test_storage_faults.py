"""Storage faults: a full disk while running (SQLite's own SQLITE_FULL, via max_page_count)
keeps the exporter serving fresh data from memory with the failure counted, and loses no job
once space returns; a state path that cannot be written at start-up refuses to start."""

from __future__ import annotations

import os

import pytest

from conftest import run_cli, sample
from qpu_exporter.providers.simulated.config import SimulatedProviderConfig
from qpu_exporter.exposition import families
from qpu_exporter.providers.simulated.provider import SimulatedProvider
from qpu_exporter.scheduler import Poller
from qpu_exporter.store import StateError, Store
from qpu_exporter.textformat import render
from qpu_exporter.view import FleetView

ORIGIN = 1_800_000_000.0


class Clock:
    t = ORIGIN

    def __call__(self):
        return self.t


def _sqlite(store: Store, sql: str):
    """On the store's own SQLite connection (one per process), as the database engine sees it."""
    conn = store.engine.raw_connection()
    try:
        return conn.driver_connection.execute(sql).fetchone()
    finally:
        conn.close()


def _pragma(store: Store, pragma: str):
    return _sqlite(store, f"PRAGMA {pragma}")[0]


def _polled_fleet(store: Store, backend: str):
    """(view, poll_round, simulated provider): the real poller on one simulated backend, each
    round 30 s later (a simulated half day)."""
    clock = Clock()
    sim = SimulatedProvider(SimulatedProviderConfig(kind="simulated", backends=[backend], speedup=3600.0),
                            origin=ORIGIN, clock=clock)
    view = FleetView()
    poller = Poller([sim], store, view, clock=clock)
    poller.discover(sim)

    def poll_round():
        clock.t += 30
        for poll in (poller.poll_status, poller.poll_calibration, poller.poll_jobs):
            poll(sim, backend)

    return view, poll_round, sim


def test_disk_full_serves_from_memory_counts_failures_and_loses_no_job(tmp_path):
    store = Store(tmp_path / "state.db")
    view, poll_round, sim = _polled_fleet(store, "fake_fez")
    for _ in range(3):
        poll_round()
    jobs_before = store.job_count()
    assert jobs_before > 0

    # The disk fills up: no page may be added to the database any more (and none is free:
    # replacing a snapshot leaves its old pages on the freelist until reused).
    _sqlite(store, "VACUUM")
    pages = _pragma(store, "page_count")
    _pragma(store, f"max_page_count = {pages}")
    stale_t1 = view.copy().calibration[("simulated", "fake_fez")].qubits[0].values["t1"]
    for _ in range(4):
        poll_round()
    v = view.copy()
    assert store.write_failures > 0
    assert v.health[("simulated", "fake_fez", "calibration")].success, "the poll itself still worked"
    fresh_t1 = v.calibration[("simulated", "fake_fez")].qubits[0].values["t1"]
    assert fresh_t1.measured_at > stale_t1.measured_at, "fresh data served from memory"
    text = render(families(v, store.counters(), version="t", revision="t", daily_budget_usd=1)).decode()
    assert sample(text, "qpu_exporter_state_write_failures_total") == store.write_failures
    assert store.job_count() == jobs_before, "nothing could be written"

    # Space comes back: the jobs finished meanwhile are recorded and counted exactly once.
    _pragma(store, "max_page_count = 1073741823")
    poll_round()
    produced = {j.job_id for j in sim.jobs("fake_fez", None)}
    recorded = store.job_ids("simulated", "fake_fez")
    assert produced <= recorded
    total = sum(v for (n, _), v in store.counters().items() if n == "qpu_jobs_total")
    assert total == store.job_count()
    store.close()


def test_unwritable_state_path_refuses_to_start_with_one_line(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    r = run_cli("serve", "--web.listen-address", "127.0.0.1:0",
                env={"QPU_EXPORTER_STATE_PATH": str(blocker / "state.db")}, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "state file" in lines[0] and str(blocker) in lines[0], r.stderr
    assert os.path.isfile(blocker)


def test_postgresql_going_away_and_back_serves_from_memory_and_loses_no_job(postgres):
    """The database server stops (as in a crash or a restart) under a running poller: polls
    keep serving fresh data from memory with the failures counted, nothing raises out of the
    poller, and once the server is back the jobs finished meanwhile are counted exactly once."""
    cluster = postgres  # the session's server: started again below whatever happens
    try:
        url = cluster.create_database()
        store = Store(url, password=cluster.password, instance="primary")
        store.claim_instance()
        view, poll_round, sim = _polled_fleet(store, "fake_manila")
        poll_round()
        jobs_before = store.job_count()
        assert jobs_before > 0
        cluster.stop("immediate")
        stale_t1 = view.copy().calibration[("simulated", "fake_manila")].qubits[0].values["t1"]
        for _ in range(3):
            poll_round()
        v = view.copy()
        assert store.write_failures >= 3
        assert v.health[("simulated", "fake_manila", "jobs")].success, "the provider poll itself worked"
        assert v.calibration[("simulated", "fake_manila")].qubits[0].values["t1"].measured_at > stale_t1.measured_at
        text = render(families(v, store.counters(), version="t", revision="t", daily_budget_usd=1)).decode()
        assert sample(text, "qpu_exporter_state_write_failures_total") == store.write_failures

        cluster.start()
        store.keep_instance_claim()  # the restart ended the claim's session: taken again
        twin = Store(url, password=cluster.password, instance="primary")
        with pytest.raises(StateError, match="in use"):
            twin.claim_instance()
        twin.close()
        poll_round()
        produced = {j.job_id for j in sim.jobs("fake_manila", None)}
        assert produced <= store.job_ids("simulated", "fake_manila")
        total = sum(v for (n, _), v in store.counters().items() if n == "qpu_jobs_total")
        assert total == store.job_count() > jobs_before
        store.close()
    finally:
        if not cluster.running():
            cluster.start()
