"""What one finished job adds to the persisted counters and histograms.

Pure: the store applies these increments in the transaction that records the job, and
exposition renders the totals. Histogram buckets are stored cumulatively (Prometheus
``le`` semantics), one counter per bucket.
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


def job_increments(job: JobRecord):
    labels = {"provider": job.provider, "backend": job.backend}
    out = [
        ("qpu_jobs_total", labels, 1.0),
        ("qpu_job_usage_seconds_total", labels, job.usage_seconds),
        ("qpu_cost_usd_total", labels, job.cost_usd),
    ]
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
