"""JSON front end of ``qpu-exporter rb-fit``: validate the document, fit, return a JSON-able dict.

Input::

    {"num_qubits": 1|2,
     "sequences": [{"length": m, "counts": {"0": n0, "1": n1, ...}, "interleaved": false}, ...]}

One entry per random sequence. Survival = share of the all-zeros outcome. An outcome key counts
as all-zeros when, after removing spaces and underscores (register separators), it is either a
string of only '0' characters ("0", "00", "0 0") or a hex literal of value zero ("0x0", "0x00").
Any other key made of 0/1 digits or a hex literal is a non-survival outcome; anything else is
malformed. Keys are not required to have num_qubits digits (qiskit drops leading zeros in hex).

Errors: malformed input -> RBInputError (CLI exit 2), data that cannot be fitted -> RBFitError
(CLI exit 1). Both carry a one-line message; input errors name the offending location, e.g.
``sequences[3].counts: must be an object of outcome -> count``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .fit import RBFitError, RBInputError, fit_interleaved_rb, fit_rb

__all__ = ["fit_json", "is_all_zeros_outcome", "RBInputError", "RBFitError"]

_BINARY = re.compile(r"^[01]+$")
_HEX = re.compile(r"^0[xX][0-9a-fA-F]+$")


def is_all_zeros_outcome(key: str) -> bool:
    """True for the all-zeros outcome; raises ValueError for keys that are not outcomes."""
    compact = key.replace(" ", "").replace("_", "")
    if _BINARY.match(compact):
        return set(compact) == {"0"}
    if _HEX.match(compact):
        return int(compact, 16) == 0
    raise ValueError(key)


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value) and value == int(value)


def _parse_counts(where: str, counts: Any) -> tuple[int, int]:
    if not isinstance(counts, dict) or not counts:
        raise RBInputError(f"{where}: must be an object of outcome -> count")
    survived = total = 0
    for key, value in counts.items():
        if not isinstance(key, str):
            raise RBInputError(f"{where}: outcome keys must be strings")
        try:
            zero = is_all_zeros_outcome(key)
        except ValueError:
            raise RBInputError(f"{where}[{key!r}]: outcome must be a bitstring like \"01\" or hex like \"0x1\"") from None
        if not _is_int(value) or value < 0:
            raise RBInputError(f"{where}[{key!r}]: count must be a non-negative integer")
        total += int(value)
        if zero:
            survived += int(value)
    if total == 0:
        raise RBInputError(f"{where}: total count is zero")
    return survived, total


def _parse(obj: Any) -> tuple[int, list[int], list[int], list[int], list[bool]]:
    if not isinstance(obj, dict):
        raise RBInputError("input: must be a JSON object with num_qubits and sequences")
    nq = obj.get("num_qubits")
    if "num_qubits" not in obj:
        raise RBInputError("num_qubits: missing")
    if not _is_int(nq) or int(nq) not in (1, 2):
        raise RBInputError("num_qubits: must be 1 or 2")
    seqs = obj.get("sequences")
    if "sequences" not in obj:
        raise RBInputError("sequences: missing")
    if not isinstance(seqs, list) or not seqs:
        raise RBInputError("sequences: must be a non-empty array")
    lengths, survived, shots, flags = [], [], [], []
    for i, seq in enumerate(seqs):
        where = f"sequences[{i}]"
        if not isinstance(seq, dict):
            raise RBInputError(f"{where}: must be an object with length and counts")
        if "length" not in seq:
            raise RBInputError(f"{where}.length: missing")
        length = seq["length"]
        if not _is_int(length) or length < 1:
            raise RBInputError(f"{where}.length: must be a positive integer")
        if "counts" not in seq:
            raise RBInputError(f"{where}.counts: missing")
        s, n = _parse_counts(f"{where}.counts", seq["counts"])
        inter = seq.get("interleaved", False)
        if not isinstance(inter, bool):
            raise RBInputError(f"{where}.interleaved: must be true or false")
        lengths.append(int(length))
        survived.append(s)
        shots.append(n)
        flags.append(inter)
    if all(flags):
        raise RBInputError("sequences: interleaved sequences need standard (interleaved: false) ones too")
    return int(nq), lengths, survived, shots, flags


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def fit_json(obj: Any) -> dict[str, Any]:
    """Fit the RB document ``obj`` (already parsed JSON). See the module docstring."""
    nq, lengths, survived, shots, flags = _parse(obj)
    survival = [s / n for s, n in zip(survived, shots)]
    if any(flags):
        res = fit_interleaved_rb(lengths, survival, shots, flags, nq)
        res.raise_for_failure()
        std = res.standard
    else:
        std = fit_rb(lengths, survival, shots, nq).raise_for_failure()
        res = None
    out: dict[str, Any] = {
        "num_qubits": nq,
        "alpha": std.alpha,
        "alpha_stderr": std.alpha_stderr,
        "epc": std.epc,
        "epc_stderr": std.epc_stderr,
        "a": std.a,
        "b": std.b,
        "chi2_reduced": _num(std.chi2_reduced),
        "sequence_variance_kappa": std.sequence_variance_kappa,
        "lengths": list(std.lengths),
        "num_sequences": std.num_sequences,
        "method": "WLS on per-length means, binomial + pooled between-sequence variance",
    }
    if res is not None:
        out["interleaved"] = {
            "alpha_c": res.alpha_c,
            "alpha_c_stderr": res.alpha_c_stderr,
            "alpha_interleaved": res.alpha_interleaved,
            "gate_error": res.gate_error,
            "gate_error_stderr": res.gate_error_stderr,
            "systematic_error": res.systematic_error,
            "systematic_bounds": list(res.systematic_bounds),
            "num_sequences": res.extra["num_interleaved_sequences"],
        }
    return out
