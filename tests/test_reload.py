"""Config reload of the real exporter: SIGHUP and POST /-/reload."""

from __future__ import annotations

import signal
import urllib.request

from conftest import sample, wait_until
from qpu_exporter.config import Config
from qpu_exporter.reload import restart_only_changes

CONFIG = """
providers:
  - kind: simulated
    backends: [{backends}]
    seed: 3
    speedup: 600
schedule: {{calibration_interval: 1s, jobs_interval: 1s}}
probes: {{enabled: false}}
{extra}
"""


def _post(url: str) -> tuple[int, str]:
    req = urllib.request.Request(url, method="POST", data=b"")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _backends(text: str) -> set[str]:
    from conftest import parse_samples

    return {lab["backend"] for n, lab, _ in parse_samples(text) if n == "qpu_backend_info"}


def test_sighup_adds_a_backend_and_a_bad_config_keeps_the_running_one(start_exporter, tmp_path):
    cfg = tmp_path / "qpu.yaml"
    cfg.write_text(CONFIG.format(backends="fake_manila", extra=""))
    ex = start_exporter(extra_args=["--config", str(cfg)])
    text = ex.metrics()
    assert _backends(text) == {"fake_manila"}
    assert sample(text, "qpu_exporter_config_last_reload_successful") == 1
    started_at = sample(text, "qpu_exporter_config_last_reload_success_timestamp_seconds")

    # SIGHUP with a second backend: it is polled and served without a restart.
    cfg.write_text(CONFIG.format(backends="fake_manila, fake_lima", extra=""))
    ex.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: _backends(ex.metrics()) == {"fake_manila", "fake_lima"}, 60, "fake_lima served after SIGHUP")
    wait_until(lambda: sample(ex.metrics(), "qpu_exporter_collector_success", backend="fake_lima",
                              collector="calibration") == 1, 60, "fake_lima polled")
    text = ex.metrics()
    assert sample(text, "qpu_exporter_config_last_reload_successful") == 1
    assert sample(text, "qpu_exporter_config_last_reload_success_timestamp_seconds") > started_at
    assert ex.proc.poll() is None and "config reloaded" in ex.log()

    # A bad file through POST /-/reload: 500 naming the key, the running config kept and polled.
    cfg.write_text(CONFIG.format(backends="fake_manila", extra="schedule_typo: 1"))
    code, body = _post(ex.url + "/-/reload")
    assert code == 500 and "schedule_typo: unknown key" in body
    wait_until(lambda: sample(ex.metrics(), "qpu_exporter_config_last_reload_successful") == 0, 60,
               "the failed reload exported")
    text = ex.metrics()
    assert _backends(text) == {"fake_manila", "fake_lima"}
    before = sample(text, "qpu_exporter_collector_last_success_timestamp_seconds", backend="fake_lima", collector="status")
    wait_until(lambda: sample(ex.metrics(), "qpu_exporter_collector_last_success_timestamp_seconds",
                              backend="fake_lima", collector="status") > before, 60, "polls going on")

    # What needs a restart is refused with a message, the running config kept.
    cfg.write_text(CONFIG.format(backends="fake_manila", extra="shard: 0/2"))
    code, body = _post(ex.url + "/-/reload")
    assert code == 500 and "shard: cannot change without a restart" in body
    assert ex.get("/-/reload")[0] == 405

    # A good file again: the removed backend is no longer served.
    cfg.write_text(CONFIG.format(backends="fake_manila", extra=""))
    code, body = _post(ex.url + "/-/reload")
    assert code == 200, body
    wait_until(lambda: _backends(ex.metrics()) == {"fake_manila"}
               and sample(ex.metrics(), "qpu_exporter_config_last_reload_successful") == 1, 60,
               "fake_lima gone after its removal")
    from conftest import parse_samples

    # Only its counters stay (totals kept in the state file, as after a restart).
    left = {n for n, lab, _ in parse_samples(ex.metrics()) if lab.get("backend") == "fake_lima"}
    assert all(n.endswith(("_total", "_bucket", "_count", "_sum")) for n in left), left
    assert ex.get("/-/ready")[0] == 200
    assert "Traceback" not in ex.log()


