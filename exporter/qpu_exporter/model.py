"""Provider-neutral records.

Plain data, SI units (seconds, hertz, ratios 0-1), timestamps as Unix seconds (float).
Every value carries the time the provider measured it (``measured_at``, None when the
provider does not say) and every snapshot the time we fetched it (``fetched_at``).
Providers produce these; the store persists them; exposition and drift read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

# Per-qubit calibration quantities: short name -> (SI unit suffix, meaning). The short name
# is the ``quantity`` label and the drift series prefix ("t1:q3"); exposition names the
# metric qpu_qubit_<name>_<unit>. Adding a quantity means adding it here.
QUBIT_QUANTITIES: dict[str, tuple[str, str]] = {
    "t1": ("seconds", "Energy relaxation time T1"),
    "t2": ("seconds", "Dephasing time T2 (Hahn echo)"),
    "readout_error": ("ratio", "Readout assignment error"),
    "frequency": ("hertz", "Qubit frequency"),
    "prob_meas0_prep1": ("ratio", "Probability of measuring 0 after preparing 1"),
    "prob_meas1_prep0": ("ratio", "Probability of measuring 1 after preparing 0"),
    "readout_duration": ("seconds", "Readout (measurement) duration"),
}

# A provider-reported randomized-benchmarking figure: the error per Clifford (1 - the
# published RB fidelity) on a qubit, a pair or (qubits=()) the whole device, e.g. Braket's
# per-qubit RANDOMIZED_BENCHMARKING fidelity or IQM's Two_Qubit_Clifford fidelity. Carried as a
# GateCalibration with this name so it is stored and validated like a gate error, but it is
# not a gate: exposition exports it as qpu_reported_epc_ratio, comparable with the
# exporter's own qpu_probe_epc_ratio.
REPORTED_EPC = "clifford"
# Figures that stand in for per-gate 1q errors where a provider publishes no sx error.
ONE_QUBIT_RB_FIGURES = (REPORTED_EPC,)

# Job states, normalised across providers.
JOB_DONE = "done"
JOB_FAILED = "failed"
JOB_CANCELLED = "cancelled"
JOB_FINAL_STATES = (JOB_DONE, JOB_FAILED, JOB_CANCELLED)


@dataclass(frozen=True, slots=True)
class Measurement:
    value: float
    measured_at: float | None = None


@dataclass(slots=True)
class QubitCalibration:
    qubit: int
    values: dict[str, Measurement] = field(default_factory=dict)  # keys from QUBIT_QUANTITIES
    operational: bool = True


@dataclass(slots=True)
class GateCalibration:
    gate: str
    qubits: tuple[int, ...]
    error: Measurement | None = None
    duration: Measurement | None = None
    # A provider's "faulty" sentinel (IBM reports gate_error == 1 for dead couplers).
    operational: bool = True

    @property
    def qubits_label(self) -> str:
        return "_".join(str(q) for q in self.qubits)


@dataclass(frozen=True, slots=True)
class BackendInfo:
    provider: str
    backend: str
    num_qubits: int
    processor: str


@dataclass(frozen=True, slots=True)
class BackendStatus:
    operational: bool
    pending_jobs: int
    status_message: str
    fetched_at: float
    window_open: bool = True  # inside the provider's availability window (Braket)


@dataclass(slots=True)
class CalibrationSnapshot:
    provider: str
    backend: str
    fetched_at: float
    calibrated_at: float | None  # the provider's "last update" of the whole table
    qubits: list[QubitCalibration] = field(default_factory=list)
    gates: list[GateCalibration] = field(default_factory=list)
    # Values the provider's parser could not use (e.g. an unknown unit or field), by check
    # name: counted with the data-quality rejections, never exported.
    rejected: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobRecord:
    provider: str
    backend: str
    job_id: str
    status: str  # one of JOB_FINAL_STATES
    created_at: float
    finished_at: float
    queue_seconds: float | None  # None when the job never started
    execution_seconds: float | None
    # Billed QPU time and money; None when not known (yet). Counters move only by known values.
    usage_seconds: float | None
    cost_usd: float | None
    error_class: str = ""  # short, bounded vocabulary; never a payload or a message
    # Why cost_usd is None for good (COST_UNKNOWN_REASONS); "" when known, pending or billed_with.
    cost_unknown_reason: str = ""
    # The provider reports final usage later (IBM: usage status "pending"): the record is
    # counted as a job now and its usage and cost once a later poll reads them final.
    usage_pending: bool = False
    # The job's charge is part of another record (an IBM session is billed as a whole): its own
    # usage and cost stay None without being unknown.
    billed_with: str = ""
    # False for a billing record that is not a job (an IBM session's charge): it moves only the
    # usage and cost counters.
    counts_as_job: bool = True
    # The job's (key, value) tags as the provider reports them, bounded by bounded_tags; read
    # only to resolve its workload (workloads.py), never stored or exported as they are.
    tags: tuple[tuple[str, str], ...] = ()


# Why a job's cost cannot be known (label `reason` of qpu_jobs_cost_unknown_total).
COST_UNKNOWN_REASONS = (
    "unpriced_device",  # no price in the table and none published by the service
    "no_billing_plan",  # the provider's billing plan is not configured
    "subscription",  # a subscription plan with no per-job price, and none configured
    "usage_not_final",  # usage still pending when its settle timeout ran out
    "not_read",  # the provider was configured not to read what the price depends on
    "reservation",  # ran inside a reservation billed per reserved hour, not per task
)


MAX_JOB_TAGS = 64  # above AWS's 50 tags per resource, so a real tag set is never cut
MAX_TAG_CHARS = 256  # longer than any label value we keep (workloads.MAX_LABEL_CHARS)


def bounded_tags(pairs) -> tuple[tuple[str, str], ...]:
    """A provider's tag pairs as JobRecord.tags: strings only, at most MAX_JOB_TAGS pairs,
    keys and values cut at MAX_TAG_CHARS (a cut value is still too long to become a label)."""
    out = []
    for key, value in pairs:
        if isinstance(key, str) and isinstance(value, str):
            out.append((key[:MAX_TAG_CHARS], value[:MAX_TAG_CHARS]))
            if len(out) == MAX_JOB_TAGS:
                break
    return tuple(out)


def durations_from_timestamps(
    created: float, running: float | None, finished: float | None
) -> tuple[float | None, float | None]:
    """Queue and execution time from a provider's created/running/finished stamps."""
    if running is None:
        return None, None
    queue = max(0.0, running - created)
    execution = None if finished is None else max(0.0, finished - running)
    return queue, execution


def parse_timestamp(value: Any) -> float | None:
    """ISO-8601 (offset or Z) or a datetime -> Unix seconds; None when absent. Naive times are
    UTC (Braket's updatedAt is naive UTC). Raises ValueError for anything else."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
