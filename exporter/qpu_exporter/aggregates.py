"""What one finished job adds to the persisted counters and histograms.

Pure: the store applies these increments in the transaction that records the job, and
exposition renders the totals. Histogram buckets are stored cumulatively (Prometheus
``le`` semantics), one counter per bucket.

Usage and cost move only by known values. A job whose usage is not final yet
(``usage_pending``) is counted as a job when first recorded and its usage and cost once they
are final (``usage_increments``, applied by the store exactly once). A cost that can never be
known is counted in ``qpu_jobs_cost_unknown_total{reason}``, never added as 0.
"""

from __future__ import annotations

from .model import JOB_CANCELLED, JOB_FAILED, JobRecord

# Queue times run from seconds to a day (IBM's and Braket's queues on busy devices, as users
# report them); execution from
# sub-second sampler jobs to hour-long sessions.
QUEUE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
EXECUTION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

HISTOGRAMS = {
    "qpu_job_queue_duration_seconds": QUEUE_BUCKETS,
    "qpu_job_execution_duration_seconds": EXECUTION_BUCKETS,
}


def _histogram(name: str, buckets, labels: dict[str, str], value: float):
    for b in buckets:
        if value <= b:
            yield f"{name}_bucket", {**labels, "le": _le(b)}, 1.0
    yield f"{name}_bucket", {**labels, "le": "+Inf"}, 1.0
    yield f"{name}_count", labels, 1.0
    yield f"{name}_sum", labels, value


def _le(b: float) -> str:
    return repr(float(b))


def usage_increments(job: JobRecord):
    """The usage and cost a settled record adds: the known values, or one unknown-cost count."""
    if job.usage_pending:
        return []
    labels = {"provider": job.provider, "backend": job.backend}
    out = []
    if job.usage_seconds is not None:
        out.append(("qpu_job_usage_seconds_total", labels, max(0.0, job.usage_seconds)))
    if job.cost_usd is not None:
        out.append(("qpu_cost_usd_total", labels, max(0.0, job.cost_usd)))
    elif not job.billed_with:
        out.append(("qpu_jobs_cost_unknown_total", {**labels, "reason": job.cost_unknown_reason or "unknown"}, 1.0))
    return out


def job_increments(job: JobRecord):
    """Everything a newly recorded job adds: the job counters and histograms, plus its usage
    and cost when they are already final."""
    labels = {"provider": job.provider, "backend": job.backend}
    out = usage_increments(job)
    if not job.counts_as_job:
        return out
    out.append(("qpu_jobs_total", labels, 1.0))
    if job.status == JOB_FAILED:
        out.append(("qpu_jobs_failed_total", labels, 1.0))
        out.append(("qpu_job_failures_by_class_total", {**labels, "error_class": job.error_class or "unknown"}, 1.0))
    elif job.status == JOB_CANCELLED:
        out.append(("qpu_jobs_cancelled_total", labels, 1.0))
    if job.queue_seconds is not None:
        out.extend(_histogram("qpu_job_queue_duration_seconds", QUEUE_BUCKETS, labels, job.queue_seconds))
    if job.execution_seconds is not None:
        out.extend(_histogram("qpu_job_execution_duration_seconds", EXECUTION_BUCKETS, labels, job.execution_seconds))
    return out
