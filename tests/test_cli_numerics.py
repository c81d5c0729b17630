"""rb-fit and backtest through the real command line: the documented contracts (README, docs/rb.md, docs/drift.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli


def _rb_doc(p=0.995, n=1, seed=1, interleaved_p=None):
    rng = np.random.default_rng(seed)
    seqs = []
    for interleaved, pp in ((False, p), (True, interleaved_p)):
        if pp is None:
            continue
        for m in (1, 20, 50, 100, 200, 400):
            for _ in range(8):
                survival = 0.5 * pp**m + 0.5 if n == 1 else 0.75 * pp**m + 0.25
                k = int(rng.binomial(200, survival))
                zeros = "0" * n
                seqs.append({"length": m, "counts": {zeros: k, "1" * n: 200 - k}, "interleaved": interleaved})
    return {"num_qubits": n, "sequences": seqs}


def test_rb_fit_recovers_alpha_and_reports_interleaved():
    doc = _rb_doc(p=0.995, interleaved_p=0.995 * 0.998)
    r = run_cli("rb-fit", "-", input=json.dumps(doc))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["alpha"] == pytest.approx(0.995, abs=4 * out["alpha_stderr"] + 1e-4)
    assert out["epc"] == pytest.approx((1 - out["alpha"]) / 2)
    assert out["epc_stderr"] > 0
    inter = out["interleaved"]
    assert inter["alpha_c"] == pytest.approx(0.998, abs=5 * inter["gate_error_stderr"] * 2 + 1e-4)
    lo, hi = inter["systematic_bounds"]
    assert lo <= inter["gate_error"] <= hi


@pytest.mark.parametrize(
    "doc, where",
    [
        ('{"num_qubits": 3, "sequences": []}', "num_qubits"),
        ('{"num_qubits": 1, "sequences": [{"length": 1, "counts": [1, 2]}]}', "sequences[0].counts"),
        ('{"num_qubits": 1}', "sequences"),
        ('{"num_qubits": 1, "sequences": [{"length": -1, "counts": {"0": 1}}]}', "sequences[0].length"),
        ('{"num_qubits": 1, "sequences": ', "invalid JSON"),
    ],
)
def test_rb_fit_malformed_input_exits_2_with_one_line(doc, where):
    r = run_cli("rb-fit", "-", input=doc)
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and where in lines[0], r.stderr


def test_rb_fit_without_decay_is_a_failed_fit_not_a_number():
    doc = {"num_qubits": 1, "sequences": [{"length": m, "counts": {"0": 100, "1": 0}} for m in (1, 10, 100, 1000) for _ in range(3)]}
    r = run_cli("rb-fit", "-", input=json.dumps(doc))
    assert r.returncode == 1 and "fit failed" in r.stderr and not r.stdout.strip()


def test_backtest_finds_a_step_and_reports_contract_fields(tmp_path):
    rng = np.random.default_rng(4)
    rows = ["timestamp,series,value"]
    for i in range(400):
        level = 1e-4 * (0.3 if i >= 300 else 1.0)
        rows.append(f"{1_700_000_000 + 3600 * i},t1:q3,{level * np.exp(0.1 * rng.standard_normal())}")
        rows.append(f"2023-11-14T{i % 24:02d}:00:00Z,readout_error:q1,{0.02 * np.exp(0.1 * rng.standard_normal())}")
    (tmp_path / "h.csv").write_text("\n".join(rows) + "\n")
    r = run_cli("backtest", str(tmp_path / "h.csv"), "--warmup", "50")  # default ARL0
    assert r.returncode == 0, r.stderr
    alarms = json.loads(r.stdout)["alarms"]
    t1 = [a for a in alarms if a["series"] == "t1:q3"]
    assert t1 and 300 <= t1[0]["index"] <= 306 and t1[0]["direction"] == "down"
    assert set(t1[0]) == {"series", "index", "timestamp", "detector", "direction"}
    assert t1[0]["detector"] in ("ewma", "cusum")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("time,series,value\n1,a,1\n", "line 1"),
        ("timestamp,series,value\n1,t1:q0,1e-4\n2,t1:q0\n", "line 3"),
        ("timestamp,series,value\n1,t1:q0,1e-4\nyesterday,t1:q0,1e-4\n", "line 3"),
    ],
)
def test_backtest_malformed_csv_names_the_line(tmp_path, text, expected):
    r = run_cli("backtest", "-", input=text)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], r.stderr


def test_export_history_round_trips_into_backtest(start_exporter, tmp_path):
    from conftest import wait_until

    ex = start_exporter("""
providers:
  - kind: simulated
    backends: [fake_fez]
    speedup: 3600
    measurement_interval: 1h
schedule: {calibration_interval: 0.5s, jobs_interval: 5s}
state_path: STATE_PATH
""")
    wait_until(lambda: ex.log().count("collector=calibration") >= 6, 60, "a few calibration polls")
    ex.stop()
    r = run_cli("export-history", "--backend", "fake_fez", env={"QPU_EXPORTER_STATE_PATH": str(ex.state_path)})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "timestamp,series,value"
    series = {line.split(",")[1] for line in lines[1:]}
    assert {"t1:q0", "t2:q0", "readout_error:q0", "gate_error:cz:0_1"} <= series
    bt = run_cli("backtest", "-", "--warmup", "10", input=r.stdout)
    assert bt.returncode == 0, bt.stderr
    assert "alarms" in json.loads(bt.stdout)
