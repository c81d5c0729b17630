"""Per-workload SLO and budget rules (rules/workloads.yml), for exporters with a `workloads:` config.

Each workload's objectives are the exporter's overrides where its config sets them (the gauges
qpu_workload_job_success_objective_ratio, qpu_workload_queue_objective_seconds) and the fleet
objectives of this config (jobs.failure_slo.objective, jobs.queue_time_slo.threshold) for every
other workload; budgets come from the exporter (qpu_workload_cost_budget_daily_usd), and a
workload without one has no cost alert. Windows, burn factors, `for:`, `keep_firing_for:`, the
minimum jobs and failed jobs and cost levels are the fleet ones: one SLO policy, applied per
workload. Series are summed over backends after
`max by (provider, backend, workload)` over exporter replicas.
"""

from __future__ import annotations

from .common import Links, alert, for_duration, group, number, record, seconds
from .config import ConfigError, duration_seconds
from .jobs import quantile_name

W = "workload"
PBW = "provider, backend, workload"
FAILED_RATIO = "workload:qpu_workload_jobs_failed:ratio_rate{w}"
SUCCESS_OBJECTIVE = "workload:qpu_workload_job_success:objective_ratio"
QUEUE_OBJECTIVE = "workload:qpu_workload_queue_time:objective_seconds"
QUEUE_QUANTILE = "workload:qpu_workload_queue_duration_seconds:{q}_rate{w}"
# Every workload the exporter has seen: the right-hand side of "override or fleet default".
SEEN = f"max by ({W}) (qpu_workload_jobs_total)"


def _per_workload(fn: str, metric: str, window: str, extra: str = "") -> str:
    by = f"{PBW}{extra}"
    return f"sum by ({W}{extra}) (max by ({by}) ({fn}({metric}[{window}])))"


def _objective(name: str, gauge: str, default: str) -> dict:
    return record(name, f"max by ({W}) ({gauge})\nor on ({W})\n(0 * {SEEN} + {default})")


def _burn_alert(win: dict, slo: dict, links: Links, index: int) -> dict:
    key = f"jobs.failure_slo.windows[{index}]"
    for field in ("severity", "long", "short", "factor", "for"):
        if field not in win:
            raise ConfigError(f"{key}.{field}: missing")
    long, short = str(win["long"]), str(win["short"])
    factor = number(win["factor"], f"{key}.factor")
    threshold = f"on ({W}) ({factor} * (1 - {SUCCESS_OBJECTIVE}))"
    min_jobs = number(slo["min_jobs"], "jobs.failure_slo.min_jobs")
    min_failed = number(slo["min_failed_jobs"], "jobs.failure_slo.min_failed_jobs")
    return alert(
        "QPUWorkloadErrorBudgetBurn",
        f"""
{FAILED_RATIO.format(w=long)} > {threshold}
and on ({W}) {FAILED_RATIO.format(w=short)} > {threshold}
and on ({W}) {_per_workload('increase', 'qpu_workload_jobs_total', long)} >= {min_jobs}
and on ({W}) {_per_workload('increase', 'qpu_workload_jobs_failed_total', long)} >= {min_failed}
""",
        for_=for_duration(win, key),
        severity=str(win["severity"]),
        concern="workloads",
        summary="A workload's QPU jobs are failing fast enough to burn its error budget.",
        description=(
            "{{ $value | humanizePercentage }} of the jobs of workload {{ $labels.workload }} failed "
            f"over the last {long} (and over {short}): at least {win['factor']}x its error budget "
            f"(1 - its job-success objective; fleet default {slo['objective']})."
        ),
        links=links,
        dashboard=links.dashboard("workloads", (W,)),
        extra_labels={"long_window": long, "short_window": short},
        keep_firing_for=str(win["keep_firing_for"]) if "keep_firing_for" in win else None,
    )


