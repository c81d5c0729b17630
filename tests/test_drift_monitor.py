"""DriftMonitor: warm-up, robustness, step detection, rejections, state round-trip, batching."""

import json
import math

import numpy as np
import pytest

from qpu_exporter.drift.baseline import robust_baseline
from qpu_exporter.drift.monitor import DriftMonitor, DriftSettings

KEY = ("simulated", "fake_torino", "t1:q3")
FAST = DriftSettings(arl0=500.0, warmup=50)


def _t1_series(n, seed, step_at=None, factor=1.0):
    rng = np.random.default_rng(seed)
    x = 100e-6 * np.exp(0.05 * rng.standard_normal(n))
    if step_at is not None:
        x[step_at:] *= factor
    return x


def test_no_alarms_during_warm_up_and_statistics_after():
    mon = DriftMonitor(FAST)
    x = _t1_series(49, 1)
    x[10] = 1e-6  # a wild value during warm-up raises nothing
    for i, v in enumerate(x):
        assert mon.observe(KEY, v, float(i)) == []
    assert mon.in_warm_up(KEY) and list(mon.statistics()) == []
    mon.observe(KEY, 100e-6, 49.0)
    assert not mon.in_warm_up(KEY)
    rows = list(mon.statistics())
    assert {r.detector for r in rows} == {"ewma", "cusum"} and all(not r.alarm_active for r in rows)


def test_outlier_in_warm_up_does_not_blow_up_sigma():
    rng = np.random.default_rng(4)
    clean = rng.standard_normal((1, 100))
    dirty = clean.copy()
    dirty[0, 17] = 1e3
    mu_c, s_c, _ = robust_baseline(clean)
    mu_d, s_d, _ = robust_baseline(dirty)
    assert s_d[0] / s_c[0] < 1.1  # the classical sd would grow ~100x
    assert abs(mu_d[0] - mu_c[0]) < 0.1
    # and the baseline estimates an SD, close to 1 on Gaussian data
    assert 0.8 < s_c[0] < 1.2


def test_autocorrelation_is_estimated_and_widens_limits():
    rng = np.random.default_rng(8)
    n = 400
    ar = np.zeros(n)
    e = rng.standard_normal(n)
    for t in range(1, n):
        ar[t] = 0.6 * ar[t - 1] + e[t]
    _, _, phi = robust_baseline(ar[None, :])
    assert 0.45 < phi[0] < 0.75
    s = DriftSettings(arl0=500.0, warmup=400, transform="none")
    mon_ar, mon_iid = DriftMonitor(s), DriftMonitor(s)
    for i in range(n):
        mon_ar.observe(KEY, ar[i], float(i))
        mon_iid.observe(KEY, e[i], float(i))
    lim_ar = {r.detector: r.limit for r in mon_ar.limits()}
    lim_iid = {r.detector: r.limit for r in mon_iid.limits()}
    assert lim_ar["cusum"] > 1.3 * lim_iid["cusum"]
    assert mon_ar.baseline(KEY)["design"]["ewma_sd"] > 1.3 * mon_iid.baseline(KEY)["design"]["ewma_sd"]


@pytest.mark.parametrize("factor, direction", [(0.7, "down"), (1.4, "up")])
def test_step_change_detected_with_direction_near_change(factor, direction):
    mon = DriftMonitor(DriftSettings(arl0=1e4, warmup=50))
    x = _t1_series(200, 5, step_at=120, factor=factor)  # |log 0.7| / 0.05 ~ 7 sigma
    alarms = []
    for i, v in enumerate(x):
        alarms += mon.observe(KEY, v, 1000.0 + i)
    assert alarms, "step not detected"
    first = {}
    for a in alarms:
        first.setdefault(a.detector, a)
    assert set(first) == {"ewma", "cusum"}
    for a in first.values():
        assert a.direction == direction
        assert 120 <= a.index <= 124
        assert a.timestamp == 1000.0 + a.index and a.key == KEY
    counts = {r.detector: r.count for r in mon.alarms_total()}
    assert counts["cusum"] == sum(a.detector == "cusum" for a in alarms) >= 2  # restarts, fires again


def test_rejections_never_raise_nor_update_state():
    mon = DriftMonitor(FAST)
    x = _t1_series(60, 6)
    for i, v in enumerate(x):
        mon.observe(KEY, v, float(i))
    before = json.dumps(mon.state(), sort_keys=True)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        assert mon.observe(KEY, bad, 100.0) == []
    assert mon.observe(KEY, 100e-6, 59.0) == []  # not after the last accepted timestamp
    res = mon.observe_many([KEY, ("p", "b", "readout_error:q1")], [-2.0, 1.0], [101.0, 1.0])
    assert [r.reason for r in res.rejected] == ["out_of_domain", "out_of_domain"]
    after = mon.state()
    after.pop("rejections")
    after["keys"] = after["keys"][:1]
    after["columns"] = {k: v[:1] for k, v in after["columns"].items()}
    ref = json.loads(before)
    ref.pop("rejections")
    assert json.dumps(after, sort_keys=True) == json.dumps(ref, sort_keys=True)
    reasons = {(s, r): c for _, _, s, r, c in mon.rejections_total()}
    assert reasons[("t1:q3", "out_of_domain")] == 3 and reasons[("t1:q3", "non_finite")] == 2


