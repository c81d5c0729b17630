"""Backtest: CSV parsing (errors name the line), same results as the monitor, step detection."""

import numpy as np
import pytest

from qpu_exporter.drift.backtest import DriftInputError, parse_csv, run_backtest, run_backtest_detailed
from qpu_exporter.drift.monitor import DriftMonitor, DriftSettings


def _csv(rows):
    return "timestamp,series,value\n" + "".join(f"{t},{s},{v}\n" for t, s, v in rows)


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("", 1, "header"),
        ("time,series,value\n1,t1:q0,1e-4\n", 1, "header"),
        ("timestamp,series,value\n1,t1:q0,1e-4\n2,t1:q0\n", 3, "3 columns"),
        ("timestamp,series,value\n1,t1:q0,1e-4\n2,t1:q0,1,2\n", 3, "3 columns"),
        ("timestamp,series,value\n1,t1:q0,1e-4\n2,t1:q0,1e-4\n3,t1:q0,1e-4\n4,t1:q0,1e-4\n5,t1:q0,1e-4\n6,t1:q0,abc\n", 7, "value 'abc' is not a number"),
        ("timestamp,series,value\nyesterday,t1:q0,1e-4\n", 2, "timestamp 'yesterday'"),
        ("timestamp,series,value\n2024-13-01T00:00:00Z,t1:q0,1e-4\n", 2, "timestamp"),
        ("timestamp,series,value\n1,,1e-4\n", 2, "series"),
    ],
)
def test_malformed_csv_names_the_line(text, line, fragment):
    with pytest.raises(DriftInputError) as info:
        parse_csv(text)
    msg = str(info.value)
    assert msg.startswith(f"line {line}: ") and fragment in msg and "\n" not in msg


def test_timestamps_unix_and_iso():
    rows = parse_csv(_csv([
        ("1700000000", "t1:q0", "1e-4"),
        ("2023-11-14T22:13:21Z", "t1:q0", "1e-4"),
        ("2023-11-15T00:13:22+02:00", "t1:q0", "1e-4"),
        ("1700000003.5", "t1:q0", "1e-4"),
    ]))
    assert [r.timestamp for r in rows] == [1700000000.0, 1700000001.0, 1700000002.0, 1700000003.5]
    assert rows[0].line == 2 and rows[-1].line == 5


def test_empty_input_is_fine():
    assert run_backtest(parse_csv("timestamp,series,value\n")) == {"alarms": []}


def test_step_detected_index_direction_and_same_as_monitor():
    rng = np.random.default_rng(21)
    n, change = 300, 200
    t1 = 100e-6 * np.exp(0.05 * rng.standard_normal(n))
    t1[change:] *= 0.75
    ro = 1 / (1 + np.exp(-(-4.0 + 0.05 * rng.standard_normal(n))))
    rows = []
    for i in range(n):
        rows.append((1.7e9 + 60 * i, "t1:q3", repr(float(t1[i]))))
        rows.append((1.7e9 + 60 * i, "readout_error:q3", repr(float(ro[i]))))
    out = run_backtest(parse_csv(_csv(rows)), arl0=1e4, warmup=100)
    t1_alarms = [a for a in out["alarms"] if a["series"] == "t1:q3"]
    first = {}
    for a in t1_alarms:
        first.setdefault(a["detector"], a)
    assert set(first) == {"ewma", "cusum"}
    for a in first.values():
        assert a["direction"] == "down" and change <= a["index"] <= change + 4
        assert a["timestamp"] == 1.7e9 + 60 * a["index"]
    assert set(out["alarms"][0]) == {"series", "index", "timestamp", "detector", "direction"}
    # the exact same DriftMonitor code path gives the same alarms
    mon = DriftMonitor(DriftSettings(arl0=1e4, warmup=100))
    direct = []
    for i in range(n):
        for s, v in (("t1:q3", t1[i]), ("readout_error:q3", ro[i])):
            direct += [(a.key[2], a.index, a.detector, a.direction) for a in mon.observe(("backtest", "backtest", s), float(v), 1.7e9 + 60 * i)]
    assert sorted(direct) == sorted((a["series"], a["index"], a["detector"], a["direction"]) for a in out["alarms"])


def test_rejected_rows_keep_their_index_and_are_reported():
    rows = [(i, "t1:q0", "1e-4" if i != 5 else "0") for i in range(20)]
    out, rejected = run_backtest_detailed(parse_csv(_csv(rows)), warmup=10)
    assert rejected == [{"line": 7, "series": "t1:q0", "reason": "out_of_domain"}]
    assert out == {"alarms": []}
    with pytest.raises(ValueError):
        run_backtest(parse_csv(_csv(rows)), transform="sqrt")
