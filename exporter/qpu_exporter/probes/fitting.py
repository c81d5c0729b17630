"""Fit a probe's counts: survival per sequence, then rb.fit (pure numerics, no I/O).

Runs in the probe worker (scipy's optimisers and distributions stay out of the serving
process), on the sequences the worker just executed.
"""

from __future__ import annotations

import math


def survival_of(counts: dict[str, int], n: int) -> tuple[float, int]:
    from ..rb.cli_fit import is_all_zeros_outcome

    total = sum(counts.values())
    zero = sum(v for k, v in counts.items() if is_all_zeros_outcome(k))
    return (zero / total if total else math.nan), total


def fit_record(record: dict) -> tuple[dict | None, str]:
    """Fit a probe record's counts: (result section, "") or (None, reason)."""
    from ..rb.fit import fit_interleaved_rb, fit_rb

    seqs = record["sequences"]
    n = record["design"]["num_qubits"]
    lengths, surv, shots, flags = [], [], [], []
    for s in seqs:
        y, total = survival_of(s["counts"], n)
        lengths.append(s["length"])
        surv.append(y)
        shots.append(total)
        flags.append(bool(s["interleaved"]))
    gate = record["design"].get("interleaved_gate")
    if gate:
        r = fit_interleaved_rb(lengths, surv, shots, flags, n)
        if not r.ok:
            return None, r.reason
        std = r.standard
        inter = {"gate": gate, **r.to_dict()}
        inter.pop("ok"), inter.pop("reason")
    else:
        std = fit_rb(lengths, surv, shots, n)
        if not std.ok:
            return None, std.reason
        inter = None
    out = {k: v for k, v in std.to_dict().items() if k not in ("ok", "reason")}
    if not (math.isfinite(out["epc"]) and math.isfinite(out["epc_stderr"])):
        return None, "fit returned a non-finite EPC"
    if inter:
        out["interleaved"] = inter
    return out, ""
