"""Design functions vs the published ARL tables (Lucas & Saccucci, Technometrics 32, 1 (1990);
the k = 0.5 CUSUM table in Montgomery, Introduction to Statistical Quality Control)."""

import pytest

from qpu_exporter.drift import design as D

SHIFTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)


@pytest.mark.parametrize(
    "h, published",
    [
        (4.0, (168, 26.6, 8.38, 4.75, 3.34, 2.19)),
        (5.0, (465, 38.0, 10.4, 5.75, 4.01, 2.57)),
    ],
)
def test_cusum_arl_matches_published_table(h, published):
    for shift, pub in zip(SHIFTS, published):
        # published values are printed to 3 significant digits
        assert D.cusum_arl(0.5, h, shift) == pytest.approx(pub, rel=6e-3)


def test_one_sided_cusum_arl0_and_siegmund():
    assert D.cusum_arl_one_sided(0.5, 4.0) == pytest.approx(335.4, rel=2e-3)
    assert D.cusum_arl_one_sided(0.5, 5.0) == pytest.approx(930.9, rel=2e-3)
    assert D.siegmund_arl_one_sided(0.5, 5.0) == pytest.approx(D.cusum_arl_one_sided(0.5, 5.0), rel=0.01)


@pytest.mark.parametrize(
    "lam, limit, published",
    [
        (0.05, 2.615, (500, 28.8, 11.4, 7.1, 5.2, 3.5)),
        (0.10, 2.814, (500, 31.3, 10.3, 6.1, 4.4, 2.9)),
        (0.20, 2.962, (500, 41.8, 10.5, 5.5, 3.7, 2.4)),
        (0.40, 3.054, (500, 71.2, 14.3, 5.9, 3.5, 2.0)),
    ],
)
def test_ewma_arl_matches_lucas_saccucci(lam, limit, published):
    for shift, pub in zip(SHIFTS, published):
        # table printed to 1 decimal (3 digits for ARL0): half a unit in the last digit
        tol = 1.0 if shift == 0 else 0.051
        assert D.ewma_arl(lam, limit, shift) == pytest.approx(pub, abs=tol)


@pytest.mark.parametrize(
    "lam, limit", [(0.05, 2.615), (0.10, 2.814), (0.20, 2.962), (0.25, 2.998), (0.40, 3.054)]
)
def test_ewma_design_inverts_table(lam, limit):
    assert D.ewma_limit(500.0, lam) == pytest.approx(limit, abs=3e-3)


@pytest.mark.parametrize("k, h", [(0.5, 5.071), (1.0, 2.665), (0.25, 8.585)])
def test_cusum_design_inverts_table(k, h):
    # Two-sided ARL0 = 500 decision intervals (Siegmund's approximation, Sequential Analysis 1985)
    assert D.cusum_h(500.0, k) == pytest.approx(h, abs=3e-3)


def test_design_is_cached_and_monotone():
    D.design_chart.cache_clear()
    a = D.design_chart(1000.0, 0.2, 0.5, 0.0, 0)
    b = D.design_chart(1000.0, 0.2, 0.5, 0.0, 0)
    assert a is b
    bigger = D.design_chart(1e5, 0.2, 0.5, 0.0, 0)
    assert bigger.cusum_h > a.cusum_h and bigger.ewma_limit > a.ewma_limit


def test_estimation_correction_shrinks_with_warmup():
    known = D.design_chart(500.0, 0.2, 0.5, 0.0, 0)
    n50 = D.design_chart(500.0, 0.2, 0.5, 0.0, 50)
    n300 = D.design_chart(500.0, 0.2, 0.5, 0.0, 300)
    assert known.cusum_h < n300.cusum_h < n50.cusum_h
    assert known.ewma_limit < n300.ewma_limit < n50.ewma_limit


def test_autocorrelation_widens_limits():
    iid = D.design_chart(500.0, 0.2, 0.5, 0.0, 0)
    ar = D.design_chart(500.0, 0.2, 0.5, 0.5, 0)
    assert ar.ewma_sd / iid.ewma_sd == pytest.approx(D.ewma_ar1_sd_factor(0.2, 0.5))
    assert ar.ewma_sd / iid.ewma_sd == pytest.approx(((1 + 0.4) / (1 - 0.4)) ** 0.5)
    assert ar.cusum_h > iid.cusum_h and ar.cusum_k > iid.cusum_k
    assert D.quantize_phi(-0.3) == 0.0 and D.quantize_phi(0.97) == D.PHI_MAX
