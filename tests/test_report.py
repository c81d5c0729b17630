"""`qpu-exporter report` renders the three PNGs from a real state file."""

from __future__ import annotations

import pytest

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


def test_fleet_summary_median_is_over_every_qubits_value_in_force(tmp_path):
    """One qubit re-measured alone (a T1 dip watched hourly) must not drag the median to its
    own value: the median is over every qubit's latest measurement, as Prometheus shows it."""
    from qpu_exporter.model import CalibrationSnapshot, GateCalibration, Measurement, QubitCalibration
    from qpu_exporter.report import summary_series
    from qpu_exporter.store import Store

    store = Store(tmp_path / "s.db")
    t0 = 1_700_000_000.0
    t1s = {q: (270 + q) * 1e-6 for q in range(20)}  # median 279.5 µs
    full = CalibrationSnapshot("simulated", "fake_x", t0, t0)
    full.qubits = [QubitCalibration(q, {"t1": Measurement(v, t0)}) for q, v in t1s.items()]
    full.gates = [GateCalibration("cz", (q, q + 1), Measurement(0.004 + q * 1e-4, t0)) for q in range(19)]
    store.record_calibration(full)
    for hour in range(1, 6):  # qubit 3 and its coupler re-measured alone, far off
        t = t0 + 3600 * hour
        alone = CalibrationSnapshot("simulated", "fake_x", t, t)
        alone.qubits = [QubitCalibration(3, {"t1": Measurement(40e-6, t)})]
        alone.gates = [GateCalibration("cz", (3, 4), Measurement(0.2, t)),
                       GateCalibration("cz", (5, 6), Measurement(1.0, t))]  # dead coupler: left out
        store.record_calibration(alone)
    series = summary_series(store)
    store.close()
    times, medians = series["t1"][("simulated", "fake_x")]
    assert len(times) == 6 and all(abs(m - 279.5e-6) < 1e-12 for m in medians), medians
    times, gate_medians = series["gate_error"][("simulated", "fake_x")]
    assert gate_medians[0] == pytest.approx(0.004 + 9 * 1e-4)
    # 0.2 replaces a low value and the dead coupler leaves: the median moves by one rank only.
    assert all(0.0048 < m < 0.0052 for m in gate_medians[1:]), gate_medians
