"""Are two measured count distributions the same? A two-sample test of homogeneity and the
Hellinger fidelity between them, with a bootstrap confidence interval. Pure numerics, no I/O:
``qpu-exporter compare`` reads the files and prints what ``compare_counts`` returns.

The test is Pearson's chi-square on the 2 x K table (rows: the two samples, columns: the
outcomes seen in either), with its p-value from the exact conditional (permutation) distribution
of the statistic: given both margins, under homogeneity the first row is multivariate
hypergeometric, so tables drawn from it are exactly the tables a random relabelling of the shots
would give. The Monte Carlo p-value ``(1 + #{X*2 >= X2}) / (1 + B)`` is valid for any number of
draws B (P(p <= alpha) <= alpha under the null; Davison & Hinkley 1997, "Bootstrap Methods and
their Application", section 4.2.5), so small counts and many rare outcomes (wide registers) are
safe. The chi-square distribution with K - 1 degrees of freedom is used instead only where the
permutation would be expensive (many outcomes and many shots) and every expected cell count is at
least 5 (Cochran's rule). It is not used for every table that meets Cochran's rule because on small
tables it is not conservative: the uncorrected 2 x 2 test at 25 shots per sample and p = 0.5
rejects 6.5 % of identical pairs at alpha = 0.05, and still 5.6 % at 100 shots (exact enumeration).

The Hellinger fidelity (sum_k sqrt(p_k q_k))^2 is that of qiskit.quantum_info.hellinger_fidelity.
Its plug-in estimate is biased low (two samples of one distribution score below 1), so the
interval is the basic (reverse-percentile) bootstrap interval, which corrects for that bias
(Davison & Hinkley 1997, eq. 5.6): resampling each sample's shots with replacement is drawing
multinomial(n, p_hat), done here on the counts directly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2

from .probes.agreement import distribution, hellinger_fidelity

MIN_EXPECTED = 5.0  # Cochran's rule for the chi-square approximation
PERMUTATION_RESAMPLES = 9_999
PERMUTATION_BUDGET = 1e8  # draws x per-draw cost above which a Cochran-valid table uses chi-square (~3 s)
BOOTSTRAP_RESAMPLES = 1_000
DEFAULT_SEED = 20_240_601  # fixed: the same files always give the same answer
_CHUNK_CELLS = 2_000_000  # resampled tables are drawn in chunks of at most this many cells
_BITSTRING = re.compile(r"[01]+")
_TIE = 1e-9  # relative tolerance: a resampled statistic equal to the observed one counts as >=


class CountsError(ValueError):
    """A counts document is malformed; the message says what is wrong (the caller adds where)."""


@dataclass(frozen=True)
class TestResult:
    test: str  # "pearson_chi2_permutation" (exact conditional, Monte Carlo) or "pearson_chi2" (asymptotic)
    statistic: float
    p_value: float


def parse_counts(doc: object) -> dict[str, int]:
    """``{"counts": {bitstring: count}}`` (other keys ignored) -> counts with spaces removed
    from the keys (qiskit separates registers with a space). Raises CountsError."""
    if not isinstance(doc, dict):
        raise CountsError("expected a JSON object with a \"counts\" object")
    counts = doc.get("counts")
    if not isinstance(counts, dict):
        raise CountsError("no \"counts\" object")
    out: dict[str, int] = {}
    width = None
    for key, value in counts.items():
        bits = key.replace(" ", "")
        if not _BITSTRING.fullmatch(bits):
            raise CountsError(f"outcome {key!r} is not a bitstring")
        if width is None:
            width = len(bits)
        elif len(bits) != width:
            raise CountsError(f"outcomes have different lengths ({width} and {len(bits)} bits)")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CountsError(f"count of {key!r} must be a non-negative integer, got {value!r}")
        out[bits] = out.get(bits, 0) + value
    if sum(out.values()) == 0:
        raise CountsError("no shots (the counts are empty or all zero)")
    return out


def width(counts: Mapping[str, int]) -> int:
    return len(next(iter(counts)))


def _table(a: Mapping[str, int], b: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k, 0) + b.get(k, 0) > 0)
    return (np.array([a.get(k, 0) for k in keys], dtype=np.int64),
            np.array([b.get(k, 0) for k in keys], dtype=np.int64))


def _pearson(rows_a: np.ndarray, totals: np.ndarray, n_a: int, n_b: int) -> np.ndarray:
    """Pearson's X^2 of 2 x K tables given their first rows (last axis = outcomes) and the column
    totals: with b = c - a, X^2 = N^2 / (n_a n_b) * sum_k (a_k - n_a c_k / N)^2 / c_k."""
    n = n_a + n_b
    dev = rows_a - totals * (n_a / n)
    return (n * n / (n_a * n_b)) * np.sum(dev * dev / totals, axis=-1)


def permutation_resamples(alpha: float) -> int:
    """Draws for the Monte Carlo p-value: enough that p-values well below alpha can be reached."""
    return max(PERMUTATION_RESAMPLES, math.ceil(20 / alpha) - 1)


def homogeneity_test(a: Mapping[str, int], b: Mapping[str, int], *, alpha: float = 0.05,
                     rng: np.random.Generator | None = None, resamples: int | None = None,
                     budget: float = PERMUTATION_BUDGET) -> TestResult:
    """Pearson's chi-square test that ``a`` and ``b`` were drawn from one distribution (see the
    module docstring for which p-value is used). ``resamples`` defaults to
    ``permutation_resamples(alpha)``; ``budget`` bounds the permutation's work (draws x cost per draw)."""
    row_a, row_b = _table(a, b)
    n_a, n_b = int(row_a.sum()), int(row_b.sum())
    if n_a == 0 or n_b == 0:
        raise CountsError("a sample has no shots")
    totals = row_a + row_b
    if len(totals) < 2:  # one outcome in both samples: nothing can differ
        return TestResult("pearson_chi2_permutation", 0.0, 1.0)
    observed = float(_pearson(row_a, totals, n_a, n_b))
    resamples = resamples if resamples is not None else permutation_resamples(alpha)
    # numpy's "count" method costs O(n_a) per table, "marginals" O(K): take the cheaper one.
    method = "count" if n_a < 4 * len(totals) else "marginals"
    work = resamples * (n_a if method == "count" else 4 * len(totals))
    smallest_expected = float(totals.min()) * min(n_a, n_b) / (n_a + n_b)
    if work > budget and smallest_expected >= MIN_EXPECTED:
        return TestResult("pearson_chi2", observed, float(chi2.sf(observed, len(totals) - 1)))
    rng = rng if rng is not None else np.random.default_rng(DEFAULT_SEED)
    at_least = 0
    chunk = max(1, _CHUNK_CELLS // len(totals))
    threshold = observed * (1 - _TIE)
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        rows = rng.multivariate_hypergeometric(totals, n_a, size=size, method=method)
        at_least += int(np.count_nonzero(_pearson(rows, totals, n_a, n_b) >= threshold))
        done += size
    return TestResult("pearson_chi2_permutation", observed, (1 + at_least) / (1 + resamples))


def _fidelities(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    bc = np.sum(np.sqrt(p * q), axis=-1)
    return np.minimum(1.0, bc * bc)


def hellinger_interval(a: Mapping[str, int], b: Mapping[str, int], *, level: float = 0.95,
                       rng: np.random.Generator | None = None,
                       resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """Basic bootstrap interval for the Hellinger fidelity of the two distributions, clipped to [0, 1]."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level {level} outside (0, 1)")
    row_a, row_b = _table(a, b)
    n_a, n_b = int(row_a.sum()), int(row_b.sum())
    p, q = row_a / n_a, row_b / n_b
    estimate = float(_fidelities(p, q))
    rng = rng if rng is not None else np.random.default_rng(DEFAULT_SEED + 1)
    chunk = max(1, _CHUNK_CELLS // len(p))
    replicates = []
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        replicates.append(_fidelities(rng.multinomial(n_a, p, size=size) / n_a, rng.multinomial(n_b, q, size=size) / n_b))
        done += size
    values = np.concatenate(replicates)
    tail = (1 - level) / 2
    q_lo, q_hi = np.quantile(values, [tail, 1 - tail])
    lo, hi = 2 * estimate - q_hi, 2 * estimate - q_lo
    return float(min(1.0, max(0.0, lo))), float(min(1.0, max(0.0, hi)))


def compare_counts(a: Mapping[str, int], b: Mapping[str, int], alpha: float = 0.05,
                   seed: int = DEFAULT_SEED) -> dict:
    """The ``compare`` verdict: test, statistic, p_value, hellinger_fidelity, its (1 - alpha)
    bootstrap interval, and ``different`` (p_value <= alpha)."""
    if isinstance(alpha, bool) or not isinstance(alpha, float | int) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    rng = np.random.default_rng(seed)
    result = homogeneity_test(a, b, alpha=alpha, rng=rng)
    fidelity = hellinger_fidelity(distribution(a), distribution(b))
    lo, hi = hellinger_interval(a, b, level=1 - alpha, rng=rng)
    return {
        "test": result.test,
        "statistic": result.statistic,
        "p_value": result.p_value,
        "hellinger_fidelity": fidelity,
        "hellinger_fidelity_ci": [lo, hi],
        "different": bool(result.p_value <= alpha),
    }

