"""Variance-stabilising transforms per series kind.

A series is named "<kind>:<rest>" (e.g. "t1:q3", "readout_error:q3", "gate_error:cz:3_4");
the kind is the text before the first ':'. T1/T2 are positive with multiplicative noise, so we
chart log(value); error ratios live in (0, 1), so we chart logit(value). Both are increasing,
so "up" in the transformed space is "up" in the original value.

Values outside a transform's domain (or non-finite) are rejected, never raised on.
"""

from __future__ import annotations

import math

import numpy as np

NONE, LOG, LOGIT = 0, 1, 2
CODE_NAMES = {NONE: "none", LOG: "log", LOGIT: "logit"}
TRANSFORM_MODES = ("none", "log", "auto")

LOG_KINDS = frozenset({"t1", "t2"})
LOGIT_KINDS = frozenset({"readout_error", "gate_error", "probe_epc", "probe_gate_error"})

# Rejection reasons (short, bounded vocabulary: they may become metric label values).
REJECT_NON_FINITE = "non_finite"
REJECT_DOMAIN = "out_of_domain"
REJECT_STALE = "stale_timestamp"


def series_kind(series: str) -> str:
    return series.split(":", 1)[0]


def transform_code(series: str, mode: str) -> int:
    """Which transform a series gets under mode none|log|auto."""
    if mode == "none":
        return NONE
    if mode == "log":
        return LOG
    if mode == "auto":
        kind = series_kind(series)
        if kind in LOG_KINDS:
            return LOG
        if kind in LOGIT_KINDS:
            return LOGIT
        return NONE
    raise ValueError(f"transform must be one of {', '.join(TRANSFORM_MODES)}, got {mode!r}")


def apply(code: int, value: float) -> float | str:
    """Transform one value; returns the transformed float or a rejection reason (a str)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return REJECT_NON_FINITE
    if not math.isfinite(v):
        return REJECT_NON_FINITE
    if code == LOG:
        return math.log(v) if v > 0.0 else REJECT_DOMAIN
    if code == LOGIT:
        return math.log(v / (1.0 - v)) if 0.0 < v < 1.0 else REJECT_DOMAIN
    return v


def apply_array(codes: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised transform. Returns (transformed, ok, reason_domain) where rejected entries of
    `transformed` are NaN; reason_domain tells a domain rejection from a non-finite one."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    is_log = codes == LOG
    is_logit = codes == LOGIT
    in_domain = np.where(is_log, values > 0.0, True) & np.where(is_logit, (values > 0.0) & (values < 1.0), True)
    ok = finite & in_domain
    safe = np.where(ok, values, 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(is_log, np.log(safe), np.where(is_logit, np.log(safe / (1.0 - safe)), safe))
    out = np.where(ok, out, np.nan)
    return out, ok, finite & ~in_domain
