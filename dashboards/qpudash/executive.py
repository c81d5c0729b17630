"""Executive dashboard (uid qpu-executive): is the fleet usable, are jobs meeting the SLO,
are we within budget, is quality holding. Readable in ten seconds: big numbers on top, trends below."""

from __future__ import annotations

from .layout import Board, datasource_variable, job_instance_variables
from .panels import (
    GREEN,
    ORANGE,
    RED,
    YELLOW,
    Query,
    bargauge_panel,
    gauge_panel,
    stat_panel,
    state_timeline_panel,
    thresholds,
    timeseries_panel,
    value_map,
)
from .selectors import EDGE, FIRING, JOB, NOT_FLEET_WIDE, fleet_variables, raw, rec, workload_variable
from .settings import Settings
from .workloads import failure_ratio as workload_failure_ratio, per_workload


def _increase_by_backend(metric: str) -> str:
    # max over exporter replicas so that two replicas scraping one backend are not double counted
    return f"sum(max by (provider, backend) (increase({metric}{raw()}[$__range])))"


def build(s: Settings):
    board = Board(
        title="QPU fleet / Executive",
        uid=s.uids["executive"],
        description="Fleet availability, job success against its SLO, spend against budget and quality trends of every quantum backend the exporter watches.",
        time_from="now-7d",
        refresh="5m",
        variables=[datasource_variable(), *job_instance_variables(), *fleet_variables(multi=True), workload_variable()],
    )
    objective = s.slo_objective
    failure_ratio = f"{_increase_by_backend('qpu_jobs_failed_total')} / {_increase_by_backend('qpu_jobs_total')}"
    cost_steps = thresholds(GREEN, *zip(s.cost_levels, (YELLOW, ORANGE, RED)))
    daily_budget = f"max(qpu_cost_budget_daily_usd{{{JOB}}})"

    board.row("Service")
    board.add(stat_panel(
        "Fleet availability now", "Share of backends the provider reports operational right now (qpu_backend_up).",
        "percentunit", [Query(f"avg(max by (provider, backend) (qpu_backend_up{raw()}))", instant=True)],
        steps=thresholds(RED, (0.5, ORANGE), (0.999, GREEN)), decimals=0), 4, 4)
    board.add(stat_panel(
        "Fleet availability over the range",
        "Time-weighted share of backends operational over the selected time range (avg_over_time of qpu_backend_up, averaged over backends).",
        "percentunit", [Query(f"avg(max by (provider, backend) (avg_over_time(qpu_backend_up{raw()}[$__range])))", instant=True)],
        steps=thresholds(RED, (0.9, ORANGE), (0.99, GREEN)), decimals=1), 4, 4)
    board.add(stat_panel(
        f"Job success ({s.slo_period}) vs {objective:.0%} SLO",
        f"Share of finished jobs that did not fail over the SLO period ({s.slo_period}); green at or above the {objective:.2%} objective (alerts/config.yaml jobs.failure_slo).",
        "percentunit", [Query(f"1 - ({failure_ratio})", instant=True)],
        steps=thresholds(RED, (objective, GREEN)), decimals=2, time_from=s.slo_period), 4, 4)
    board.add(stat_panel(
        f"Error budget left ({s.slo_period})",
        "Share of the job-failure error budget (1 - objective) not yet used over the SLO period; negative means the SLO is missed.",
        "percentunit",
        [Query(f"1 - ({failure_ratio}) / on () (1 - fleet:qpu_jobs_success_slo:objective_ratio)", instant=True)],
        steps=thresholds(RED, (0, ORANGE), (0.25, YELLOW), (0.5, GREEN)), decimals=0, time_from=s.slo_period), 4, 4)
    board.add(stat_panel(
        "Backends with firing alerts",
        "Backends with at least one firing page or ticket alert (Prometheus ALERTS series); details on the on-call dashboard.",
        "none",
        [Query(f'count(count by (provider, backend) (ALERTS{rec(FIRING, NOT_FLEET_WIDE)})) or vector(0)', instant=True)],
        steps=thresholds(GREEN, (1, RED)), decimals=0), 4, 4)
    board.add(stat_panel(
        "Backends with drift alarms",
        "Backends where an EWMA or CUSUM drift detector is signalling on at least one series now (recording rule provider_backend:qpu_drift_alarms_active:count).",
        "none", [Query(f"sum(provider_backend:qpu_drift_alarms_active:count{rec()} > bool 0)", instant=True)],
        steps=thresholds(GREEN, (1, ORANGE)), decimals=0), 4, 4)

    board.row("Spend")
    board.add(stat_panel(
        "Spend today", "Money spent on finished jobs since midnight UTC (increase of qpu_cost_usd_total over today).",
        "currencyUSD", [Query(_increase_by_backend("qpu_cost_usd_total"), instant=True)],
        steps=thresholds(GREEN), decimals=0, time_from="now/d"), 6, 5)
    board.add(gauge_panel(
        "Today vs daily budget",
        "Spend since midnight UTC as a share of qpu_cost_budget_daily_usd; the colour bands are the QPUCostBudgetBurn alert levels.",
        "percentunit", [Query(f"{_increase_by_backend('qpu_cost_usd_total')} / on () {daily_budget}", instant=True)],
        steps=cost_steps, time_from="now/d"), 6, 5)
    board.add(stat_panel(
        "Spend this month", "Money spent on finished jobs since the first of the month (UTC).",
        "currencyUSD", [Query(_increase_by_backend("qpu_cost_usd_total"), instant=True)],
        steps=thresholds(GREEN), decimals=0, time_from="now/M"), 6, 5)
    board.add(gauge_panel(
        "Month vs monthly budget",
        "Spend this month as a share of the month's budget (daily budget x days in the month).",
        "percentunit",
        [Query(f"{_increase_by_backend('qpu_cost_usd_total')} / on () ({daily_budget} * on () days_in_month())", instant=True)],
        steps=cost_steps, time_from="now/M"), 6, 5)

    board.row("Workloads")
    # The workload variable narrows these; the workloads dashboard has the detail.
    board.add(bargauge_panel(
        "Spend today by workload",
        "Money each selected workload (job tag, docs/workloads.md) spent since midnight UTC; details on the workloads dashboard.",
        "currencyUSD", [Query(per_workload("increase", "qpu_workload_cost_usd_total", "$__range"), "{{workload}}", instant=True)],
        steps=thresholds(GREEN)).time_from("now/d"), 12, 6)
    board.add(bargauge_panel(
        f"Job success by workload ({s.slo_period})",
        f"Share of each selected workload's finished jobs that did not fail over the SLO period; green at or above the fleet's {objective:.2%} (a workload's own objective may differ: workloads dashboard).",
        "percentunit", [Query(f"1 - ({workload_failure_ratio(s.slo_period)})", "{{workload}}", instant=True)],
        steps=thresholds(RED, (objective, GREEN)), min_value=None), 12, 6)

    board.row("Quality")
    board.add(timeseries_panel(
        "Median error per Clifford per backend",
        "Median over the probed qubit sets of the exporter's own randomized-benchmarking EPC (qpu_probe_epc_ratio); independent of what the provider reports.",
        "percentunit",
        [Query(f"quantile by (provider, backend) (0.5, max by (provider, backend, qubits) (qpu_probe_epc_ratio{raw()}))", "{{backend}}")],
        min_value=0), 12, 8)
    board.add(timeseries_panel(
        "Median two-qubit gate error per backend",
        "Median over all working couplers of the provider-reported two-qubit gate error (qpu_gate_error_ratio; dead couplers are absent).",
        "percentunit",
        [Query(f"quantile by (provider, backend) (0.5, max by (provider, backend, gate, qubits) (qpu_gate_error_ratio{raw(EDGE)}))", "{{backend}}")],
        min_value=0), 12, 8)
    board.add(state_timeline_panel(
        "Backend status", "Operational (1) or not (0) per backend over time, as the provider reports it.",
        "none", [Query(f"max by (provider, backend) (qpu_backend_up{raw()})", "{{backend}}")],
        mappings=value_map({"1": ("up", GREEN), "0": ("down", RED)}), steps=thresholds(RED, (1, GREEN))), 12, 8)
    board.add(bargauge_panel(
        "Calibration age",
        f"Time since the provider last calibrated each backend; orange past the QPUCalibrationStale default ({s.calibration_stale_after / 3600:.0f} h).",
        "s", [Query(f"time() - max by (provider, backend) (qpu_backend_calibration_timestamp_seconds{raw()})", "{{backend}}", instant=True)],
        steps=thresholds(GREEN, (s.calibration_stale_after, ORANGE))), 6, 8)
    board.add(timeseries_panel(
        "Job error-budget burn rate (1h)",
        f"How fast each backend spends the job-failure error budget: failure ratio over 1h divided by (1 - objective). 1 = exactly on budget; the page threshold is {s.page_burn_factor:g}.",
        "none",
        [Query(f"provider_backend:qpu_jobs_failed:ratio_rate1h{rec()} / on () group_left () (1 - fleet:qpu_jobs_success_slo:objective_ratio)", "{{backend}}")],
        min_value=0, steps=thresholds(GREEN, (1, YELLOW), (s.page_burn_factor, RED)), threshold_line=True), 6, 8)
    return board.build()
