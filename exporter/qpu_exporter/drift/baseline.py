"""Robust in-control baseline from a warm-up window (vectorised over series).

Huber's "proposal 2" joint M-estimate of location and scale: standardized warm-up values are
clipped at +-HUBER_C and mu, sigma iterated until the clipped residuals have mean 0 and the
variance a clipped N(0,1) would have. Unlike MAD alone it estimates the standard deviation
(in our simulations MAD under heavy tails tripled the false alarms), yet one outlier moves
sigma by at most ~HUBER_C^2/n in variance. The lag-1 autocorrelation is estimated on the same
clipped residuals, so an outlier cannot fake or hide correlation either.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

HUBER_C = 2.5
ITERATIONS = 40
# Smallest sigma relative to |mu| (and absolute): a constant warm-up still gets a usable scale.
SIGMA_FLOOR_REL = 1e-9
SIGMA_FLOOR_ABS = 1e-300


def _clipped_normal_second_moment(c: float) -> float:
    """E[clip(Z, -c, c)^2] for Z ~ N(0, 1)."""
    pdf = math.exp(-0.5 * c * c) / math.sqrt(2.0 * math.pi)
    tail = 1.0 - ndtr(c)
    return (1.0 - 2.0 * tail) - 2.0 * c * pdf + 2.0 * c * c * tail


_BETA = _clipped_normal_second_moment(HUBER_C)


def robust_baseline(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x: (series, n) warm-up values. Returns (mu, sigma, phi) per row; phi is bias-corrected."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n = x.shape[1]
    mu = np.median(x, axis=1)
    mad = 1.4826 * np.median(np.abs(x - mu[:, None]), axis=1)
    sd = x.std(axis=1)
    floor = np.maximum(SIGMA_FLOOR_REL * np.abs(mu), SIGMA_FLOOR_ABS)
    sigma = np.maximum(np.where(mad > 0.0, mad, sd), floor)
    for _ in range(ITERATIONS):
        r = np.clip((x - mu[:, None]) / sigma[:, None], -HUBER_C, HUBER_C)
        mu = mu + sigma * r.mean(axis=1)
        sigma = np.maximum(sigma * np.sqrt((r * r).mean(axis=1) / _BETA), floor)
    r = np.clip((x - mu[:, None]) / sigma[:, None], -HUBER_C, HUBER_C)
    r = r - r.mean(axis=1, keepdims=True)
    denom = (r * r).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        phi = np.where(denom > 0.0, (r[:, 1:] * r[:, :-1]).sum(axis=1) / np.where(denom > 0, denom, 1.0), 0.0)
    # The lag-1 sample autocorrelation of an AR(1) is biased low by about (1 + 3 phi)/n.
    phi = phi + (1.0 + 3.0 * phi) / n
    return mu, sigma, phi


def design_phi(phi: float, n: int) -> float:
    """The autocorrelation the limits are widened for: the bias-corrected estimate minus one
    standard error (1/sqrt(n)), so iid series are not widened for sampling noise (which cost
    a sample of delay in the benchmark) while a real phi = 0.5 still is (and the AR(1)
    widening is conservative anyway, docs/drift.md)."""
    return max(0.0, phi - 1.0 / math.sqrt(n))
