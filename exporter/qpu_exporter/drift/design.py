"""Control-limit design: from an in-control average run length (ARL0) to chart limits.

Pure numerics, no I/O. Every function here is deterministic and the public designers are
cached, so designing limits for thousands of series costs one dictionary lookup each.

- CUSUM (Page 1954): the one-sided zero-state ARL solves the integral equation
  L(u) = 1 + L(0) F(k - u) + \\int_0^h L(y) f(y + k - u) dy, solved by Gauss-Legendre
  Nystrom; two-sided ARL from 1/ARL = 1/ARL+ + 1/ARL- (Lucas & Crosier 1982).
- EWMA (Roberts 1959) with asymptotic limits: Brook-Evans Markov chain on the statistic.

Both reproduce the published tables (Lucas & Saccucci, Technometrics 32, 1 (1990) for the EWMA;
the standard k = 0.5 CUSUM table in Montgomery, Introduction to Statistical Quality Control)
(checked in tests/test_drift_design.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr

# Quadrature nodes for the CUSUM integral equation and states for the EWMA chain. These
# reproduce the published tables to the printed digits (see tests) and keep one ARL
# evaluation in the low milliseconds.
CUSUM_NODES = 120
EWMA_STATES = 301

# Largest lag-1 autocorrelation we design for: beyond it a level chart on raw data is the
# wrong tool and the widened limits would make it blind anyway.
PHI_MAX = 0.9
# Estimation-corrected design ARL0s are capped here (a warm-up far too short for the requested
# ARL0 would otherwise ask for limits beyond double precision).
MAX_DESIGN_ARL0 = 1e10
# Autocorrelation is rounded to this grid before designing, so the design cache stays small.
PHI_STEP = 0.05


# ------------------------------------------------------------------------------- CUSUM ARL
@lru_cache(maxsize=8)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.polynomial.legendre.leggauss(n)


def cusum_arl_one_sided(k: float, h: float, shift: float = 0.0, scale: float = 1.0) -> float:
    """Zero-state ARL of the upper CUSUM C = max(0, C + x - k), signal at C > h,
    for x ~ N(shift, scale**2)."""
    if h <= 0:
        return 1.0
    t, w = _gauss_legendre(CUSUM_NODES)
    y = 0.5 * h * (t + 1.0)
    wy = 0.5 * h * w
    # Kernel: density of the next state y given the current state u.
    diff = (y[None, :] + k - y[:, None] - shift) / scale
    kernel = np.exp(-0.5 * diff * diff) / (scale * math.sqrt(2.0 * math.pi)) * wy[None, :]
    to_zero = ndtr((k - y - shift) / scale)  # probability of restarting at 0 from state u
    # Unknowns: L(y_1..y_n) and L(0); the last row is the equation at u = 0.
    n = y.size
    a = np.zeros((n + 1, n + 1))
    a[:n, :n] = np.eye(n) - kernel
    a[:n, n] = -to_zero
    diff0 = (y + k - shift) / scale
    a[n, :n] = -np.exp(-0.5 * diff0 * diff0) / (scale * math.sqrt(2.0 * math.pi)) * wy
    a[n, n] = 1.0 - ndtr((k - shift) / scale)
    sol = np.linalg.solve(a, np.ones(n + 1))
    return float(sol[n])


def cusum_arl(k: float, h: float, shift: float = 0.0, scale: float = 1.0) -> float:
    """Zero-state ARL of the two-sided tabular CUSUM (signal when C+ or C- exceeds h)."""
    up = cusum_arl_one_sided(k, h, shift, scale)
    down = cusum_arl_one_sided(k, h, -shift, scale)
    return 1.0 / (1.0 / up + 1.0 / down)


# -------------------------------------------------------------------------------- EWMA ARL
def ewma_arl(lam: float, limit: float, shift: float = 0.0, scale: float = 1.0) -> float:
    """Zero-state ARL of the two-sided EWMA z = lam*x + (1-lam)*z, z0 = 0, signalling when
    |z| > limit * sqrt(lam/(2-lam)) (asymptotic limits), for x ~ N(shift, scale**2)."""
    ucl = limit * math.sqrt(lam / (2.0 - lam))
    m = EWMA_STATES
    width = 2.0 * ucl / m
    centers = -ucl + width * (np.arange(m) + 0.5)
    edges = -ucl + width * np.arange(m + 1)
    # x needed to land on each edge from each centre: z' = (1-lam) c + lam x.
    xs = (edges[None, :] - (1.0 - lam) * centers[:, None]) / lam
    cdf = ndtr((xs - shift) / scale)
    p = np.diff(cdf, axis=1)
    sol = np.linalg.solve(np.eye(m) - p, np.ones(m))
    return float(sol[m // 2])


# ---------------------------------------------------------------------------- root finding
def _log_arl(arl_of_limit, x: float) -> float:
    v = arl_of_limit(x)
    # A singular solve at extreme limits means "practically never signals".
    return math.log(v) if math.isfinite(v) and v > 0.0 else 745.0


def _solve_limit(arl_of_limit, arl0: float, lo: float, hi: float) -> float:
    target = math.log(arl0)
    while _log_arl(arl_of_limit, hi) < target:
        lo, hi = hi, hi * 1.5
    return float(brentq(lambda x: _log_arl(arl_of_limit, x) - target, lo, hi, xtol=1e-6))


@lru_cache(maxsize=4096)
def cusum_h(arl0: float, k: float) -> float:
    """Decision interval h such that the two-sided CUSUM with reference k has ARL0."""
    if arl0 <= 1.0:
        raise ValueError("arl0 must exceed 1")
    return _solve_limit(lambda h: cusum_arl(k, h), arl0, 0.05, 4.0)


@lru_cache(maxsize=4096)
def ewma_limit(arl0: float, lam: float) -> float:
    """Width L (in asymptotic standard deviations) giving the two-sided EWMA ARL0."""
    if arl0 <= 1.0:
        raise ValueError("arl0 must exceed 1")
    if not 0.0 < lam <= 1.0:
        raise ValueError("ewma lambda must be in (0, 1]")
    return _solve_limit(lambda x: ewma_arl(lam, x), arl0, 0.5, 2.5)


# ------------------------------------------------------------------ autocorrelation widening
def ewma_ar1_sd_factor(lam: float, phi: float) -> float:
    """Ratio of the EWMA's asymptotic sd under a stationary AR(1) with lag-1 correlation phi to
    its iid value (the EWMA of an AR(1) series; VanBrackle & Reynolds, Commun. Stat. Simul. 26, 979
    (1997)): sqrt((1 + phi(1-lam)) / (1 - phi(1-lam)))."""
    r = phi * (1.0 - lam)
    return math.sqrt((1.0 + r) / (1.0 - r))


def window_ar1_sd_factor(window: float, phi: float) -> float:
    """Ratio of the sd of a mean of `window` consecutive AR(1) values to its iid value.

    The CUSUM's false alarms come from runs of about h/k samples whose sum drifts upward;
    the variance of such a sum under AR(1) is what its limits must be widened for."""
    if phi <= 0.0:
        return 1.0
    m = max(window, 1.0)
    var = 1.0 + 2.0 * phi / (1.0 - phi) * (1.0 - (1.0 - phi**m) / (m * (1.0 - phi)))
    return math.sqrt(var)


def quantize_phi(phi: float) -> float:
    """Round a lag-1 autocorrelation to the design grid, clamped to [0, PHI_MAX].
    Negative correlation would narrow the limits; we never do that (conservative)."""
    if not math.isfinite(phi) or phi <= 0.0:
        return 0.0
    return min(PHI_MAX, round(phi / PHI_STEP) * PHI_STEP)


# ------------------------------------------------------------------ estimation correction
# Gauss-Hermite nodes (probabilists') for expectations over the warm-up estimates.
_GH_MEAN = np.polynomial.hermite_e.hermegauss(5)
_GH_SCALE = np.polynomial.hermite_e.hermegauss(7)


def _siegmund_two_sided(k: float, h: float, shift: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Siegmund's two-sided CUSUM ARL for x ~ N(shift, scale^2), vectorised (Siegmund,
    Sequential Analysis, 1985; within 1% of the integral equation at ARL0)."""
    b = (h + 1.166 * scale) / scale  # the correction term is in units of the noise sd

    def one(delta: np.ndarray) -> np.ndarray:
        small = np.abs(delta) < 1e-9
        d = np.where(small, 1.0, delta)
        # Far from the shift the ARL overflows to inf, which is right: 1/inf adds no alarms.
        with np.errstate(over="ignore"):
            val = (np.exp(np.minimum(-2.0 * d * b, 700.0)) + 2.0 * d * b - 1.0) / (2.0 * d * d)
        return np.where(small, b * b, val)

    up = one((shift - k) / scale)
    down = one((-shift - k) / scale)
    return 1.0 / (1.0 / up + 1.0 / down)