def _cost_alerts(cfg: dict, links: Links, used: str) -> list[dict]:
    window = str(cfg["window"])
    levels = sorted(cfg["levels"], key=lambda level: level["percent"])
    out = []
    for i, level in enumerate(levels):
        key = f"cost.levels[{i}]"
        for field in ("percent", "severity", "for"):
            if field not in level:
                raise ConfigError(f"{key}.{field}: missing")
        expr = f"{used} >= {number(level['percent'] / 100, f'{key}.percent')}"
        if i + 1 < len(levels):
            expr += f" < {number(levels[i + 1]['percent'] / 100, f'cost.levels[{i + 1}].percent')}"
        out.append(alert(
            "QPUWorkloadCostBudgetBurn",
            expr,
            for_=for_duration(level, key),
            severity=str(level["severity"]),
            concern="workloads",
            summary=f"A workload's QPU spend over the last {window} passed {level['percent']}% of its daily budget.",
            description=(
                "Workload {{ $labels.workload }} spent {{ $value | humanizePercentage }} of its daily budget "
                f"(qpu_workload_cost_budget_daily_usd) over the last {window}."
            ),
            links=links,
            dashboard=links.dashboard("workloads", (W,)),
            extra_labels={"budget_percent": str(level["percent"])},
        ))
    return out


def build(config: dict, links: Links) -> dict:
    slo, queue, cost = config["jobs"]["failure_slo"], config["jobs"]["queue_time_slo"], config["cost"]
    windows = sorted(
        {str(w[k]) for w in slo["windows"] for k in ("long", "short") if k in w},
        key=lambda w: duration_seconds(w, "jobs.failure_slo.windows"),
    )
    q = float(queue["quantile"])
    qname, qlong, qshort = quantile_name(q), str(queue["long"]), str(queue["short"])
    threshold = seconds(queue["threshold"], "jobs.queue_time_slo.threshold")
    cost_window = str(cost["window"])
    spent = f"workload:qpu_workload_cost_usd:increase{cost_window}"
    used = f"workload:qpu_workload_cost_budget_used:ratio{cost_window}"
    rules = [
        _objective(SUCCESS_OBJECTIVE, "qpu_workload_job_success_objective_ratio",
                   number(slo["objective"], "jobs.failure_slo.objective")),
        _objective(QUEUE_OBJECTIVE, "qpu_workload_queue_objective_seconds", str(threshold)),
        *(record(FAILED_RATIO.format(w=w),
                 f"{_per_workload('rate', 'qpu_workload_jobs_failed_total', w)}\n/\n"
                 f"{_per_workload('rate', 'qpu_workload_jobs_total', w)}") for w in windows),
        *(record(QUEUE_QUANTILE.format(q=qname, w=w),
                 f"histogram_quantile({number(q, 'quantile')}, "
                 f"{_per_workload('rate', 'qpu_workload_queue_duration_seconds_bucket', w, ', le')})")
          for w in sorted({qlong, qshort}, key=duration_seconds)),
        record(spent, _per_workload("increase", "qpu_workload_cost_usd_total", cost_window)),
        # A workload without a budget has no ratio, hence no cost alert.
        record(used, f"{spent}\n/ on ({W})\n(max by ({W}) (qpu_workload_cost_budget_daily_usd) > 0)"),
        *(_burn_alert(win, slo, links, i) for i, win in enumerate(slo["windows"])),
        alert(
            "QPUWorkloadQueueTimeHigh",
            f"""
{QUEUE_QUANTILE.format(q=qname, w=qlong)} > on ({W}) {QUEUE_OBJECTIVE}
and on ({W}) {QUEUE_QUANTILE.format(q=qname, w=qshort)} > on ({W}) {QUEUE_OBJECTIVE}
and on ({W}) {_per_workload('increase', 'qpu_workload_queue_duration_seconds_count', qlong)} >= {number(queue['min_jobs'], 'jobs.queue_time_slo.min_jobs')}
""",
            for_=for_duration(queue, "jobs.queue_time_slo"),
            severity="ticket",
            concern="workloads",
            summary="A workload's jobs wait in the queue longer than its queue-time objective.",
            description=(
                f"The {qname} queue time of workload {{{{ $labels.workload }}}} is {{{{ $value | humanizeDuration }}}} "
                f"over the last {qlong} (and above its objective over {qshort}); the objective is {q * 100:g}% of its "
                f"jobs starting within its queue-time objective (fleet default {queue['threshold']})."
            ),
            links=links,
            dashboard=links.dashboard("workloads", (W,)),
        ),
        *_cost_alerts(cost, links, used),
    ]
    return group("qpu-workloads", rules)
