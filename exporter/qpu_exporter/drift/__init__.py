"""Drift detection: self-starting EWMA and CUSUM per series, designed by ARL0. Pure, no I/O."""

from .backtest import DriftInputError, parse_csv, run_backtest, run_backtest_detailed
from .design import ChartDesign, cusum_arl, cusum_h, design_chart, ewma_arl, ewma_limit
from .detectors import CusumDetector, EwmaDetector
from .monitor import Alarm, BatchResult, DriftMonitor, DriftSettings

__all__ = [
    "Alarm",
    "BatchResult",
    "ChartDesign",
    "CusumDetector",
    "DriftInputError",
    "DriftMonitor",
    "DriftSettings",
    "EwmaDetector",
    "cusum_arl",
    "cusum_h",
    "design_chart",
    "ewma_arl",
    "ewma_limit",
    "parse_csv",
    "run_backtest",
    "run_backtest_detailed",
]
