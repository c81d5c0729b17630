"""SIGKILL at random moments during polls: after every restart the state opens, no
acknowledged record is lost, nothing is counted twice and counters never go backwards. On the
SQLite file (20 cycles; set QPU_CRASH_CYCLES for a longer soak) and on PostgreSQL (a few: the
same code path, another engine)."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import defaultdict

from sqlalchemy import create_engine, inspect

from conftest import parse_samples, wait_until

CYCLES = {"sqlite": int(os.environ.get("QPU_CRASH_CYCLES", "20")), "postgresql": 3}
INSTANCE = "crash-test"
CONFIG = """
providers:
  - kind: simulated
    backends: [fake_fez]
    seed: 21
    speedup: 7200          # two simulated hours per second: jobs finish constantly
schedule: {calibration_interval: 0.3s, jobs_interval: 0.2s, probe_interval: 1s}
drift: {warmup: 10}
probes: {start_delay: 0s, targets_per_tick: 1}   # budget reservations and probe records get written too
state_path: STATE_PATH
"""
COUNTERS = ("qpu_jobs_total", "qpu_jobs_failed_total", "qpu_job_usage_seconds_total", "qpu_cost_usd_total")


def _db_state(state):
    if state.kind == "sqlite":
        engine = create_engine(f"sqlite:///{state.target}")
    else:
        engine = create_engine(state.target.replace("postgresql://", "postgresql+psycopg://"),
                               connect_args={"password": state.password})
    try:
        with engine.connect() as db:
            if state.kind == "sqlite":
                assert db.exec_driver_sql("PRAGMA quick_check").scalar() == "ok"
            counters = defaultdict(float)
            if not inspect(db).has_table("counters"):  # killed before its first open: nothing yet
                return counters, 0, 0, (0, 0), 0
            mine = (INSTANCE, "") if state.kind == "postgresql" else ("default", "")  # own and shared rows
            for instance, name, labels, value in db.exec_driver_sql("SELECT instance, name, labels, value FROM counters"):
                if instance in mine:
                    counters[(name, json.dumps(sorted(json.loads(labels))))] = value
            jobs = db.exec_driver_sql("SELECT count(*) FROM jobs").scalar()
            history = db.exec_driver_sql("SELECT count(*) FROM calibration").scalar()
            ledger = tuple(db.exec_driver_sql("SELECT count(*), coalesce(sum(shots), 0) FROM probe_ledger").one())
            probed = db.exec_driver_sql("SELECT coalesce(sum(shots), 0) FROM probe_runs").scalar()
    finally:
        engine.dispose()
    return counters, jobs, history, ledger, probed


def test_sigkill_cycles_lose_nothing(start_exporter, state):
    rng = random.Random(1234)
    cycles = CYCLES[state.kind]
    # Every 17th cycle lives until a probe finished (below). PostgreSQL runs too few cycles for
    # one: its probe ledger and records under SIGKILL are tested by test_state_replicas.py.
    probe_cycles = {c for c in range(cycles) if c % 17 == 16}
    env = {**state.env(), "QPU_EXPORTER_INSTANCE": INSTANCE} if state.kind == "postgresql" else {}
    previous: dict = {}
    prev_history = 0
    survived = 0
    acknowledged_cycles = 0
    prev_ledger_rows = 0
    for cycle in range(cycles):
        # Kill at a random moment from start-up on: during discovery, the first polls, the
        # steady stream of job and calibration writes, or the renderer's first pass.
        ex = (start_exporter(CONFIG, state_path=state.target, ready=False) if state.kind == "sqlite"
              else start_exporter(CONFIG, ready=False, env=env))
        # Every 17th cycle lives until a probe has finished (the first probe of a process
        # spends seconds synthesising Cliffords) and dies just after, while the next probe
        # reserves budget: probe records and ledger rows get killed too.
        if cycle in probe_cycles:
            wait_until(lambda: "probe succeeded" in ex.log(), 90, "a probe to finish")
            kill_at = time.monotonic() + rng.uniform(0.0, 1.5)
        elif cycles < 17 or cycle % 2:
            # Dies while data flows, soon after it first served: every cycle when there are few,
            # every other one otherwise (on a loaded machine start-up alone can outlast 3.5 s).
            wait_until(lambda: ex.get("/metrics", timeout=1)[0] == 200, 60, "the first scrape")
            kill_at = time.monotonic() + rng.uniform(0.0, 1.0)
        else:
            kill_at = time.monotonic() + rng.uniform(1.0, 3.5)
        acknowledged: dict[str, float] = {}
        while time.monotonic() < kill_at:
            try:  # acknowledged = served on /metrics, hence committed, before the kill
                text = ex.get("/metrics", timeout=1)[1].decode()
            except OSError:
                continue  # not listening yet
            for name, _labels, value in parse_samples(text) if text else ():
                if name in COUNTERS:
                    acknowledged[name] = value
        ex.proc.send_signal(signal.SIGKILL)
        ex.proc.wait(timeout=10)
        acknowledged_cycles += bool(acknowledged)

        counters, jobs, history, (ledger_rows, ledger_shots), probed_shots = _db_state(state)
        # The ledger never under-counts: every recorded probe's shots were reserved first,
        # and reservations are never lost.
        assert ledger_shots >= probed_shots, f"cycle {cycle}: ledger {ledger_shots} < probed {probed_shots}"
        assert ledger_rows >= prev_ledger_rows, f"cycle {cycle}: a budget reservation disappeared"
        prev_ledger_rows = ledger_rows
        jobs_total = counters.get(("qpu_jobs_total", json.dumps(sorted([["backend", "fake_fez"], ["provider", "simulated"]]))), 0.0)
        assert jobs_total == jobs, f"cycle {cycle}: {jobs} job rows but qpu_jobs_total={jobs_total}"
        for name, value in acknowledged.items():
            key = (name, json.dumps(sorted([["backend", "fake_fez"], ["provider", "simulated"]])))
            assert counters.get(key, 0.0) >= value - 1e-9, f"cycle {cycle}: acknowledged {name} lost"
        for key, value in previous.items():
            assert counters.get(key, 0.0) >= value - 1e-9, f"cycle {cycle}: {key} went backwards"
        assert history >= prev_history
        previous, prev_history = dict(counters), history
        survived += 1
    assert survived == cycles
    assert acknowledged_cycles >= cycles // 2, "most kills must land after the exporter served data"
    if probe_cycles:
        assert prev_ledger_rows > 0 and probed_shots > 0, "probe writes must have been exercised"
    assert previous[("qpu_jobs_total", json.dumps(sorted([["backend", "fake_fez"], ["provider", "simulated"]])))] > 50
