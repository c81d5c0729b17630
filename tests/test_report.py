"""`qpu-exporter report` renders the three PNGs from a real state file."""

from __future__ import annotations

import sqlite3

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

    from qpu_exporter.drift.backtest import Row, run_backtest

    def t1_of_q7() -> list[tuple[float, float]]:  # hourly measurements stored so far
        db = sqlite3.connect(f"file:{ex.state_path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute("SELECT measured_at, value FROM calibration WHERE backend='fake_fez'"
                              " AND target='q7' AND quantity='t1' ORDER BY measured_at").fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return []
        finally:
            db.close()

    def alarms() -> list[dict]:
        rows = [Row(i, t, "t1:q7", v) for i, (t, v) in enumerate(t1_of_q7())]
        return run_backtest(rows, warmup=10)["alarms"] if len(rows) > 10 else []

    # The drop comes at 15 simulated hours; the detectors need a few points after it.
    wait_until(lambda: "probe succeeded" in ex.log() and alarms(), 120, "a probe and the T1 drop's alarm")
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
    found = alarms()
    assert found and found[0]["direction"] == "down", found

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


def test_job_success_interval_is_the_wilson_score_interval():
    """The workloads page's interval (statsmodels' proportion_confint) against the closed form of
    Wilson (1927), computed here independently; unlike ratio +- standard error it is never zero
    wide at 0 or 100 % success, and it is narrower for more jobs at the same ratio."""
    import math

    from scipy.stats import norm

    from qpu_exporter.report import success_interval

    def wilson(successes, n, level=0.95):
        z = norm.ppf(1 - (1 - level) / 2)
        p = successes / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return centre - half, centre + half

    for jobs, failed in [(3, 0), (3, 3), (10, 1), (57, 4), (2000, 13)]:
        assert success_interval(jobs, failed) == pytest.approx(wilson(jobs - failed, jobs), abs=1e-12)
    lo, hi = success_interval(3, 0)
    assert hi == pytest.approx(1.0) and lo < 0.5  # 3 of 3: far from proving 99 %
    assert success_interval(3, 3)[0] == pytest.approx(0.0, abs=1e-15) and success_interval(3, 3)[1] > 0.3
    assert success_interval(300, 30)[1] - success_interval(300, 30)[0] < success_interval(30, 3)[1] - success_interval(30, 3)[0]
    assert success_interval(20, 5, level=0.99)[0] < success_interval(20, 5)[0]