def test_restart_only_keys_are_named():
    running = Config.model_validate({"state_path": "/a.db"})
    assert restart_only_changes(running, Config.model_validate({"state_path": "/b.db"})) == ["state_path"]
    assert restart_only_changes(running, Config.model_validate({"state_path": "/a.db", "shard": "0/2"})) == ["shard"]
    assert restart_only_changes(running, Config.model_validate(
        {"state_path": "/a.db", "schedule": {"jobs_interval": "5m"}, "probes": {"budget": {"usd_per_day": 1}}})) == []


def test_drift_series_of_a_removed_backend_are_left_out(tmp_path):
    """After a reload the detectors still hold a removed backend's series; what is served
    keeps only the backends the view knows."""
    from qpu_exporter.app import only_backends
    from qpu_exporter.drift import DriftSettings
    from qpu_exporter.drift_feed import DriftFeed
    from qpu_exporter.model import CalibrationSnapshot, Measurement, QubitCalibration
    from qpu_exporter.store import Store

    feed = DriftFeed(DriftSettings(warmup=10), Store(tmp_path / "s.db"))
    for i in range(15):
        for backend in ("kept", "removed"):
            snap = CalibrationSnapshot("simulated", backend, 1e9 + i, 1e9 + i)
            snap.qubits = [QubitCalibration(0, {"t1": Measurement(1e-4 * (1 + 0.01 * (i % 3)), 1e9 + i)})]
            feed.on_calibration(snap)
    served = {s.labels["backend"] for fam in feed.families() for s in fam.samples}
    assert served == {"kept", "removed"}
    kept = {s.labels["backend"] for fam in only_backends(feed.families(), {("simulated", "kept")}) for s in fam.samples}
    assert kept == {"kept"}


def test_a_reload_rebuilds_the_workload_book_from_the_new_block_and_the_kept_set(tmp_path):
    """``workloads`` is reloadable: the book follows the new block (tag, max, budgets), values
    the state already keeps stay kept, and removing the block removes the per-workload series."""
    from conftest import http_get
    from qpu_exporter.aggregates import job_increments
    from qpu_exporter.app import Exporter
    from qpu_exporter.config import load_config
    from qpu_exporter.model import JOB_DONE, JobRecord
    from qpu_exporter.reload import Reloader
    from qpu_exporter.store import Store
    from qpu_exporter.workloads import WorkloadBook

    state = tmp_path / "s.db"
    earlier = Store(state)  # an earlier run kept "qa"
    earlier.record_jobs([JobRecord("simulated", "fake_manila", "old", JOB_DONE, 1, 2, None, None, 1.0, 1.0,
                                   tags=(("team", "qa"),))], job_increments, 1.0, workloads=WorkloadBook("team", 5))
    earlier.close()
    cfg = tmp_path / "qpu.yaml"
    base = CONFIG.format(backends="fake_manila", extra=f"state_path: {state}")
    cfg.write_text(base + "workloads: {max: 5, budgets: {chem: {usd_per_day: 5}}}\n")
    ex = Exporter(load_config(cfg), ("127.0.0.1", 0))
    ex.reloader = reloader = Reloader(ex, lambda: load_config(cfg))
    ex.start()

    def served() -> str:
        return http_get(f"http://127.0.0.1:{ex.address[1]}/metrics")[1].decode()

    try:
        assert set(ex.workloads.kept()) == {"qa", "chem"}
        wait_until(lambda: 'qpu_workload_cost_budget_daily_usd{workload="chem"} 5.0' in served(), 60, "chem budget")
        cfg.write_text(base + "workloads: {tag: project, max: 1, budgets: {finance: {usd_per_day: 7}}}\n")
        assert reloader.reload() == (True, "config reloaded")
        book = ex.workloads
        assert ex.poller.workloads is book and (book.tag, book.max_values) == ("project", 1)
        assert {"qa", "finance"} <= set(book.kept())  # kept stays kept, whatever max says now
        wait_until(lambda: 'qpu_workload_cost_budget_daily_usd{workload="finance"} 7.0' in served(), 60,
                   "the new budget served")
        assert 'workload="chem"} 5.0' not in served()
        cfg.write_text(base)
        assert reloader.reload() == (True, "config reloaded")
        assert ex.workloads is None and ex.poller.workloads is None
        wait_until(lambda: "qpu_workload_" not in served(), 60, "no per-workload series without the block")
    finally:
        ex.stop()
