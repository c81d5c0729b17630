"""Workloads dashboard (uid qpu-workloads): which team, experiment or pipeline is spending,
failing or waiting, against its own budget and objectives, with a drill-down to backends.

Needs an exporter with a `workloads:` config (docs/workloads.md). Raw series are summed over
backends after `max by (provider, backend, workload)` over exporter replicas; the workload
recording rules (alerts/rules/workloads.yml) are per workload over all backends.
"""

from __future__ import annotations

from .layout import Board, datasource_variable, job_instance_variables
from .panels import (
    GREEN,
    ORANGE,
    RED,
    YELLOW,
    Query,
    bargauge_panel,
    link_override,
    stat_panel,
    table_panel,
    thresholds,
    timeseries_panel,
    unit_override,
)
from .selectors import JOB, fleet_variables, raw, workload_variable
from .settings import Settings

WORKLOAD = 'workload=~"$workload"'
PBW = "provider, backend, workload"


def per_workload(fn: str, metric: str, window: str, *extra: str, by: str = "workload") -> str:
    """`fn(metric[window])` summed by ``by`` over backends, replicas deduplicated (a histogram's
    `le` in ``by`` is kept through both)."""
    inner = f"{PBW}, le" if "le" in by.replace(" ", "").split(",") else PBW
    return f"sum by ({by}) (max by ({inner}) ({fn}({metric}{raw(WORKLOAD, *extra)}[{window}])))"


def failure_ratio(window: str) -> str:
    return f"{per_workload('increase', 'qpu_workload_jobs_failed_total', window)} / {per_workload('increase', 'qpu_workload_jobs_total', window)}"


def _daily_budget() -> str:
    return f"max by (workload) (qpu_workload_cost_budget_daily_usd{{{JOB}, {WORKLOAD}}})"


