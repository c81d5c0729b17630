"""What IBM bills for a job or a session, from its metrics and the configured plan (pure).

IBM's published rules (IBM Quantum documentation, "Workload usage"): usage is the time a QPU
is locked for a workload. **Job** and **batch** mode: each job's quantum time, reported per
job in ``GET /jobs/{id}/metrics`` as ``usage.qpu_charge_time_seconds``. **Session** mode: the
wall-clock time the session is active, whatever its jobs did, reported by
``GET /sessions/{id}`` as ``elapsed_time``; it is billed once, for the session. Usage may be
reported before it is final: qiskit-ibm-runtime's ``RuntimeJobV2.usage()`` returns 0 until
``usage.status`` is no longer ``pending`` (a missing status counts as pending there, and here).
The plan (``billing`` in the config) turns seconds into dollars: ``IbmBilling.rate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import IbmBilling

# Session ``mode`` values of the runtime API: "dedicated" is session mode, "batch" batch mode.
SESSION_MODE = "dedicated"
SESSION_FINAL_STATE = "closed"  # an inactive session can become active again; a closed one cannot


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def job_usage(metrics: dict | None) -> tuple[float | None, bool]:
    """(billed seconds, final) from a job's metrics; (None, False) while pending."""
    usage = metrics.get("usage") if isinstance(metrics, dict) else None
    if not isinstance(usage, dict):
        return None, False
    seconds = _number(usage.get("qpu_charge_time_seconds"))
    status = str(usage.get("status") or "pending").strip().lower()
    if status == "pending" or seconds is None:
        return None, False
    return max(0.0, seconds), True


def session_id_of(entry: dict) -> str | None:
    """The session or batch a job ran in; None in job mode (the API leaves it empty or, as
    qiskit-ibm-runtime's fake client does, repeats the job's own id)."""
    sid = entry.get("session_id")
    if not sid or str(sid) == str(entry.get("id")):
        return None
    return str(sid)


def is_session_mode(details: dict) -> bool:
    return str(details.get("mode") or "").strip().lower() == SESSION_MODE


def session_usage(details: dict) -> tuple[float | None, bool]:
    """(billed seconds, final) of a session: its active wall-clock time once it is closed."""
    closed = str(details.get("state") or "").strip().lower() == SESSION_FINAL_STATE
    seconds = _number(details.get("elapsed_time"))
    if not closed or seconds is None:
        return None, False
    return max(0.0, seconds), True


@dataclass(frozen=True, slots=True)
class Charge:
    usage_seconds: float | None
    cost_usd: float | None
    reason: str  # why cost_usd is None for good; "" when known or pending
    pending: bool  # usage not final yet: read again later


def charge(usage: float | None, final: bool, billing: IbmBilling, *, expired: bool, read: bool = True) -> Charge:
    """The charge of a job or session. ``expired``: the settle timeout ran out, so a usage
    still not final is given up as unknown; ``read`` False: usage was never read."""
    if not read:
        return Charge(None, None, "not_read", False)
    if not final:
        return Charge(None, None, "usage_not_final", False) if expired else Charge(None, None, "", True)
    rate, reason = billing.rate()
    if rate is None:
        return Charge(usage, None, reason, False)
    return Charge(usage, usage * rate, "", False)


def probe_cost(usage_seconds: float, billing: IbmBilling) -> float | None:
    """A probe runs in job mode: billed its quantum time at the plan's rate."""
    rate, _ = billing.rate()
    return None if rate is None else max(0.0, usage_seconds) * rate
