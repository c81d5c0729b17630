"""Randomized benchmarking: circuits (qiskit), design and fit (pure numerics), Aer execution.

The names below are the pure-numerics parts, imported on first use (PEP 562): importing a
submodule (the serving process designs probes with ``rb.design``) must not pull scipy's fit
machinery in with this package. Import ``qpu_exporter.rb.circuits`` / ``.noise`` /
``.execute_aer`` (qiskit, Aer) explicitly.
"""

import importlib

_HOME = {
    "fit_json": "cli_fit", "is_all_zeros_outcome": "cli_fit",
    "RBDesign": "design", "design_rb": "design", "predicted_rel_precision": "design",
    "InterleavedRBFitResult": "fit", "RBFitError": "fit", "RBFitResult": "fit", "RBInputError": "fit",
    "epc_from_alpha": "fit", "fit_interleaved_rb": "fit", "fit_rb": "fit", "magesan_systematic_error": "fit",
}


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


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
