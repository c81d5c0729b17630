"""Job SLO rules (rules/jobs.yml): failure-ratio burn rates and queue time."""

from __future__ import annotations

from .common import PB, Links, alert, for_duration, group, number, record, seconds
from .config import ConfigError, duration_seconds

FAILED_RATIO = "provider_backend:qpu_jobs_failed:ratio_rate{w}"
QUEUE_QUANTILE = "provider_backend:qpu_job_queue_duration_seconds:{q}_rate{w}"


def quantile_name(q: float) -> str:
    """0.9 -> "p90", 0.999 -> "p99_9" (metric names cannot hold a dot)."""
    text = f"{q * 100:.6f}".rstrip("0").rstrip(".")
    return "p" + text.replace(".", "_")


def _failure_records(windows: list[str]) -> list[dict]:
    return [
        record(
            FAILED_RATIO.format(w=w),
            f"max by ({PB}) (rate(qpu_jobs_failed_total[{w}]))\n/\nmax by ({PB}) (rate(qpu_jobs_total[{w}]))",
        )
        for w in windows
    ]


def _queue_record(q: float, w: str) -> dict:
    return record(
        QUEUE_QUANTILE.format(q=quantile_name(q), w=w),
        f"histogram_quantile({number(q, 'quantile')}, max by ({PB}, le) (rate(qpu_job_queue_duration_seconds_bucket[{w}])))",
    )


def _burn_rate_alert(win: dict, slo: dict, links: Links, index: int) -> dict:
    key = f"jobs.failure_slo.windows[{index}]"
    for field in ("severity", "long", "short", "factor", "for"):
        if field not in win:
            raise ConfigError(f"{key}.{field}: missing")
    long, short = str(win["long"]), str(win["short"])
    objective = number(slo["objective"], "jobs.failure_slo.objective")
    factor = number(win["factor"], f"{key}.factor")
    threshold = f"({factor} * (1 - {objective}))"
    budget_percent = f"{(1 - float(slo['objective'])) * 100:.6g}%"
    return alert(
        "QPUJobErrorBudgetBurn",
        f"""
{FAILED_RATIO.format(w=long)} > {threshold}
and on ({PB}) {FAILED_RATIO.format(w=short)} > {threshold}
and on ({PB}) max by ({PB}) (increase(qpu_jobs_total[{long}])) >= {number(slo['min_jobs'], 'jobs.failure_slo.min_jobs')}
and on ({PB}) max by ({PB}) (increase(qpu_jobs_failed_total[{long}])) >= {number(slo['min_failed_jobs'], 'jobs.failure_slo.min_failed_jobs')}
""",
        for_=for_duration(win, key),
        severity=str(win["severity"]),
        concern="jobs",
        summary="QPU jobs are failing fast enough to burn the failure error budget.",
        description=(
            "{{ $value | humanizePercentage }} of the jobs on {{ $labels.provider }}/{{ $labels.backend }} failed "
            f"over the last {long} (and over {short}): at least {win['factor']}x the {budget_percent} error budget "
            f"of the {slo['objective']} success objective."
        ),
        links=links,
        dashboard=links.dashboard("oncall"),
        extra_labels={"long_window": long, "short_window": short},
        keep_firing_for=str(win["keep_firing_for"]) if "keep_firing_for" in win else None,
    )


def build(config: dict, links: Links) -> dict:
    cfg = config["jobs"]
    slo, queue = cfg["failure_slo"], cfg["queue_time_slo"]
    windows = sorted(
        {str(w[k]) for w in slo["windows"] for k in ("long", "short") if k in w} | {"5m"},
        key=lambda w: duration_seconds(w, "jobs.failure_slo.windows"),
    )
    q = float(queue["quantile"])
    qlong, qshort = str(queue["long"]), str(queue["short"])
    qname = quantile_name(q)
    threshold = seconds(queue["threshold"], "jobs.queue_time_slo.threshold")
    queue_pairs = sorted({(0.5, "1h"), (q, qlong), (q, qshort)}, key=lambda p: (p[0], duration_seconds(p[1])))
    rules = [
        record("provider_backend:qpu_jobs:rate5m", f"max by ({PB}) (rate(qpu_jobs_total[5m]))"),
        record("provider_backend:qpu_jobs_failed:rate5m", f"max by ({PB}) (rate(qpu_jobs_failed_total[5m]))"),
        record("provider_backend:qpu_jobs_cancelled:rate5m", f"max by ({PB}) (rate(qpu_jobs_cancelled_total[5m]))"),
        record(
            "provider_backend_error_class:qpu_job_failures_by_class:rate5m",
            f"max by ({PB}, error_class) (rate(qpu_job_failures_by_class_total[5m]))",
        ),
        record("fleet:qpu_jobs_success_slo:objective_ratio", f"vector({number(slo['objective'], 'jobs.failure_slo.objective')})"),
        *_failure_records(windows),
        *(_queue_record(qq, w) for qq, w in queue_pairs),
        *(_burn_rate_alert(win, slo, links, i) for i, win in enumerate(slo["windows"])),
        alert(
            "QPUJobQueueTimeHigh",
            f"""
{QUEUE_QUANTILE.format(q=qname, w=qlong)} > {threshold}
and on ({PB}) {QUEUE_QUANTILE.format(q=qname, w=qshort)} > {threshold}
and on ({PB}) max by ({PB}) (increase(qpu_job_queue_duration_seconds_count[{qlong}])) >= {number(queue['min_jobs'], 'jobs.queue_time_slo.min_jobs')}
""",
            for_=for_duration(queue, "jobs.queue_time_slo"),
            severity="ticket",
            concern="jobs",
            summary="Jobs wait in a QPU backend's queue longer than the queue-time objective.",
            description=(
                f"The {qname} queue time on {{{{ $labels.provider }}}}/{{{{ $labels.backend }}}} is "
                f"{{{{ $value | humanizeDuration }}}} over the last {qlong} (and above over {qshort}); "
                f"the objective is {q * 100:g}% of jobs starting within {queue['threshold']}."
            ),
            links=links,
            dashboard=links.dashboard("oncall"),
        ),
    ]
    return group("qpu-jobs", rules)