def build(s: Settings):
    board = Board(
        title="QPU fleet / Workloads",
        uid=s.uids["workloads"],
        description="Spend, job success and queue time per workload (the team, experiment or pipeline named by a job tag), against each workload's budget and objectives, with a drill-down to backends.",
        time_from="now-24h",
        refresh="1m",
        variables=[datasource_variable(), *job_instance_variables(), *fleet_variables(multi=True), workload_variable()],
    )
    objective = f"workload:qpu_workload_job_success:objective_ratio{{{WORKLOAD}}}"
    cost_steps = thresholds(GREEN, *zip(s.cost_levels, (YELLOW, ORANGE, RED)))
    spend_range = per_workload("increase", "qpu_workload_cost_usd_total", "$__range")
    oncall_url = f"/d/{s.uids['oncall']}?var-provider=${{__data.fields.provider}}&var-backend=${{__data.fields.backend}}&${{datasource:queryparam}}"
    self_url = f"/d/{s.uids['workloads']}?var-workload=${{__value.raw}}&${{datasource:queryparam}}"

    board.row("Spend against budget")
    board.add(bargauge_panel(
        "Spend today", "Money each workload spent on finished jobs since midnight UTC (qpu_workload_cost_usd_total).",
        "currencyUSD", [Query(spend_range, "{{workload}}", instant=True)], steps=thresholds(GREEN)).time_from("now/d"), 6, 8)
    board.add(bargauge_panel(
        "Today vs daily budget",
        "Spend since midnight UTC as a share of the workload's daily budget (qpu_workload_cost_budget_daily_usd, exporter config workloads.budgets); the colour bands are the QPUWorkloadCostBudgetBurn levels. Workloads without a budget are absent.",
        "percentunit", [Query(f"{spend_range} / on (workload) {_daily_budget()}", "{{workload}}", instant=True)],
        steps=cost_steps, max_value=1).time_from("now/d"), 6, 8)
    board.add(bargauge_panel(
        "Spend this month", "Money each workload spent since the first of the month (UTC).",
        "currencyUSD", [Query(spend_range, "{{workload}}", instant=True)], steps=thresholds(GREEN)).time_from("now/M"), 6, 8)
    board.add(bargauge_panel(
        "Month vs monthly budget", "Spend this month as a share of the workload's month budget (daily budget x days in the month).",
        "percentunit",
        [Query(f"{spend_range} / on (workload) ({_daily_budget()} * on () group_left () days_in_month())", "{{workload}}", instant=True)],
        steps=cost_steps, max_value=1).time_from("now/M"), 6, 8)

    board.row("Reliability against objective")
    period = s.slo_period
    board.add(table_panel(
        f"Job success vs objective ({period})",
        f"Per workload over the SLO period ({period}): share of finished jobs that did not fail, the workload's objective (its override in the exporter config, else the fleet's {s.slo_objective:.2%}) and the share of its error budget (1 - objective) not yet used; negative means the objective is missed.",
        "percentunit",
        [Query(f"1 - ({failure_ratio(period)})", instant=True, table=True),
         Query(objective, instant=True, table=True),
         Query(f"1 - ({failure_ratio(period)}) / on (workload) (1 - {objective})", instant=True, table=True)],
        merge=True, sort_by="Value #C",
        overrides=[unit_override("Value #A", "percentunit", "success"),
                   unit_override("Value #B", "percentunit", "objective"),
                   unit_override("Value #C", "percentunit", "error budget left"),
                   link_override("workload", "This workload only", self_url)]), 12, 8)
    board.add(timeseries_panel(
        "Error-budget burn rate (1h)",
        f"How fast each workload spends its job-failure error budget: its failure ratio over 1h (all backends) divided by (1 - its objective). 1 = exactly on budget; the page threshold is {s.page_burn_factor:g}.",
        "none",
        [Query(f"workload:qpu_workload_jobs_failed:ratio_rate1h{{{WORKLOAD}}} / on (workload) (1 - {objective})", "{{workload}}")],
        min_value=0, steps=thresholds(GREEN, (1, YELLOW), (s.page_burn_factor, RED)), threshold_line=True), 12, 8)

    board.row("Queue time")
    q = s.queue_time_quantile
    board.add(timeseries_panel(
        "Queue time p50 / p95", "Median and 95th percentile of the time each workload's jobs waited in the queue (qpu_workload_queue_duration_seconds, all selected backends).",
        "s",
        [Query(f"histogram_quantile({p}, {per_workload('rate', 'qpu_workload_queue_duration_seconds_bucket', '$__rate_interval', by='workload, le')})",
               f"{{{{workload}}}} p{round(p * 100)}") for p in (0.5, 0.95)],
        min_value=0, log_scale=True), 12, 8)
    board.add(bargauge_panel(
        f"p{round(q * 100)} queue time vs objective (1h)",
        f"Each workload's p{round(q * 100)} queue time over the last hour as a share of its queue-time objective (its override, else the fleet's {s.queue_time_threshold / 3600:g} h); above 1 breaks it (QPUWorkloadQueueTimeHigh after 6h).",
        "percentunit",
        [Query(f"workload:qpu_workload_queue_duration_seconds:p{round(q * 100)}_rate1h{{{WORKLOAD}}} / on (workload) workload:qpu_workload_queue_time:objective_seconds",
               "{{workload}}", instant=True)],
        steps=thresholds(GREEN, (0.75, ORANGE), (1, RED)), max_value=1.5), 12, 8)

    board.row("Who spends, who fails")
    board.add(bargauge_panel(
        "Top workloads by spend", "The ten workloads that spent most over the selected range.",
        "currencyUSD", [Query(f"topk(10, {spend_range})", "{{workload}}", instant=True)], steps=thresholds(GREEN)), 8, 8)
    board.add(bargauge_panel(
        "Top workloads by failures", "The ten workloads with the most failed jobs over the selected range.",
        "none", [Query(f"topk(10, {per_workload('increase', 'qpu_workload_jobs_failed_total', '$__range')})", "{{workload}}", instant=True)],
        steps=thresholds(GREEN, (1, ORANGE))), 8, 8)
    board.add(timeseries_panel(
        "Spend rate per workload", "Money spent per hour by each workload (all selected backends).",
        "currencyUSD",
        [Query(f"3600 * {per_workload('rate', 'qpu_workload_cost_usd_total', '$__rate_interval')}", "{{workload}}")],
        min_value=0), 8, 8)

    board.row("Drill-down to backends")
    by_backend = "provider, backend, workload"
    board.add(table_panel(
        "Workloads per backend",
        "Finished jobs, failed jobs and spend of each workload on each backend over the selected range: is it the hardware (every workload failing on one backend) or the workload (one workload failing everywhere)? Backend links open the on-call board.",
        "none",
        [Query(per_workload("increase", "qpu_workload_jobs_total", "$__range", by=by_backend), instant=True, table=True),
         Query(per_workload("increase", "qpu_workload_jobs_failed_total", "$__range", by=by_backend), instant=True, table=True),
         Query(per_workload("increase", "qpu_workload_cost_usd_total", "$__range", by=by_backend), instant=True, table=True)],
        merge=True, sort_by="Value #B",
        overrides=[unit_override("Value #A", "none", "jobs"), unit_override("Value #B", "none", "failed"),
                   unit_override("Value #C", "currencyUSD", "spend"),
                   link_override("backend", "On-call board", oncall_url)]), 16, 8)
    board.add(timeseries_panel(
        "Failure ratio per backend (selected workloads)",
        "Share of the selected workloads' finished jobs that failed, per backend: a backend that fails for every workload shows here whatever the workload selection.",
        "percentunit",
        [Query(f"{per_workload('rate', 'qpu_workload_jobs_failed_total', '$__rate_interval', by='provider, backend')} / "
               f"{per_workload('rate', 'qpu_workload_jobs_total', '$__rate_interval', by='provider, backend')}", "{{backend}}")],
        min_value=0), 8, 8)

    board.row("Tagging")
    untagged = raw('workload="untagged"')
    board.add(stat_panel(
        "Untagged jobs", "Share of finished jobs over the range without the workload tag (workload=\"untagged\"): work nobody is accountable for.",
        "percentunit",
        [Query(f"sum(max by ({PBW}) (increase(qpu_workload_jobs_total{untagged}[$__range]))) / "
               f"sum(max by ({PBW}) (increase(qpu_workload_jobs_total{raw()}[$__range])))", instant=True)],
        steps=thresholds(GREEN, (0.2, ORANGE)), decimals=1), 6, 4)
    board.add(stat_panel(
        "Jobs counted under other", "Finished jobs over the range whose tag value was not used as a label (more distinct values than workloads.max, too long, looking like a credential, ambiguous): qpu_workload_tag_rejections_total.",
        "none",
        [Query(f"sum(max by (provider, backend, reason) (increase(qpu_workload_tag_rejections_total{raw()}[$__range]))) or vector(0)", instant=True)],
        steps=thresholds(GREEN, (1, ORANGE)), decimals=0), 6, 4)
    board.add(stat_panel(
        "Workloads seen", "Distinct workload labels with finished jobs on the selected backends over the range (untagged and other included).",
        "none", [Query(f"count({per_workload('increase', 'qpu_workload_jobs_total', '$__range')} > 0)", instant=True)],
        steps=thresholds(GREEN), decimals=0), 6, 4)
    return board.build()