def _expected_false_alarm_rate(k: float, h: float, warmup: int, phi: float) -> float:
    """E[1/ARL] of the CUSUM over the sampling distribution of the warm-up estimates.

    With frozen estimates the chart sees u = (Z - m)/s: a constant shift -m/s and scale 1/s.
    m ~ N(0, (1+phi)/((1-phi) n)) (the mean of n AR(1) values), s^2 ~ chi2_nu/nu with
    nu = n - 1 (Wilson-Hilferty cube-root normal approximation). The fleet's false-alarm rate
    is the sum of the series' 1/ARL, so this expectation is what a fleet actually sees."""
    sd_m = math.sqrt((1.0 + phi) / ((1.0 - phi) * warmup))
    nu = max(warmup - 1, 2)
    wh_mean, wh_sd = 1.0 - 2.0 / (9.0 * nu), math.sqrt(2.0 / (9.0 * nu))
    xm, wm = _GH_MEAN
    xs, ws = _GH_SCALE
    s = np.maximum(wh_mean + xs * wh_sd, 0.05) ** 1.5
    shift = (xm[:, None] * sd_m) / s[None, :]
    scale = np.broadcast_to(1.0 / s[None, :], shift.shape)
    weights = wm[:, None] * ws[None, :]
    rate = 1.0 / _siegmund_two_sided(k, h, shift, scale)
    return float(np.sum(weights * rate) / np.sum(weights))


