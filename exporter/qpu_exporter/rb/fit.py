"""Randomized-benchmarking decay fits (pure numerics: numpy and scipy only, no I/O, no qiskit).

Model (Magesan et al. 2011/2012): the mean survival of random Clifford sequences of length m is
``A * p**m + B``; error per Clifford ``EPC = (d-1)/d * (1-p)`` with ``d = 2**num_qubits``.
Interleaved RB fits ``A * (alpha_c * p)**m + B`` with the *same* A and B (same SPAM), and
reports the interleaved gate's error ``(d-1)/d * (1-alpha_c)`` plus the Magesan systematic bound.

Uncertainty (why this method): every sequence is an independent random draw, so the per-length
mean survival has variance ``[Pbar(1-Pbar) h + tau^2 (1-h)] / K`` (h = mean of 1/shots,
K = sequences at that length, tau^2 = variance of the true survival between sequences). We fit the
means by weighted least squares with that *model-based* variance rather than the raw per-length
sample variance: sample variances from K ~ 10 sequences are noisy, and using them as weights is
what makes qiskit-experiments' default error bars under-cover (docs/rb.md). tau^2 is not
assumed zero: it is estimated by the method of moments from the per-length sample variances,
pooled over lengths through a one-parameter shape ``tau_m^2 = kappa * (A (1 - p^m))^2`` (between-
sequence spread grows with the amount of decay: ~m*r for coherent errors, saturating once the
sequence is scrambled). Pooling over all lengths keeps the estimate stable, so the error bar
includes sequence-to-sequence variance without the noise of per-length weights. If the fit still
shows a significant lack of fit (chi^2 above its 99% quantile) the covariance is scaled by the
reduced chi^2, so a model mismatch widens the interval instead of hiding.

Bad data never yields a silent number: results carry ``ok=False`` and a one-line ``reason``;
``raise_for_failure()`` turns that into RBFitError.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats
from scipy.optimize import least_squares

__all__ = [
    "RBInputError",
    "RBFitError",
    "RBFitResult",
    "InterleavedRBFitResult",
    "epc_from_alpha",
    "magesan_systematic_error",
    "fit_rb",
    "fit_interleaved_rb",
]

MIN_DISTINCT_LENGTHS = 3
# A decay smaller than this many standard errors over the probed lengths is "no decay".
MIN_DECAY_SIGNIFICANCE = 3.0
_VARIANCE_ITERATIONS = 4


class RBInputError(ValueError):
    """Malformed input (wrong types, shapes, negative counts). Message: one line naming where."""


class RBFitError(RuntimeError):
    """The data cannot support a fit (no decay, too few lengths, all zeros, non-finite)."""


@dataclass(frozen=True)
class RBFitResult:
    ok: bool
    reason: str  # "" when ok
    num_qubits: int
    alpha: float = math.nan
    alpha_stderr: float = math.nan
    epc: float = math.nan
    epc_stderr: float = math.nan
    a: float = math.nan
    b: float = math.nan
    chi2_reduced: float = math.nan
    sequence_variance_kappa: float = math.nan  # tau_m^2 = kappa * (A (1-p^m))^2
    lengths: tuple[int, ...] = ()
    num_sequences: int = 0

    def raise_for_failure(self) -> RBFitResult:
        if not self.ok:
            raise RBFitError(self.reason)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "num_qubits": self.num_qubits,
            "alpha": self.alpha,
            "alpha_stderr": self.alpha_stderr,
            "epc": self.epc,
            "epc_stderr": self.epc_stderr,
            "a": self.a,
            "b": self.b,
            "chi2_reduced": self.chi2_reduced,
            "sequence_variance_kappa": self.sequence_variance_kappa,
            "lengths": list(self.lengths),
            "num_sequences": self.num_sequences,
        }


@dataclass(frozen=True)
class InterleavedRBFitResult:
    ok: bool
    reason: str
    standard: RBFitResult  # alpha/EPC from the joint fit's standard curve
    alpha_interleaved: float = math.nan
    alpha_c: float = math.nan
    alpha_c_stderr: float = math.nan
    gate_error: float = math.nan
    gate_error_stderr: float = math.nan
    systematic_error: float = math.nan
    systematic_bounds: tuple[float, float] = (math.nan, math.nan)
    extra: dict[str, Any] = field(default_factory=dict)

    def raise_for_failure(self) -> InterleavedRBFitResult:
        if not self.ok:
            raise RBFitError(self.reason)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "reason": self.reason,
            "alpha_interleaved": self.alpha_interleaved,
            "alpha_c": self.alpha_c,
            "alpha_c_stderr": self.alpha_c_stderr,
            "gate_error": self.gate_error,
            "gate_error_stderr": self.gate_error_stderr,
            "systematic_error": self.systematic_error,
            "systematic_bounds": list(self.systematic_bounds),
        }


def epc_from_alpha(alpha: float, num_qubits: int) -> float:
    d = 2**num_qubits
    return (d - 1) / d * (1.0 - alpha)


def magesan_systematic_error(alpha: float, alpha_c: float, num_qubits: int) -> float:
    """Magesan et al. PRL 109, 080505 (2012) Eq. 5, as qiskit-experiments computes it.

    E = min{(d-1)[|p - alpha_c| + (1-p)]/d,  2(d^2-1)(1-p)/(p d^2) + 4 sqrt(1-p) sqrt(d^2-1)/p}
    with p the standard decay and alpha_c = p_interleaved / p.
    """
    d = 2**num_qubits
    p = alpha
    first = (d - 1) * (abs(p - alpha_c) + (1.0 - p)) / d
    one_minus_p = max(1.0 - p, 0.0)
    second = 2 * (d * d - 1) * one_minus_p / (p * d * d) + 4 * math.sqrt(one_minus_p) * math.sqrt(d * d - 1) / p
    return min(first, second)


# --------------------------------------------------------------------------------------------
# Data preparation


@dataclass(frozen=True)
class _Group:
    """Per-length summary of one curve (standard or interleaved)."""

    lengths: np.ndarray  # distinct m
    mean: np.ndarray  # mean survival over sequences
    sample_var: np.ndarray  # ddof=1 sample variance over sequences (nan when K == 1)
    count: np.ndarray  # K, sequences per length
    inv_shots: np.ndarray  # h = mean over sequences of 1/shots


def _as_1d(name: str, values: ArrayLike) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise RBInputError(f"{name}: must be one-dimensional")
    return arr


def _check_arrays(lengths: ArrayLike, survival: ArrayLike, shots: ArrayLike) -> tuple[np.ndarray, ...]:
    m = _as_1d("lengths", lengths)
    y = _as_1d("survival", survival)
    n = _as_1d("shots", shots)
    if not (m.size == y.size == n.size):
        raise RBInputError(f"lengths/survival/shots: sizes differ ({m.size}, {y.size}, {n.size})")
    if m.size == 0:
        raise RBInputError("lengths: no sequences")
    if not np.all(np.isfinite(m)) or np.any(m < 0) or np.any(m != np.round(m)):
        raise RBInputError("lengths: must be non-negative integers")
    if not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise RBInputError("shots: must be positive")
    return m, y, n


def _data_problem(m: np.ndarray, y: np.ndarray) -> str:
    """Reason the data cannot be fitted at all, or "" (checked before any optimisation)."""
    if not np.all(np.isfinite(y)):
        bad = sorted({int(v) for v in m[~np.isfinite(y)]})
        return f"non-finite survival values at lengths {bad}"
    if np.any(y < 0) or np.any(y > 1):
        return "survival values outside [0, 1]"
    distinct = np.unique(m)
    if distinct.size < MIN_DISTINCT_LENGTHS:
        return (
            f"too few distinct lengths ({distinct.size}); A*p^m+B needs at least {MIN_DISTINCT_LENGTHS}"
        )
    if np.all(y == 0):
        return "all survival values are zero: no signal (check the measurement/outcome mapping)"
    return ""


def _group(m: np.ndarray, y: np.ndarray, n: np.ndarray) -> _Group:
    lengths = np.unique(m)
    mean = np.empty(lengths.size)
    var = np.empty(lengths.size)
    count = np.empty(lengths.size)
    inv = np.empty(lengths.size)
    for i, length in enumerate(lengths):
        sel = m == length
        ys = y[sel]
        mean[i] = ys.mean()
        var[i] = ys.var(ddof=1) if ys.size > 1 else math.nan
        count[i] = ys.size
        inv[i] = np.mean(1.0 / n[sel])
    return _Group(lengths, mean, var, count, inv)


# --------------------------------------------------------------------------------------------
# Variance model


def _mean_variance(group: _Group, pred: np.ndarray, spread: np.ndarray, kappa: float) -> np.ndarray:
    """Variance of each per-length mean under binomial shots plus between-sequence spread."""
    # Clip so a prediction at 0 or 1 cannot give a zero variance (infinite weight).
    floor = 0.25 * group.inv_shots.min() if group.inv_shots.size else 1e-6
    pc = np.clip(pred, 0.0, 1.0)
    tau2 = kappa * spread**2
    per_sequence = pc * (1 - pc) * group.inv_shots + tau2 * (1 - group.inv_shots)
    return np.maximum(per_sequence, floor * 1e-3) / group.count


def _estimate_kappa(group: _Group, pred: np.ndarray, spread: np.ndarray) -> float:
    """Method-of-moments estimate of the between-sequence spread, pooled over lengths."""
    usable = (group.count > 1) & np.isfinite(group.sample_var) & (spread > 0)
    if not np.any(usable):
        return 0.0
    pc = np.clip(pred[usable], 0.0, 1.0)
    h = group.inv_shots[usable]
    shot_var = pc * (1 - pc) * h
    excess = group.sample_var[usable] - shot_var
    g = spread[usable] ** 2 * (1 - h)
    # Weights: dof over the null variance of s^2 (~2 v^2/(K-1)), so noisy lengths count less.
    w = (group.count[usable] - 1) / np.maximum(shot_var, 1e-12) ** 2
    denom = float(np.sum(w * g * g))
    if denom <= 0:
        return 0.0
    return max(0.0, float(np.sum(w * g * excess)) / denom)


# --------------------------------------------------------------------------------------------
# Curve model: parameters (A, B, p[, alpha_c]) over one or two groups


def _predict(params: np.ndarray, lengths: np.ndarray, interleaved: bool) -> np.ndarray:
    a, b, p = params[0], params[1], params[2]
    rate = p * params[3] if interleaved else p
    return a * rate**lengths + b


def _jacobian(params: np.ndarray, lengths: np.ndarray, interleaved: bool) -> np.ndarray:
    a, p = params[0], params[2]
    n_par = params.size
    jac = np.zeros((lengths.size, n_par))
    if interleaved:
        c = params[3]
        rate = p * c
        pw = rate**lengths
        dpw_drate = lengths * rate ** np.maximum(lengths - 1, 0)
        jac[:, 0] = pw
        jac[:, 1] = 1.0
        jac[:, 2] = a * dpw_drate * c
        jac[:, 3] = a * dpw_drate * p
    else:
        pw = p**lengths
        jac[:, 0] = pw
        jac[:, 1] = 1.0
        jac[:, 2] = a * lengths * p ** np.maximum(lengths - 1, 0)
    return jac


def _varpro_start(group: _Group, weights: np.ndarray) -> tuple[float, float, float]:
    """Global start: for a grid of p, A and B are linear (closed-form WLS); keep the best p."""
    m = group.lengths
    m_max = max(float(m.max()), 1.0)
    # Grid in log(1-p): from "no decay within 1000x the longest length" to "decayed in 1 step".
    grid = 1.0 - np.exp(np.linspace(math.log(1e-3 / m_max), math.log(0.999), 400))
    x = grid[:, None] ** m[None, :]  # (grid, lengths)
    w, y = weights[None, :], group.mean[None, :]
    # Normal equations of y ~ A x + B, solved for every grid point at once.
    sw, sx, sy = w.sum(axis=1), (w * x).sum(axis=1), (w * y).sum(axis=1)
    sxx, sxy = (w * x * x).sum(axis=1), (w * x * y).sum(axis=1)
    det = sw * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(det > 0, (sw * sxy - sx * sy) / det, 0.0)
        b = np.where(det > 0, (sy - a * sx) / sw, float(np.average(group.mean, weights=weights)))
    chi2 = (w * (a[:, None] * x + b[:, None] - y) ** 2).sum(axis=1)
    best = int(np.nanargmin(chi2))
    return float(a[best]), float(b[best]), float(grid[best])


@dataclass
class _Solution:
    params: np.ndarray
    cov: np.ndarray
    chi2: float
    dof: int
    kappas: list[float]


def _solve(groups: list[tuple[_Group, bool]], start: np.ndarray) -> _Solution:
    """Iteratively reweighted least squares on per-length means of one or two curves."""
    n_par = start.size
    params = start.copy()
    kappas = [0.0 for _ in groups]
    lower = np.array([-2.0, -1.0, 0.0, 0.0][:n_par])
    upper = np.array([2.0, 2.0, 1.0, 2.0][:n_par])
    params = np.clip(params, lower + 1e-12, upper - 1e-12)
    sigma = None

    def spreads(par: np.ndarray) -> list[np.ndarray]:
        out = []
        for grp, inter in groups:
            rate = par[2] * par[3] if inter else par[2]
            out.append(np.abs(par[0]) * (1 - np.clip(rate, 0, 1) ** grp.lengths))
        return out

    for _ in range(_VARIANCE_ITERATIONS):
        sprd = spreads(params)
        preds = [_predict(params, g.lengths, inter) for g, inter in groups]
        kappas = [_estimate_kappa(g, pr, s) for (g, _), pr, s in zip(groups, preds, sprd)]
        sigma = np.sqrt(
            np.concatenate(
                [_mean_variance(g, pr, s, k) for (g, _), pr, s, k in zip(groups, preds, sprd, kappas)]
            )
        )
        y = np.concatenate([g.mean for g, _ in groups])

        def residual(par: np.ndarray, y=y, sigma=sigma) -> np.ndarray:
            pred = np.concatenate([_predict(par, g.lengths, inter) for g, inter in groups])
            return (pred - y) / sigma

        def jac(par: np.ndarray, sigma=sigma) -> np.ndarray:
            j = np.concatenate([_jacobian(par, g.lengths, inter) for g, inter in groups])
            return j / sigma[:, None]

        res = least_squares(residual, params, jac=jac, bounds=(lower, upper), method="trf", x_scale="jac")
        params = res.x

    assert sigma is not None
    jw = np.concatenate([_jacobian(params, g.lengths, inter) for g, inter in groups]) / sigma[:, None]
    resid = np.concatenate(
        [_predict(params, g.lengths, inter) - g.mean for g, inter in groups]
    ) / sigma
    chi2 = float(resid @ resid)
    dof = int(resid.size - n_par)
    fisher = jw.T @ jw
    try:
        cov = np.linalg.inv(fisher)
    except np.linalg.LinAlgError:
        cov = np.full((n_par, n_par), math.nan)
    # Significant lack of fit: widen rather than report a too-small error.
    if dof > 0 and chi2 > stats.chi2.ppf(0.99, dof):
        cov = cov * (chi2 / dof)
    return _Solution(params, cov, chi2, dof, kappas)


def _decay_problem(params: np.ndarray, cov: np.ndarray, lengths: np.ndarray, interleaved: bool, label: str) -> str:
    """Reason the fitted curve shows no usable decay, or ""."""
    a, p = params[0], params[2]
    rate = p * params[3] if interleaved else p
    if rate >= 1.0 - 1e-12 or a <= 0:
        return f"{label}: survival does not decay with length (no decay)"
    if not np.all(np.isfinite(cov)) or np.any(np.diag(cov) < 0):
        return f"{label}: singular fit, no identifiable decay over these lengths"
    m_lo, m_hi = float(lengths.min()), float(lengths.max())
    decay = a * (rate**m_lo - rate**m_hi)
    # Gradient of the decay w.r.t. the parameters, for its standard error.
    g = np.zeros(params.size)
    g[0] = rate**m_lo - rate**m_hi
    d_rate = a * (m_lo * rate ** max(m_lo - 1, 0) - m_hi * rate ** max(m_hi - 1, 0))
    if interleaved:
        g[2] = d_rate * params[3]
        g[3] = d_rate * p
    else:
        g[2] = d_rate
    sd = math.sqrt(max(float(g @ cov @ g), 0.0))
    if not decay > MIN_DECAY_SIGNIFICANCE * sd:
        return (
            f"{label}: no significant decay over lengths {int(m_lo)}..{int(m_hi)} "
            f"(decay {decay:.3g} +- {sd:.2g}); use longer sequences"
        )
    return ""


def _failed(num_qubits: int, reason: str, lengths: np.ndarray | None = None, n: int = 0) -> RBFitResult:
    lens = tuple(int(v) for v in np.unique(lengths)) if lengths is not None else ()
    return RBFitResult(ok=False, reason=reason, num_qubits=num_qubits, lengths=lens, num_sequences=n)


def _check_qubits(num_qubits: int) -> None:
    if isinstance(num_qubits, bool) or not isinstance(num_qubits, (int, np.integer)) or num_qubits < 1:
        raise RBInputError("num_qubits: must be a positive integer")


def fit_rb(lengths: ArrayLike, survival: ArrayLike, shots: ArrayLike, num_qubits: int) -> RBFitResult:
    """Fit standard RB. One entry per random sequence: its length, survival share, shots.

    Never raises for bad *data* (returns ok=False with a reason); raises RBInputError for
    malformed arguments.
    """
    _check_qubits(num_qubits)
    m, y, n = _check_arrays(lengths, survival, shots)
    problem = _data_problem(m, y)
    if problem:
        return _failed(num_qubits, problem, m, m.size)
    group = _group(m, y, n)
    a0, b0, p0 = _varpro_start(group, 1.0 / _mean_variance(group, group.mean, np.zeros(group.lengths.size), 0.0))
    sol = _solve([(group, False)], np.array([a0, b0, p0]))
    problem = _decay_problem(sol.params, sol.cov, group.lengths, False, "standard RB")
    if problem:
        return _failed(num_qubits, problem, m, m.size)
    return _result(num_qubits, sol, 0, group, m.size)


def _result(num_qubits: int, sol: _Solution, kappa_index: int, group: _Group, n_seq: int) -> RBFitResult:
    d = 2**num_qubits
    alpha = float(sol.params[2])
    alpha_sd = math.sqrt(float(sol.cov[2, 2]))
    return RBFitResult(
        ok=True,
        reason="",
        num_qubits=num_qubits,
        alpha=alpha,
        alpha_stderr=alpha_sd,
        epc=epc_from_alpha(alpha, num_qubits),
        epc_stderr=(d - 1) / d * alpha_sd,
        a=float(sol.params[0]),
        b=float(sol.params[1]),
        chi2_reduced=sol.chi2 / sol.dof if sol.dof > 0 else math.nan,
        sequence_variance_kappa=sol.kappas[kappa_index],
        lengths=tuple(int(v) for v in group.lengths),
        num_sequences=n_seq,
    )


def fit_interleaved_rb(
    lengths: ArrayLike,
    survival: ArrayLike,
    shots: ArrayLike,
    interleaved: ArrayLike,
    num_qubits: int,
) -> InterleavedRBFitResult:
    """Joint fit of standard and interleaved sequences with shared A and B.

    ``interleaved`` flags each sequence. alpha_c is *not* clipped to <= 1: an interleaved gate that
    looks better than the reference gives a negative gate error within its error bar, which is
    the honest estimate (qiskit-experiments clips at 1, biasing good gates upward).
    """
    _check_qubits(num_qubits)
    m, y, n = _check_arrays(lengths, survival, shots)
    flags = np.asarray(interleaved, dtype=bool)
    if flags.shape != m.shape:
        raise RBInputError("interleaved: must flag every sequence")
    if not flags.any() or flags.all():
        raise RBInputError("interleaved: need both standard and interleaved sequences")
    std = fit_rb(m[~flags], y[~flags], n[~flags], num_qubits)
    if not std.ok:
        return InterleavedRBFitResult(ok=False, reason=std.reason, standard=std)
    problem = _data_problem(m[flags], y[flags])
    if problem:
        return InterleavedRBFitResult(ok=False, reason=f"interleaved RB: {problem}", standard=std)
    g_std = _group(m[~flags], y[~flags], n[~flags])
    g_int = _group(m[flags], y[flags], n[flags])
    a1, b1, p1 = _varpro_start(g_int, 1.0 / _mean_variance(g_int, g_int.mean, np.zeros(g_int.lengths.size), 0.0))
    start = np.array([std.a, std.b, std.alpha, min(p1 / std.alpha, 1.999)])
    sol = _solve([(g_std, False), (g_int, True)], start)
    for grp, inter, label in ((g_std, False, "standard RB"), (g_int, True, "interleaved RB")):
        problem = _decay_problem(sol.params, sol.cov, grp.lengths, inter, label)
        if problem:
            return InterleavedRBFitResult(ok=False, reason=problem, standard=std)
    d = 2**num_qubits
    standard = _result(num_qubits, sol, 0, g_std, int((~flags).sum()))
    alpha_c = float(sol.params[3])
    alpha_c_sd = math.sqrt(float(sol.cov[3, 3]))
    gate_error = (d - 1) / d * (1 - alpha_c)
    e_sys = magesan_systematic_error(standard.alpha, alpha_c, num_qubits)
    return InterleavedRBFitResult(
        ok=True,
        reason="",
        standard=standard,
        alpha_interleaved=standard.alpha * alpha_c,
        alpha_c=alpha_c,
        alpha_c_stderr=alpha_c_sd,
        gate_error=gate_error,
        gate_error_stderr=(d - 1) / d * alpha_c_sd,
        systematic_error=e_sys,
        systematic_bounds=(max(gate_error - e_sys, 0.0), gate_error + e_sys),
        extra={"interleaved_kappa": sol.kappas[1], "num_interleaved_sequences": int(flags.sum())},
    )
