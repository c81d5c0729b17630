"""IBM job states and failure classes: how the runtime API's job states map onto ours, and
a bounded error class from a failed job's numeric reason code (never its reason text)."""

from __future__ import annotations

from ...model import JOB_CANCELLED, JOB_DONE, JOB_FAILED

# API job states (upper-cased) -> our final states. Anything else is not final.
_FINAL_STATES = {
    "COMPLETED": JOB_DONE,
    "DONE": JOB_DONE,
    "FAILED": JOB_FAILED,
    "ERROR": JOB_FAILED,
    "CANCELLED": JOB_CANCELLED,
    "CANCELED": JOB_CANCELLED,
    "CANCELLED - RAN TOO LONG": JOB_FAILED,
    "CANCELLEDMAXEXECUTIONTIMEREACHED": JOB_FAILED,
}
RAN_TOO_LONG_CODE = 1305  # the SDK maps CANCELLED + 1305 to ERROR; so do we


def error_class(status: str, reason_code: int | None) -> str:
    """Bounded error class for a failed job, from IBM's numeric reason code only (never the
    reason text). Ranges follow IBM's published error-code families (1xxx validation, 5xxx
    time limits, 6xxx-9xxx internal); a heuristic, not a contract."""
    if status == JOB_CANCELLED:
        return ""
    if status != JOB_FAILED:
        return ""
    if reason_code is None:
        return "unknown"
    if reason_code == RAN_TOO_LONG_CODE or 5000 <= reason_code < 6000:
        return "timeout"
    if 1000 <= reason_code < 2000 or 3000 <= reason_code < 4000:
        return "invalid_input"
    if 2000 <= reason_code < 3000 or 4000 <= reason_code < 5000:
        return "execution_error"
    if 6000 <= reason_code < 10000:
        return "internal_error"
    return "unknown"


def _reason_code(state: dict) -> int | None:
    code = state.get("reason_code", state.get("reasonCode"))
    try:
        return None if code in (None, "") else int(code)
    except (TypeError, ValueError):
        return None
