"""Randomized benchmarking: circuits (qiskit), design and fit (pure numerics), Aer execution.

Only the pure-numerics parts are imported here, so ``import qpu_exporter.rb`` stays cheap and
free of qiskit; import ``qpu_exporter.rb.circuits`` / ``.noise`` / ``.execute_aer`` explicitly.
"""

from .cli_fit import fit_json, is_all_zeros_outcome
from .design import RBDesign, design_rb, predicted_rel_precision
from .fit import (
    InterleavedRBFitResult,
    RBFitError,
    RBFitResult,
    RBInputError,
    epc_from_alpha,
    fit_interleaved_rb,
    fit_rb,
    magesan_systematic_error,
)

__all__ = [
    "fit_json",
    "is_all_zeros_outcome",
    "RBDesign",
    "design_rb",
    "predicted_rel_precision",
    "InterleavedRBFitResult",
    "RBFitError",
    "RBFitResult",
    "RBInputError",
    "epc_from_alpha",
    "fit_interleaved_rb",
    "fit_rb",
    "magesan_systematic_error",
]
