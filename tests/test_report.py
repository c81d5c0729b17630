"""`qpu-exporter report` renders the three PNGs from a real state file."""

from __future__ import annotations

from conftest import run_cli, wait_until

CONFIG = """
providers:
  - kind: simulated
    backends: [fake_fez]
    seed: 4
    speedup: 3600
    measurement_interval: 1h
    dynamics: calm
    incidents:
      - {backend: fake_fez, qubit: 7, kind: t1_drop, factor: 0.2, at: 15h, duration: 30d}
schedule: {calibration_interval: 0.5s, jobs_interval: 1s, probe_interval: 1h}
drift: {warmup: 10}
probes: {start_delay: 0s}
state_path: STATE_PATH
"""


def test_report_renders_fleet_t1_with_alarms_and_rb_decay(start_exporter, tmp_path):
    ex = start_exporter(CONFIG)
    wait_until(lambda: "probe succeeded" in ex.log() and ex.log().count("collector=calibration") >= 40, 90,
               "a probe and ~20 simulated hours of calibration")
    ex.stop()
    out = tmp_path / "report"
    env = {"QPU_EXPORTER_STATE_PATH": str(ex.state_path)}
    r = run_cli("report", "--out", str(out), "--backend", "fake_fez", "--qubit", "7", env=env)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["fleet_summary.png", "probe_rb_decay.png", "t1_fake_fez_q7.png"]
    for p in out.iterdir():
        data = p.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000, p
    # The T1 plot marks the alarms the injected drop raised (legend entries name them).
    from qpu_exporter.drift import DriftSettings
    from qpu_exporter.drift.backtest import Row, run_backtest
    from qpu_exporter.store import Store

    store = Store(ex.state_path)
    pts = [(t, v) for *_, tg, q, t, v in store.calibration_history("simulated", "fake_fez") if tg == "q7" and q == "t1"]
    store.close()
    alarms = run_backtest([Row(i, t, "t1:q7", v) for i, (t, v) in enumerate(pts)], warmup=10)["alarms"]
    assert alarms and alarms[0]["direction"] == "down"

    bad = run_cli("report", "--out", str(out), "--qubit", "3", env=env)
    assert bad.returncode == 2 and "--qubit needs --backend" in bad.stderr
    missing = run_cli("report", "--out", str(out), env={"QPU_EXPORTER_STATE_PATH": str(tmp_path / "none.db")})
    assert missing.returncode == 2 and "does not exist" in missing.stderr