def _feed(mon, keys, data, start, stop):
    out = []
    for t in range(start, stop):
        out += mon.observe_many(keys, data[:, t], np.full(len(keys), float(t))).alarms
    return out


def test_state_round_trip_continues_identically():
    rng = np.random.default_rng(9)
    keys = [("p", "b", f"t1:q{i}") for i in range(30)] + [("p", "b", f"readout_error:q{i}") for i in range(10)]
    data = np.vstack([
        100e-6 * np.exp(0.05 * rng.standard_normal((30, 300))),
        1 / (1 + np.exp(-(-4 + 0.1 * rng.standard_normal((10, 300))))),
    ])
    data[:15, 180:] *= 0.85
    ref = DriftMonitor(FAST)
    ref_alarms = _feed(ref, keys, data, 0, 300)
    part = DriftMonitor(FAST)
    part_alarms = _feed(part, keys, data, 0, 30)  # mid warm-up for everyone
    part = DriftMonitor.from_state(json.loads(json.dumps(part.state())), FAST)
    part_alarms += _feed(part, keys, data, 30, 200)  # and once more while monitoring
    part = DriftMonitor.from_state(json.loads(json.dumps(part.state())), FAST)
    part_alarms += _feed(part, keys, data, 200, 300)
    assert ref_alarms and part_alarms == ref_alarms
    assert list(part.statistics()) == list(ref.statistics())
    assert list(part.alarms_total()) == list(ref.alarms_total())


def test_batch_equals_single_observations_including_repeated_keys():
    rng = np.random.default_rng(10)
    keys = [("p", "b", "t1:q0"), ("p", "b", "t1:q1")]
    vals = 100e-6 * np.exp(0.05 * rng.standard_normal(240))
    vals[150:] *= 0.8
    single = DriftMonitor(FAST)
    one = []
    for i in range(120):
        one += single.observe(keys[0], vals[2 * i], float(i))
        one += single.observe(keys[1], vals[2 * i + 1], float(i))
    batch = DriftMonitor(FAST)
    # one batch holding many samples of the same keys, in order
    res = batch.observe_many([keys[i % 2] for i in range(240)], vals, [float(i // 2) for i in range(240)])
    assert one and res.alarms == one
    assert (res.indices == np.repeat(np.arange(120), 2)).all()


def test_rebaseline_restarts_warm_up_but_keeps_index_and_counts():
    mon = DriftMonitor(FAST)
    x = _t1_series(200, 12, step_at=100, factor=0.7)
    alarms = []
    for i, v in enumerate(x[:110]):
        alarms += mon.observe(KEY, v, float(i))
    n_before = {r.detector: r.count for r in mon.alarms_total()}
    assert sum(n_before.values()) > 0
    mon.rebaseline(KEY)
    assert mon.in_warm_up(KEY) and list(mon.statistics()) == []
    later = []
    for i, v in enumerate(x[110:], start=110):
        later += mon.observe(KEY, v, float(i))
    assert later == []  # the new level is the new baseline
    assert {r.detector: r.count for r in mon.alarms_total()} == n_before
    assert not mon.in_warm_up(KEY)  # 90 samples >= warm-up 50


def test_settings_validation():
    for bad in (dict(arl0=1.0), dict(warmup=3), dict(transform="logit"), dict(ewma_lambda=0.0)):
        with pytest.raises(ValueError):
            DriftSettings(**bad)


def test_default_arl0_meets_fleet_budget():
    s = DriftSettings()
    samples_per_day = 1000 * 86400 / 300 * 2  # series x polls/day x detectors
    assert samples_per_day / s.arl0 <= 1.0 + 1e-9
    assert math.isclose(s.ewma_lambda, 0.2) and s.cusum_k == 0.5


def test_estimated_baseline_false_alarm_rate_is_nominal():
    """The estimation correction targets the fleet's average false-alarm rate, 1/ARL0, over the
    randomness of the 100-sample warm-up (design.estimation_adjusted_arl0). Without the
    correction this data gives 3.1 per 1000 (3.4 with mean/sd by our computation); a more
    conservative target than the rate would waste delay (benchmarks/drift_detection.py)."""
    rng = np.random.default_rng(21)
    n, length = 2000, 1600
    mon = DriftMonitor(DriftSettings(arl0=500.0, warmup=100, transform="none"))
    keys = [("p", "b", f"x:{i}") for i in range(n)]
    counts = {"ewma": 0, "cusum": 0}
    for t in range(length):
        for a in mon.observe_many(keys, rng.standard_normal(n), np.full(n, float(t))).alarms:
            counts[a.detector] += 1
    for detector, count in counts.items():
        rate = 1000.0 * count / (n * (length - 100))
        # nominal 2.0; SE ~0.05 (between-series spread of the conditional ARL0 included)
        assert 1.6 < rate < 2.4, (detector, rate)
