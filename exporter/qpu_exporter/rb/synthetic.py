"""Fast synthetic RB data with known truth (numpy only), for tests and benchmarks.

Two generators:
- ``depolarizing_survival``: the exact per-sequence survival under a depolarizing channel after
  every Clifford (including the inverse): P(m) = (1 + (d-1) p^(m+1))/d, identical for every
  sequence (Magesan, Gambetta, Emerson, PRL 106, 180504 (2011)), then readout assignment error.
- ``BlochRB``: a one-qubit Bloch-vector simulator over the 24 Clifford rotations with a
  gate-independent noise map after every Clifford (coherent over-rotation or amplitude damping).
  Mean decay is exactly A p^m + B with the channel's p, but sequences differ, which is what tests
  an error bar's treatment of sequence-to-sequence variance.
Counts are binomial draws from those probabilities.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "depolarizing_survival",
    "apply_readout_error",
    "BlochRB",
    "coherent_noise",
    "amplitude_damping_noise",
    "depolarizing_noise",
    "alpha_from_epc",
]


def alpha_from_epc(epc: float, num_qubits: int) -> float:
    d = 2**num_qubits
    return 1.0 - epc * d / (d - 1)


def apply_readout_error(p_true: np.ndarray, readout_error: float, num_qubits: int) -> np.ndarray:
    """Observed all-zeros probability with a symmetric assignment error spread over wrong outcomes."""
    d = 2**num_qubits
    return (1 - readout_error) * p_true + readout_error * (1 - p_true) / (d - 1)


def depolarizing_survival(
    lengths: np.ndarray, alpha: float, num_qubits: int, interleaved_alpha_c: float | None = None
) -> np.ndarray:
    """Exact survival per sequence (before readout). Interleaved: m gates C in addition."""
    d = 2**num_qubits
    m = np.asarray(lengths, dtype=float)
    decay = alpha ** (m + 1)
    if interleaved_alpha_c is not None:
        decay = decay * interleaved_alpha_c**m
    return (1 + (d - 1) * decay) / d


def _clifford_rotations() -> np.ndarray:
    """The 24 proper rotations of the cube: signed permutation matrices with det +1."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            mat = np.zeros((3, 3))
            for row, (col, sign) in enumerate(zip(perm, signs)):
                mat[row, col] = sign
            if np.linalg.det(mat) > 0:
                mats.append(mat)
    return np.array(mats)


def depolarizing_noise(epc: float) -> tuple[np.ndarray, np.ndarray]:
    return alpha_from_epc(epc, 1) * np.eye(3), np.zeros(3)


def coherent_noise(epc: float, axis: tuple[float, float, float] = (1.0, 1.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """Over-rotation by theta about ``axis`` with EPC = (1 - cos theta)/3."""
    theta = math.acos(1 - 3 * epc)
    n = np.asarray(axis, dtype=float)
    n = n / np.linalg.norm(n)
    k = np.array([[0, -n[2], n[1]], [n[2], 0, -n[0]], [-n[1], n[0], 0]])
    rot = np.eye(3) + math.sin(theta) * k + (1 - math.cos(theta)) * (k @ k)
    return rot, np.zeros(3)


def amplitude_damping_noise(epc: float) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude damping gamma with unital-part decay (2 sqrt(1-g) + 1 - g)/3 = 1 - 2 EPC."""
    target = alpha_from_epc(epc, 1)
    # (2s + s^2)/3 = target with s = sqrt(1-g)  ->  s = -1 + sqrt(1 + 3 target)
    s = -1 + math.sqrt(1 + 3 * target)
    gamma = 1 - s * s
    return np.diag([s, s, 1 - gamma]), np.array([0.0, 0.0, gamma])


class BlochRB:
    """Vectorised 1q RB: many random sequences of one length at once."""

    def __init__(self, noise: tuple[np.ndarray, np.ndarray]):
        self.rotations = _clifford_rotations()
        self.noise_matrix, self.noise_shift = noise

    def survival(self, length: int, num_sequences: int, rng: np.random.Generator, interleaved: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """P(0) of ``num_sequences`` random sequences of ``length`` Cliffords plus the inverse.

        ``interleaved``: (rotation, noise) pair of an interleaved gate, as (3x3, (3x3, 3)).
        """
        mat, shift = self.noise_matrix, self.noise_shift
        v = np.tile(np.array([0.0, 0.0, 1.0]), (num_sequences, 1))
        total = np.tile(np.eye(3), (num_sequences, 1, 1))
        for _ in range(length):
            c = self.rotations[rng.integers(24, size=num_sequences)]
            v = np.einsum("sij,sj->si", c, v) @ mat.T + shift
            total = np.einsum("sij,sjk->sik", c, total)
            if interleaved is not None:
                rot, (imat, ishift) = interleaved
                v = (v @ rot.T) @ imat.T + ishift
                total = np.einsum("ij,sjk->sik", rot, total)
        inverse = np.transpose(total, (0, 2, 1))
        v = np.einsum("sij,sj->si", inverse, v) @ mat.T + shift
        return np.clip((1 + v[:, 2]) / 2, 0.0, 1.0)
