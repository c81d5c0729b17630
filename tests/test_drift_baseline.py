"""The drift baseline's robust estimates against statsmodels, the reference implementation.

``robust_baseline`` hand-writes Huber's proposal 2 and a lag-1 autocorrelation because it runs
in the serving process over up to 100k series at once (benchmarks/drift_baseline.py: why
statsmodels stays out of it). These tests prove it computes what statsmodels computes
(statsmodels is a runtime dependency for ``qpu-exporter report``, never imported by ``serve``).
"""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.robust import norms
from statsmodels.robust.scale import Huber
from statsmodels.tsa.stattools import acf

from qpu_exporter.drift.baseline import HUBER_C, robust_baseline


def _warmups(rng: np.random.Generator) -> np.ndarray:
    """100-sample warm-ups: Gaussian, heavy-tailed, AR(1), with outliers, on various scales."""
    n = 100
    rows = [rng.normal(5.0, 0.3, n), 1e-4 * (1 + 0.1 * rng.standard_t(3, n)), rng.standard_t(2, n)]
    ar = np.zeros(n)
    for i in range(1, n):
        ar[i] = 0.6 * ar[i - 1] + rng.standard_normal()
    rows.append(ar - 3.0)
    spiky = rng.normal(0.0, 1.0, n)
    spiky[[7, 40, 41]] = [25.0, -30.0, 18.0]
    rows.append(spiky)
    rows += list(rng.standard_t(4, (20, n)) * rng.uniform(0.01, 10, (20, 1)))
    return np.array(rows)


def test_huber_proposal_2_is_statsmodels_location_and_scale_equations():
    """(mu, sigma) is the joint solution: mu is statsmodels' Huber M-estimate of location at
    scale sigma, and sigma is statsmodels' proposal-2 scale at location mu."""
    x = _warmups(np.random.default_rng(11))
    mu, sigma, _ = robust_baseline(x)
    for row, m, s in zip(x, mu, sigma):
        loc = norms.estimate_location(row, s, norm=norms.HuberT(t=HUBER_C), tol=1e-13, maxiter=500)
        assert loc == pytest.approx(m, abs=1e-9 * s)
        _, scale = Huber(c=HUBER_C, tol=1e-13, maxiter=500)(row, mu=m)
        assert scale == pytest.approx(s, rel=1e-9)


def test_joint_statsmodels_huber_differs_only_by_its_degrees_of_freedom():
    """statsmodels' joint Huber() divides the scale equation by n - 1 instead of n (MASS's
    hubers convention): a slightly larger sigma, by about sqrt(n / (n - 1)), the same mu."""
    x = _warmups(np.random.default_rng(12))
    mu, sigma, _ = robust_baseline(x)
    for row, m, s in zip(x, mu, sigma):
        m2, s2 = Huber(c=HUBER_C, tol=1e-12, maxiter=500)(row)
        assert abs(m2 - m) < 0.01 * s
        assert 1.0 < s2 / s < 1.0 + 2.5 / len(row)


def test_lag1_autocorrelation_is_statsmodels_acf_of_the_clipped_residuals_plus_the_bias_correction():
    x = _warmups(np.random.default_rng(13))
    mu, sigma, phi = robust_baseline(x)
    n = x.shape[1]
    for row, m, s, p in zip(x, mu, sigma, phi):
        r = np.clip((row - m) / s, -HUBER_C, HUBER_C)
        raw = acf(r, nlags=1, fft=False)[1]
        assert p == pytest.approx(raw + (1.0 + 3.0 * raw) / n, abs=1e-12)
