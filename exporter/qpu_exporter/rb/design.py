"""Choose RB lengths, sequences per length and shots for a target precision within a budget.

Pure numerics (numpy only). The rule (derived from the Cramér-Rao bound of the decay fit;
docs/rb.md and benchmarks/rb_accuracy.py):
- Lengths scale with 1/(1-p) of the *expected* decay (from the current calibration): then the
  relative precision of EPC does not depend on the error rate. The template
  m(1-p) in {~0 (m=1), 0.3, 0.7, 1.2, 2.5, 5} with sequence weights {1, 1.5, 2, 2, 1.5, 2}
  was chosen by the Cramer-Rao bound: ~5.6/sqrt(S) relative sd of EPC at S total shots when the
  prior is right (the 10-length log-spaced design gives ~9.9/sqrt(S)), and it stays within 2x of
  that when the true EPC is 3x better or worse than expected.
- Spend shots on *more sequences* rather than more shots per sequence: between-sequence
  variance (coherent errors) is only averaged down by sequences. Shots per sequence stay at
  ``min_shots`` until ``max_circuits`` is reached; only then do shots per sequence grow.
- The total shot count is the smallest that reaches the target (shot-noise CRB), capped by the
  budget. ``expected_rel_precision`` is the CRB of the final design under depolarizing-like
  noise; coherent errors add a floor ~0.9/sqrt(sequences per length) that no shot count removes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["RBDesign", "design_rb", "predicted_rel_precision", "LENGTH_TEMPLATE", "SAMPLE_WEIGHTS"]

LENGTH_TEMPLATE = (0.0, 0.3, 0.7, 1.2, 2.5, 5.0)  # m * (1 - p); 0 means m = 1
SAMPLE_WEIGHTS = (1.0, 1.5, 2.0, 2.0, 1.5, 2.0)
DEFAULT_READOUT_ERROR = 0.02


@dataclass(frozen=True)
class RBDesign:
    num_qubits: int
    expected_epc: float
    lengths: tuple[int, ...]
    samples_per_length: tuple[int, ...]  # per curve (standard, and again interleaved)
    shots: int  # per sequence
    seed: int
    interleaved_gate: str | None
    expected_gate_error: float | None
    target_rel_precision: float
    shot_budget: int
    total_shots: int
    expected_rel_precision: float  # of EPC (standard curve)
    expected_gate_error_rel_precision: float | None
    limited_by: str  # "target", "budget", "max_length" or "minimum_design"

    @property
    def num_circuits(self) -> int:
        return sum(self.samples_per_length) * (2 if self.interleaved_gate else 1)

    def to_dict(self) -> dict:
        rec = asdict(self)
        rec["lengths"] = list(self.lengths)
        rec["samples_per_length"] = list(self.samples_per_length)
        rec["num_circuits"] = self.num_circuits
        return rec


def _alpha(epc: float, num_qubits: int) -> float:
    d = 2**num_qubits
    return 1.0 - epc * d / (d - 1)


def _spam(num_qubits: int, readout_error: float) -> tuple[float, float]:
    d = 2**num_qubits
    # Survival (1 + (d-1) p^m)/d seen through a symmetric assignment error e.
    e = readout_error
    a = (d - 1) / d * ((1 - e) - e / (d - 1))
    b = (1 - e) / d + e * (1 - 1 / d) / (d - 1)
    return a, b


def _fisher_cov(
    num_qubits: int,
    alpha: float,
    lengths: np.ndarray,
    sequences: np.ndarray,
    shots: float,
    readout_error: float,
    alpha_c: float | None = None,
) -> np.ndarray:
    """Inverse Fisher information for (A, B, p[, alpha_c]) under binomial shot noise."""
    a, b = _spam(num_qubits, readout_error)
    m = lengths.astype(float)
    blocks = []
    curves = [(False, sequences)] + ([(True, sequences)] if alpha_c is not None else [])
    n_par = 4 if alpha_c is not None else 3
    info = np.zeros((n_par, n_par))
    for inter, k in curves:
        rate = alpha * alpha_c if inter else alpha
        pw = rate**m
        prob = np.clip(a * pw + b, 1e-9, 1 - 1e-9)
        jac = np.zeros((m.size, n_par))
        jac[:, 0] = pw
        jac[:, 1] = 1.0
        d_rate = a * m * rate ** np.maximum(m - 1, 0)
        jac[:, 2] = d_rate * (alpha_c if inter else 1.0)
        if inter:
            jac[:, 3] = d_rate * alpha
        w = k * shots / (prob * (1 - prob))
        info += (jac * w[:, None]).T @ jac
        blocks.append(jac)
    return np.linalg.pinv(info)


def predicted_rel_precision(
    num_qubits: int,
    epc: float,
    lengths,
    samples_per_length,
    shots: float,
    readout_error: float = DEFAULT_READOUT_ERROR,
) -> float:
    """Cramer-Rao relative standard deviation of EPC for a design (shot noise only)."""
    alpha = _alpha(epc, num_qubits)
    cov = _fisher_cov(num_qubits, alpha, np.asarray(lengths), np.asarray(samples_per_length, float), shots, readout_error)
    return math.sqrt(max(cov[2, 2], 0.0)) / (1 - alpha)


def _template_lengths(alpha: float, max_length: int | None) -> tuple[np.ndarray, np.ndarray, bool]:
    scale = 1.0 / (1.0 - alpha)
    raw = np.maximum(1, np.round(np.asarray(LENGTH_TEMPLATE) * scale)).astype(int)
    capped = False
    if max_length is not None and raw.max() > max_length:
        raw = np.minimum(raw, max_length)
        capped = True
    weights = np.asarray(SAMPLE_WEIGHTS)
    lengths, inverse = np.unique(raw, return_inverse=True)
    merged = np.zeros(lengths.size)
    np.add.at(merged, inverse, weights)
    if lengths.size < 3:
        # Very bad qubits (1/(1-p) ~ 1) or a harsh cap: spread 3+ lengths geometrically.
        top = max(int(lengths.max()), 4)
        lengths = np.unique(np.round(np.geomspace(1, top, 4)).astype(int))
        merged = np.ones(lengths.size)
    return lengths, merged / merged.sum(), capped


def design_rb(
    num_qubits: int,
    expected_epc: float,
    *,
    target_rel_precision: float = 0.05,
    shot_budget: int = 30_000,
    seed: int | None = None,
    min_shots: int = 100,
    max_circuits: int = 300,
    min_samples: int = 3,
    max_length: int | None = None,
    interleaved_gate: str | None = None,
    expected_gate_error: float | None = None,
    readout_error: float = DEFAULT_READOUT_ERROR,
) -> RBDesign:
    """Design for a target relative precision of EPC within ``shot_budget`` (all circuits).

    With ``interleaved_gate`` the budget is split evenly between standard and interleaved
    sequences (same lengths, same samples).
    """
    if num_qubits not in (1, 2):
        raise ValueError("num_qubits: 1 or 2")
    if not (0 < expected_epc < 0.5):
        raise ValueError("expected_epc: must be in (0, 0.5)")
    if not (0 < target_rel_precision < 1):
        raise ValueError("target_rel_precision: must be in (0, 1)")
    if shot_budget < 1 or min_shots < 1 or max_circuits < 1 or min_samples < 2:
        raise ValueError("shot_budget, min_shots, max_circuits >= 1 and min_samples >= 2")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    curves = 2 if interleaved_gate else 1
    epc = min(max(expected_epc, 1e-6), 0.3)
    alpha = _alpha(epc, num_qubits)
    lengths, weights, capped = _template_lengths(alpha, max_length)
    n_len = lengths.size

    # Shots (per curve) the template needs for the target, from its scale-free CRB constant.
    unit = predicted_rel_precision(num_qubits, epc, lengths, weights, 1.0, readout_error)
    needed = (unit / target_rel_precision) ** 2
    per_curve_budget = shot_budget / curves
    limited_by = "max_length" if capped else "target"
    if needed > per_curve_budget:
        needed, limited_by = per_curve_budget, "budget"

    # Sequences first (up to max_circuits), then shots per sequence.
    max_seq = max(max_circuits // curves, min_samples * n_len)
    n_seq = int(min(max(needed / min_shots, min_samples * n_len), max_seq))
    shots = max(1, int(needed // n_seq))
    if shots < min_shots:
        shots_floor = max(1, int(per_curve_budget // (min_samples * n_len)))
        shots = min(min_shots, shots_floor)
        if shots * n_seq * curves > shot_budget:
            n_seq = min_samples * n_len
            limited_by = "minimum_design"
    samples = np.maximum(min_samples, np.round(weights * n_seq)).astype(int)
    # Rounding may overshoot the budget: trim the largest allocations first.
    while int(samples.sum()) * shots * curves > shot_budget and samples.max() > min_samples:
        samples[int(np.argmax(samples))] -= 1
    total = int(samples.sum()) * shots * curves

    expected = predicted_rel_precision(num_qubits, epc, lengths, samples, shots, readout_error)
    gate_rel = None
    if interleaved_gate and expected_gate_error:
        d = 2**num_qubits
        alpha_c = 1.0 - expected_gate_error * d / (d - 1)
        cov = _fisher_cov(num_qubits, alpha, lengths, samples.astype(float), shots, readout_error, alpha_c)
        gate_rel = math.sqrt(max(cov[3, 3], 0.0)) / (1 - alpha_c)
    return RBDesign(
        num_qubits=num_qubits,
        expected_epc=float(expected_epc),
        lengths=tuple(int(v) for v in lengths),
        samples_per_length=tuple(int(v) for v in samples),
        shots=int(shots),
        seed=int(seed),
        interleaved_gate=interleaved_gate,
        expected_gate_error=expected_gate_error,
        target_rel_precision=float(target_rel_precision),
        shot_budget=int(shot_budget),
        total_shots=total,
        expected_rel_precision=float(expected),
        expected_gate_error_rel_precision=gate_rel,
        limited_by=limited_by,
    )
