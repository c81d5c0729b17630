"""Streaming two-sided EWMA and tabular CUSUM on standardized inputs.

The step functions work elementwise on numpy arrays (the monitor updates many series at once)
and on 1-element arrays (the single-series classes below), so both share one code path.
Inputs u are standardized, clipped values (x - mu)/sigma; limits are in the same units.
After a signal a chart restarts from its in-control state (z = 0; C+ = C- = 0), so every
alarm is a separate event.

Direction codes: +1 up, -1 down, 0 no signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UP, DOWN, NO_SIGNAL = 1, -1, 0
DIRECTION_NAMES = {UP: "up", DOWN: "down"}


def ewma_step(z: np.ndarray, u: np.ndarray, lam: float | np.ndarray, bound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One EWMA update. bound = L * asymptotic sd of z. Returns (new z after restart, signal)."""
    z = lam * u + (1.0 - lam) * z
    signal = np.where(z > bound, UP, np.where(z < -bound, DOWN, NO_SIGNAL)).astype(np.int8)
    z = np.where(signal != NO_SIGNAL, 0.0, z)
    return z, signal


def cusum_step(
    cp: np.ndarray, cm: np.ndarray, u: np.ndarray, k: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One tabular CUSUM update. Returns (C+, C- after restart, signal)."""
    cp = np.maximum(0.0, cp + u - k)
    cm = np.maximum(0.0, cm - u - k)
    over_up = cp - h
    over_down = cm - h
    # Both sides above h at once needs huge alternating inputs; the larger excess names it.
    signal = np.where(
        (over_up > 0.0) & (over_up >= over_down), UP, np.where(over_down > 0.0, DOWN, NO_SIGNAL)
    ).astype(np.int8)
    fired = signal != NO_SIGNAL
    return np.where(fired, 0.0, cp), np.where(fired, 0.0, cm), signal


@dataclass(slots=True)
class EwmaDetector:
    """Single-series two-sided EWMA with asymptotic limits: signal when |z| > limit * sd."""

    lam: float
    limit: float
    sd: float  # asymptotic sd of z in input units: sqrt(lam/(2-lam)) for iid inputs
    z: float = 0.0

    def update(self, u: float) -> int:
        z, signal = ewma_step(np.array([self.z]), np.array([u], dtype=np.float64), self.lam, np.array([self.limit * self.sd]))
        self.z = float(z[0])
        return int(signal[0])

    @property
    def statistic(self) -> float:
        """z in units of its asymptotic sd (compare with +-limit)."""
        return self.z / self.sd

    def to_dict(self) -> dict:
        return {"lam": self.lam, "limit": self.limit, "sd": self.sd, "z": self.z}

    @classmethod
    def from_dict(cls, d: dict) -> EwmaDetector:
        return cls(lam=float(d["lam"]), limit=float(d["limit"]), sd=float(d["sd"]), z=float(d["z"]))


@dataclass(slots=True)
class CusumDetector:
    """Single-series two-sided tabular CUSUM: signal when C+ or C- exceeds h."""

    k: float
    h: float
    cp: float = 0.0
    cm: float = 0.0

    def update(self, u: float) -> int:
        cp, cm, signal = cusum_step(
            np.array([self.cp]), np.array([self.cm]), np.array([u], dtype=np.float64), np.array([self.k]), np.array([self.h])
        )
        self.cp, self.cm = float(cp[0]), float(cm[0])
        return int(signal[0])

    @property
    def statistic(self) -> float:
        return max(self.cp, self.cm)

    def to_dict(self) -> dict:
        return {"k": self.k, "h": self.h, "cp": self.cp, "cm": self.cm}

    @classmethod
    def from_dict(cls, d: dict) -> CusumDetector:
        return cls(k=float(d["k"]), h=float(d["h"]), cp=float(d["cp"]), cm=float(d["cm"]))
