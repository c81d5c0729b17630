"""State written by the released exporter (tests/fixtures/state_v1, made by commit a391094, not
by this code) upgrades in place with nothing lost, is served at once, and migrate-state copies
it into PostgreSQL whole."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

from conftest import sample
from qpu_exporter.cli import main
from qpu_exporter.drift_feed import DriftFeed
from qpu_exporter.drift import DriftSettings
from qpu_exporter.store import Store, snapshot_from_dict

FIXTURE = Path(__file__).parent / "fixtures" / "state_v1"


def _released(path: Path) -> dict:
    """The fixture's contents, read with plain sqlite3 in the released schema."""
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)  # leaves no -shm/-wal beside the fixture
    try:
        return {
            "meta": dict(db.execute("SELECT key, value FROM meta")),
            "calibration": sorted(db.execute(
                "SELECT provider, backend, target, quantity, measured_at, value FROM calibration")),
            "jobs": {(p, b): {j for (j,) in db.execute("SELECT job_id FROM jobs WHERE provider=? AND backend=?", (p, b))}
                     for p, b in db.execute("SELECT DISTINCT provider, backend FROM jobs")},
            "counters": {(n, tuple(tuple(x) for x in json.loads(lab))): v
                         for n, lab, v in db.execute("SELECT name, labels, value FROM counters")},
            "cursors": {(p, b, n): v for p, b, n, v in db.execute("SELECT provider, backend, name, value FROM cursors")},
            "latest": {(p, b): json.loads(v) for p, b, v in db.execute("SELECT provider, backend, payload FROM latest")},
            "ledger": {(p, b): (float(s), u) for p, b, s, u in db.execute(
                "SELECT provider, backend, sum(shots), sum(usd) FROM probe_ledger GROUP BY provider, backend")},
            "runs": {i: json.loads(r) for i, r in db.execute("SELECT id, record FROM probe_runs")},
        }
    finally:
        db.close()


def _assert_keeps(store: Store, old: dict) -> None:
    assert sorted(store.calibration_history()) == old["calibration"]
    for (p, b), ids in old["jobs"].items():
        assert store.job_ids(p, b) == ids
    counters = store.counters()
    for key, value in old["counters"].items():
        assert counters[key] == value, key
    for (p, b, n), value in old["cursors"].items():
        assert store.cursor(p, b, n) == value
    for (p, b), payload in old["latest"].items():
        assert store.latest_calibration(p, b) == snapshot_from_dict(payload)
    for (p, b), (shots, usd) in old["ledger"].items():
        used = store.probe_budget_used(p, b, 0)
        assert used[0] == shots and abs(used[1] - usd) < 1e-9
    for run_id, record in old["runs"].items():
        assert store.probe_run(run_id)["record"] == record
    assert {r["id"] for r in store.latest_probe_results()} <= set(old["runs"])
    for key in ("simulation_origin", *(k for k in old["meta"] if k.startswith("probe_rotation:"))):
        assert store.meta(key) == old["meta"][key]
    saved = store.load_drift_state()
    assert saved == (old["meta"]["drift_monitor_state"], True)
    feed = DriftFeed(DriftSettings(warmup=10), store)
    assert len(feed.monitor) > 0 and sum(r.count for r in feed.monitor.alarms_total()) > 0


def test_a_released_state_file_upgrades_in_place_keeps_everything_and_is_served(tmp_path, start_exporter):
    old = _released(FIXTURE / "state.db")
    # The fixture is what it claims: the released schema with every kind of state in it.
    assert old["meta"]["schema_version"] == "1" and "drift_monitor_state" in old["meta"]
    assert len(old["calibration"]) > 1000 and old["jobs"] and old["runs"] and old["ledger"]
    path = tmp_path / "state.db"
    shutil.copy(FIXTURE / "state.db", path)

    store = Store(path)
    assert store.meta("schema_version") == "2"
    _assert_keeps(store, old)
    store.close()
    again = Store(path)  # at the newest revision: opening again changes nothing
    _assert_keeps(again, old)
    again.close()

    # The fixture's config, serving only (a first probe's seconds of qiskit imports would only
    # delay readiness here).
    config = ((FIXTURE / "config.yaml").read_text().replace("/tmp/fixture-make/state-v1.db", "STATE_PATH")
              .replace("probes: {", "probes: {enabled: false, "))
    assert "enabled: false" in config
    ex = start_exporter(config, state_path=path)
    first = ex.metrics()
    for (name, labels), value in old["counters"].items():
        if name in ("qpu_jobs_total", "qpu_cost_usd_total", "qpu_probe_runs_total"):
            assert sample(first, name, **dict(labels)) >= value, (name, labels)