@lru_cache(maxsize=4096)
def estimation_adjusted_arl0(arl0: float, k: float, warmup: int, phi: float = 0.0) -> float:
    """The design ARL0 that, with mean and sd estimated from `warmup` samples and frozen, gives
    an *average* false-alarm rate of 1/arl0.

    Computed for the CUSUM with reference k (Siegmund's formula keeps it instant) and used for
    both charts: their conditional ARL0 spreads under estimation are alike (our computation at
    n = 100: p10/p50/p90 173/383/752 for EWMA, 183/421/930 for CUSUM; Jensen et al., J. Quality
    Technology 38, 349 (2006) review the effect)."""
    if arl0 >= MAX_DESIGN_ARL0:
        return float(arl0)
    ratio_at_known = 1.0 / (_siegmund_two_sided(k, cusum_h(arl0, k), np.zeros(1), np.ones(1))[0] / arl0)

    def arl_for(h: float) -> float:
        return 1.0 / _expected_false_alarm_rate(k, h, warmup, phi)

    h0 = cusum_h(arl0, k)
    target = math.log(arl0 / ratio_at_known)  # the same Siegmund bias as at known parameters
    hi = h0
    while math.log(arl_for(hi)) < target:
        hi *= 1.25
    h_adj = float(brentq(lambda h: math.log(arl_for(h)) - target, h0 * 0.9, hi, xtol=1e-6))
    adjusted = _siegmund_two_sided(k, h_adj, np.zeros(1), np.ones(1))[0] * ratio_at_known
    return float(min(max(adjusted, arl0), MAX_DESIGN_ARL0))


# -------------------------------------------------------------------------- full designs
@dataclass(frozen=True, slots=True)
class ChartDesign:
    """Limits for one series, in units of its in-control (marginal) standard deviation.

    ewma_sd: asymptotic sd of the EWMA statistic (autocorrelation included);
    ewma_limit: signal when |z| > ewma_limit * ewma_sd;
    cusum_k, cusum_h: reference value and decision interval, already widened."""

    arl0: float
    design_arl0: float
    phi: float
    warmup: int
    ewma_lambda: float
    ewma_sd: float
    ewma_limit: float
    cusum_k: float
    cusum_h: float


@lru_cache(maxsize=4096)
def design_chart(
    arl0: float, ewma_lambda: float, cusum_k: float, phi: float = 0.0, warmup: int = 0
) -> ChartDesign:
    """Design both charts for one series.

    phi: lag-1 autocorrelation estimated in warm-up (quantized here). For phi > 0 the limits
    are widened by the sd ratio of the statistic under AR(1), which is conservative
    (by our Markov-chain computation: EWMA ARL0 ~750 instead of 500 at phi = 0.5).
    warmup: number of samples the in-control mean and sd were estimated from; 0 means known
    parameters. With estimates the limits are raised so that the average false-alarm rate,
    over the randomness of the warm-up, is 1/arl0 (uncorrected, it is 1.7x nominal at n = 100 by
    our computation; Jensen et al. 2006 review the effect)."""
    phi = quantize_phi(phi)
    design_arl0 = estimation_adjusted_arl0(arl0, cusum_k, warmup, phi) if warmup > 0 else arl0
    lim = ewma_limit(design_arl0, ewma_lambda)
    h = cusum_h(design_arl0, cusum_k)
    ewma_sd = math.sqrt(ewma_lambda / (2.0 - ewma_lambda)) * ewma_ar1_sd_factor(ewma_lambda, phi)
    widen = window_ar1_sd_factor(h / cusum_k if cusum_k > 0 else h, phi)
    return ChartDesign(
        arl0=arl0,
        design_arl0=design_arl0,
        phi=phi,
        warmup=warmup,
        ewma_lambda=ewma_lambda,
        ewma_sd=ewma_sd,
        ewma_limit=lim,
        cusum_k=cusum_k * widen,
        cusum_h=h * widen,
    )


def siegmund_arl_one_sided(k: float, h: float, shift: float = 0.0) -> float:
    """Siegmund's approximation to the one-sided CUSUM ARL (a cross-check for tests)."""
    delta = shift - k
    b = h + 1.166
    if abs(delta) < 1e-12:
        return b * b
    return (math.exp(-2.0 * delta * b) + 2.0 * delta * b - 1.0) / (2.0 * delta * delta)
