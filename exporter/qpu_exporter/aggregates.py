"""What one finished job adds to the persisted counters and histograms.

Pure: the store applies these increments in the transaction that records the job, and
exposition renders the totals. Histogram buckets are stored cumulatively (Prometheus
``le`` semantics), one counter per bucket.
"""

from __future__ import annotations

from .model import JOB_CANCELLED, JOB_FAILED, JobRecord

# Queue times run from seconds to a day (devices-and-users.md §3d); execution from
# sub-second sampler jobs to hour-long sessions.
QUEUE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
EXECUTION_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

HISTOGRAMS = {
    "qpu_job_queue_duration_seconds": QUEUE_BUCKETS,
    "qpu_job_execution_duration_seconds": EXECUTION_BUCKETS,
    "qpu_workload_queue_duration_seconds": QUEUE_BUCKETS,
}

# Backend counter -> its per-workload twin. A job's workload increments are its backend
# increments under these names (plus the workload label), so for every backend the sum over
# workloads equals the backend total by construction (docs/workloads.md, conservation).
WORKLOAD_TWINS = {
    "qpu_jobs_total": "qpu_workload_jobs_total",
    "qpu_jobs_failed_total": "qpu_workload_jobs_failed_total",
    "qpu_job_usage_seconds_total": "qpu_workload_usage_seconds_total",
    "qpu_cost_usd_total": "qpu_workload_cost_usd_total",
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


def _sums(job: JobRecord) -> list[tuple[str, float]]:
    """What the job adds to the counters that have a per-workload twin. An unknown usage or
    cost (None) adds nothing: the job still counts."""
    out = [("qpu_jobs_total", 1.0)]
    if job.usage_seconds is not None:
        out.append(("qpu_job_usage_seconds_total", job.usage_seconds))
    if job.cost_usd is not None:
        out.append(("qpu_cost_usd_total", job.cost_usd))
    if job.status == JOB_FAILED:
        out.append(("qpu_jobs_failed_total", 1.0))
    return out


def job_increments(job: JobRecord, workload: str | None = None, rejected: str = ""):
    """The job's increments under its backend and, when ``workload`` is given, the same under
    its workload (``rejected``: why its tag value went to workload "other", if it did)."""
    labels = {"provider": job.provider, "backend": job.backend}
    sums = _sums(job)
    out = [(name, labels, delta) for name, delta in sums]
    if job.status == JOB_FAILED:
        out.append(("qpu_job_failures_by_class_total", {**labels, "error_class": job.error_class or "unknown"}, 1.0))
    elif job.status == JOB_CANCELLED:
        out.append(("qpu_jobs_cancelled_total", labels, 1.0))
    if job.queue_seconds is not None:
        out.extend(_histogram("qpu_job_queue_duration_seconds", QUEUE_BUCKETS, labels, job.queue_seconds))
    if job.execution_seconds is not None:
        out.extend(_histogram("qpu_job_execution_duration_seconds", EXECUTION_BUCKETS, labels, job.execution_seconds))
    if workload is not None:
        wl = {**labels, "workload": workload}
        out += [(WORKLOAD_TWINS[name], wl, delta) for name, delta in sums]
        if job.queue_seconds is not None:
            out.extend(_histogram("qpu_workload_queue_duration_seconds", QUEUE_BUCKETS, wl, job.queue_seconds))
        if rejected:
            out.append(("qpu_workload_tag_rejections_total", {**labels, "reason": rejected}, 1.0))
    return out