def _cli(capsys, *args: str):
    """The command line in this process (its entry point, not a copy of it): (code, out, err)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_migrate_state_copies_everything_into_an_empty_database_only(tmp_path, pg_state, capsys, monkeypatch):
    old = _released(FIXTURE / "state.db")
    path = tmp_path / "state.db"
    shutil.copy(FIXTURE / "state.db", path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    monkeypatch.setenv("QPU_EXPORTER_STATE_PASSWORD", pg_state.password)

    code, out, err = _cli(capsys, "migrate-state", "--from", str(path), "--to", pg_state.target)
    assert code == 0, err
    assert f"{len(old['calibration'])} calibration" in out and pg_state.password not in out
    # The source was read, never written (it may belong to a running exporter of any release).
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest

    store = pg_state.store(instance="default")
    _assert_keeps(store, old)
    # New probe records and reservations continue after the copied ids.
    assert store.record_probe_run("simulated", "fake_lagos", "0", "", 1, 2, "ok", "", 1, 0.0, None, {}) == max(old["runs"]) + 1
    store.close()

    code, _, err = _cli(capsys, "migrate-state", "--from", str(path), "--to", pg_state.target)
    assert code == 2 and err.count("\n") == 1 and "is not empty" in err, err
    secret = pg_state.target.replace("qpu@", f"qpu:{pg_state.password}@")
    code, _, err = _cli(capsys, "migrate-state", "--from", str(path), "--to", secret)
    assert code == 2 and err.count("\n") == 1 and "password" in err and pg_state.password not in err
    code, _, err = _cli(capsys, "migrate-state", "--from", str(tmp_path / "nope.db"), "--to", pg_state.target)
    assert code == 2 and "no such state file" in err


def test_pending_usage_of_an_interim_build_becomes_unknown_again(tmp_path):
    """Exporters built between the two releases added job_usage_unknown to the released schema
    and stored 0 for usage and cost they did not know: the upgrade keeps the pending state
    (this instance's) and makes those zeros NULL again."""
    path = tmp_path / "state.db"
    shutil.copy(FIXTURE / "state.db", path)
    db = sqlite3.connect(path)
    (p, b, pending_id), (_, _, unknown_id) = db.execute("SELECT provider, backend, job_id FROM jobs LIMIT 2").fetchall()
    db.executescript("""
        CREATE TABLE job_usage_unknown (
            provider TEXT NOT NULL, backend TEXT NOT NULL, job_id TEXT NOT NULL, state TEXT NOT NULL,
            reason TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (provider, backend, job_id));""")
    db.executemany("INSERT INTO job_usage_unknown VALUES (?, ?, ?, ?, ?, ?)",
                   [(p, b, pending_id, "pending", "", 123.0), (p, b, unknown_id, "unknown", "unpriced_device", 456.0)])
    db.execute("UPDATE jobs SET usage_seconds = 0, cost_usd = 0 WHERE job_id IN (?, ?)", (pending_id, unknown_id))
    db.commit()
    usage_of_unknown = db.execute("SELECT usage_seconds FROM jobs WHERE job_id = ?", (unknown_id,)).fetchone()[0]
    db.close()

    store = Store(path)
    assert store.oldest_pending_usage(p, b) == 123.0
    with store.engine.connect() as conn:
        got = dict(conn.exec_driver_sql("SELECT job_id, usage_seconds FROM jobs WHERE cost_usd IS NULL").all())
        instances = set(conn.exec_driver_sql("SELECT instance FROM job_usage_unknown").scalars())
    assert got == {pending_id: None, unknown_id: usage_of_unknown} and instances == {"default"}
    store.close()
