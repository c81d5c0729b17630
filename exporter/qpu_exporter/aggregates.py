"""What one finished job adds to the persisted counters and histograms.

Pure: the store applies these increments in the transaction that records the job, and
exposition renders the totals. Histogram buckets are stored cumulatively (Prometheus
``le`` semantics), one counter per bucket.

Usage and cost move only by known values. A job whose usage is not final yet
(``usage_pending``) is counted as a job when first recorded and its usage and cost once they
are final (``usage_increments``, applied by the store exactly once). A cost that can never be
known is counted in ``qpu_jobs_cost_unknown_total{reason}``, never added as 0.

With a workload (config ``workloads:``, docs/workloads.md) every increment of a counter that
has a per-workload twin gets its twin under that workload, on every path: a new job, its usage
settling later (under the workload stored with it), and a billing record that is not a job.
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


def _workload_twins(increments, workload: str):
    """The per-workload twin of every increment of a counter that has one: the same delta under
    the twin's name, with the workload label. Every path that moves a twinned backend counter
    builds its workload increments here from its own backend increments, so the sum over
    workloads equals the backend total by construction (docs/workloads.md, conservation)."""
    return [(WORKLOAD_TWINS[name], {**labels, "workload": workload}, delta)
            for name, labels, delta in increments if name in WORKLOAD_TWINS]


def _usage(job: JobRecord, labels: dict[str, str]):
    if job.usage_pending:
        return []
    out = []
    if job.usage_seconds is not None:
        out.append(("qpu_job_usage_seconds_total", labels, max(0.0, job.usage_seconds)))
    if job.cost_usd is not None:
        out.append(("qpu_cost_usd_total", labels, max(0.0, job.cost_usd)))
    elif not job.billed_with:
        out.append(("qpu_jobs_cost_unknown_total", {**labels, "reason": job.cost_unknown_reason or "unknown"}, 1.0))
    return out


def usage_increments(job: JobRecord, workload: str | None = None):
    """The usage and cost a settled record adds: the known values, or one unknown-cost count;
    with ``workload`` (the one stored with the record when it was first counted) the same usage
    and cost under that workload too."""
    out = _usage(job, {"provider": job.provider, "backend": job.backend})
    return out if workload is None else out + _workload_twins(out, workload)


def job_increments(job: JobRecord, workload: str | None = None, rejected: str = ""):
    """Everything a newly recorded job adds: the job counters and histograms, plus its usage
    and cost when they are already final. With ``workload``, the twins of all of it under that
    workload (``rejected``: why its tag value went to workload "other", if it did). A billing
    record that is not a job (``counts_as_job`` False) moves only usage and cost, under its
    backend and its workload alike."""
    labels = {"provider": job.provider, "backend": job.backend}
    out = _usage(job, labels)
    if job.counts_as_job:
        out.append(("qpu_jobs_total", labels, 1.0))
        if job.status == JOB_FAILED:
            out.append(("qpu_jobs_failed_total", labels, 1.0))
            out.append(("qpu_job_failures_by_class_total", {**labels, "error_class": job.error_class or "unknown"}, 1.0))
        elif job.status == JOB_CANCELLED:
            out.append(("qpu_jobs_cancelled_total", labels, 1.0))
        if job.queue_seconds is not None:
            out.extend(_histogram("qpu_job_queue_duration_seconds", QUEUE_BUCKETS, labels, job.queue_seconds))
        if job.execution_seconds is not None:
            out.extend(_histogram("qpu_job_execution_duration_seconds", EXECUTION_BUCKETS, labels,
                                  job.execution_seconds))
    if workload is None:
        return out
    wl = {**labels, "workload": workload}
    out += _workload_twins(out, workload)
    if job.counts_as_job:
        if job.queue_seconds is not None:
            out.extend(_histogram("qpu_workload_queue_duration_seconds", QUEUE_BUCKETS, wl, job.queue_seconds))
        if rejected:
            out.append(("qpu_workload_tag_rejections_total", {**labels, "reason": rejected}, 1.0))
    return out
