"""Detectors vs published ARLs (Monte Carlo, fixed seeds), restart semantics, transforms."""

import json
import math

import numpy as np
import pytest

from qpu_exporter.drift import transforms as T
from qpu_exporter.drift.detectors import DOWN, NO_SIGNAL, UP, CusumDetector, EwmaDetector, cusum_step, ewma_step


def _run_lengths(step, runs, shift, seed, max_steps=20_000):
    """Zero-state run lengths of `runs` independent charts fed N(shift, 1)."""
    rng = np.random.default_rng(seed)
    state = step.init(runs)
    length = np.zeros(runs, dtype=np.int64)
    alive = np.ones(runs, dtype=bool)
    t = 0
    while alive.any() and t < max_steps:
        t += 1
        u = rng.standard_normal(runs) + shift
        state, signal = step.update(state, u)
        fired = alive & (signal != NO_SIGNAL)
        length[fired] = t
        alive &= ~fired
    assert not alive.any()
    return length


class _Cusum:
    def __init__(self, k, h):
        self.k, self.h = k, h

    def init(self, n):
        return np.zeros(n), np.zeros(n)

    def update(self, state, u):
        cp, cm, s = cusum_step(state[0], state[1], u, self.k, self.h)
        return (cp, cm), s


class _Ewma:
    def __init__(self, lam, limit):
        self.lam, self.bound = lam, limit * math.sqrt(lam / (2 - lam))

    def init(self, n):
        return np.zeros(n)

    def update(self, state, u):
        return ewma_step(state, u, self.lam, self.bound)


@pytest.mark.parametrize(
    "shift, published, runs",
    [(0.0, 168.0, 2000), (1.0, 8.38, 2000), (2.0, 3.34, 2000)],
)
def test_cusum_monte_carlo_matches_published_arl(shift, published, runs):
    lengths = _run_lengths(_Cusum(0.5, 4.0), runs, shift, seed=11)
    se = lengths.std() / math.sqrt(runs)
    # 4 standard errors: fails by chance with probability ~6e-5
    assert abs(lengths.mean() - published) < 4 * se


@pytest.mark.parametrize(
    "shift, published, runs",
    [(0.0, 500.0, 1500), (1.0, 10.5, 2000), (3.0, 2.4, 2000)],
)
def test_ewma_monte_carlo_matches_lucas_saccucci(shift, published, runs):
    lengths = _run_lengths(_Ewma(0.2, 2.962), runs, shift, seed=12)
    se = lengths.std() / math.sqrt(runs)
    # + 0.05 for the table's rounding to one decimal
    assert abs(lengths.mean() - published) < 4 * se + 0.05


def test_detectors_restart_after_signal_and_name_direction():
    c = CusumDetector(k=0.5, h=4.0)
    signals = [c.update(-3.0) for _ in range(3)]
    assert signals == [NO_SIGNAL, DOWN, NO_SIGNAL]  # 2.5 + 2.5 > 4 signals; then restarts from 0
    assert c.cm == pytest.approx(2.5) and c.cp == 0.0
    e = EwmaDetector(lam=0.5, limit=3.0, sd=math.sqrt(0.5 / 1.5))
    assert e.update(1.0) == NO_SIGNAL
    assert e.update(3.0) == UP  # z = 2.0 > 3 * 0.577
    assert e.z == 0.0 and e.statistic == 0.0


def test_detector_state_round_trip_is_exact():
    rng = np.random.default_rng(3)
    xs = rng.standard_normal(200) * 1.3 + 0.4
    a_c, a_e = CusumDetector(0.5, 5.0), EwmaDetector(0.2, 2.962, math.sqrt(0.2 / 1.8))
    b_c, b_e = CusumDetector(0.5, 5.0), EwmaDetector(0.2, 2.962, math.sqrt(0.2 / 1.8))
    out_a = [(a_c.update(x), a_e.update(x)) for x in xs]
    out_b = [(b_c.update(x), b_e.update(x)) for x in xs[:77]]
    b_c = CusumDetector.from_dict(json.loads(json.dumps(b_c.to_dict())))
    b_e = EwmaDetector.from_dict(json.loads(json.dumps(b_e.to_dict())))
    out_b += [(b_c.update(x), b_e.update(x)) for x in xs[77:]]
    assert out_a == out_b
    assert (a_c.cp, a_c.cm, a_e.z) == (b_c.cp, b_c.cm, b_e.z)


# ---------------------------------------------------------------------------- transforms
@pytest.mark.parametrize(
    "series, mode, code",
    [
        ("t1:q3", "auto", T.LOG),
        ("t2:q3", "auto", T.LOG),
        ("readout_error:q3", "auto", T.LOGIT),
        ("gate_error:cz:3_4", "auto", T.LOGIT),
        ("probe_epc:0", "auto", T.LOGIT),
        ("frequency:q1", "auto", T.NONE),
        ("t1x:q1", "auto", T.NONE),  # kind is the whole prefix, not a substring match
        ("readout_error:q3", "log", T.LOG),
        ("t1:q3", "none", T.NONE),
    ],
)
def test_transform_by_kind(series, mode, code):
    assert T.transform_code(series, mode) == code


def test_transform_values_and_rejections():
    assert T.apply(T.LOG, 1e-4) == pytest.approx(math.log(1e-4))
    assert T.apply(T.LOGIT, 0.2) == pytest.approx(math.log(0.25))
    for code, bad in [(T.LOG, 0.0), (T.LOG, -1.0), (T.LOGIT, 0.0), (T.LOGIT, 1.0), (T.LOGIT, 1.5)]:
        assert T.apply(code, bad) == T.REJECT_DOMAIN
    for code in (T.NONE, T.LOG, T.LOGIT):
        assert T.apply(code, float("nan")) == T.REJECT_NON_FINITE
        assert T.apply(code, float("inf")) == T.REJECT_NON_FINITE
    assert T.apply(T.NONE, "abc") == T.REJECT_NON_FINITE
    codes = np.array([T.LOG, T.LOG, T.LOGIT, T.LOGIT, T.NONE, T.NONE])
    vals = np.array([2.0, 0.0, 0.5, 1.0, -3.0, np.inf])
    out, ok, domain = T.apply_array(codes, vals)
    assert ok.tolist() == [True, False, True, False, True, False]
    assert domain.tolist() == [False, True, False, True, False, False]
    assert out[0] == pytest.approx(math.log(2.0)) and out[2] == 0.0 and out[4] == -3.0
    with pytest.raises(ValueError):
        T.transform_code("t1:q0", "logit-ish")
