"""On-call dashboard (uid qpu-oncall): what is firing, which backend is down or stale, why jobs
fail, how long they queue, which drift detectors and probes complain, and whether the exporter's
own collectors are healthy; every alert links to its runbook."""

from __future__ import annotations

from .layout import Board, datasource_variable, job_instance_variables
from .panels import (
    GREEN,
    ORANGE,
    RED,
    Query,
    bargauge_panel,
    link_override,
    stat_panel,
    state_timeline_panel,
    table_panel,
    text_panel,
    thresholds,
    timeseries_panel,
    unit_override,
    value_map,
)
from .selectors import FIRING, JOB, fleet_variables, raw, rec
from .settings import Settings

UP_DOWN = value_map({"1": ("up", GREEN), "0": ("down", RED)})
OK_FAIL = value_map({"1": ("ok", GREEN), "0": ("failing", RED)})


def _collector_age(collector: str | None = None) -> str:
    extra = (f'collector="{collector}"',) if collector else ('collector!="discovery"',)
    return f"time() - max by (provider, backend, collector) (qpu_exporter_collector_last_success_timestamp_seconds{raw(*extra)})"


def runbook_index(s: Settings) -> str:
    lines = ["Runbooks for every qpu-exporter alert (Meaning, Impact, Diagnosis, Mitigation, Escalation):", ""]
    lines += [f"- [{name}]({s.runbook_base_url}{name}.md)" for name in s.runbook_alerts]
    return "\n".join(lines)


def build(s: Settings):
    board = Board(
        title="QPU fleet / On-call",
        uid=s.uids["oncall"],
        description="Firing alerts with runbooks, backends down or stale, failed jobs, queue times, drift alarms, probe failures and the exporter's collector health.",
        time_from="now-6h",
        refresh="30s",
        variables=[datasource_variable(), *job_instance_variables(), *fleet_variables(multi=True)],
    )
    qubit_url = f"/d/{s.uids['qubit']}?var-provider=${{__data.fields.provider}}&var-backend=${{__data.fields.backend}}&${{datasource:queryparam}}"
    stale_terms = " or ".join(
        f"({_collector_age(c)} > {after:g})" for c, after in sorted(s.collector_stale_after.items())
    )

    board.row("Now")
    board.add(stat_panel(
        "Pages firing", "Alerts with severity=page firing now (Prometheus ALERTS).", "none",
        [Query(f'count(ALERTS{{{FIRING}, severity="page"}}) or vector(0)', instant=True)],
        steps=thresholds(GREEN, (1, RED)), decimals=0), 4, 4)
    board.add(stat_panel(
        "Tickets firing", "Alerts with severity=ticket firing now, the Watchdog excluded.", "none",
        [Query(f'count(ALERTS{{{FIRING}, severity="ticket", alertname!="Watchdog"}}) or vector(0)', instant=True)],
        steps=thresholds(GREEN, (1, ORANGE)), decimals=0), 4, 4)
    board.add(stat_panel(
        "Alerting pipeline (Watchdog)",
        "The always-firing Watchdog alert: 'broken' means Prometheus is not evaluating the qpu-exporter rules.",
        "none", [Query(f'count(ALERTS{{{FIRING}, alertname="Watchdog"}}) or vector(0)', instant=True)],
        steps=thresholds(RED, (1, GREEN)), mappings=value_map({"1": ("ok", GREEN), "0": ("broken", RED)})), 4, 4)
    board.add(stat_panel(
        "Exporter targets up", "Scrape targets of the exporter job that answered the last scrape, out of all (up).", "none",
        [Query(f"sum(up{{{JOB}}})", instant=True)], steps=thresholds(RED, (1, GREEN)), decimals=0), 4, 4)
    board.add(stat_panel(
        "Backends down", "Backends the provider reports not operational now (qpu_backend_up == 0).", "none",
        [Query(f"count(max by (provider, backend) (qpu_backend_up{raw()}) == 0) or vector(0)", instant=True)],
        steps=thresholds(GREEN, (1, RED)), decimals=0), 4, 4)
    board.add(stat_panel(
        "Stale collectors",
        "Collectors whose last success is older than the QPUExporterDataStale limits ("
        + ", ".join(f"{c} {after / 60:g} min" for c, after in sorted(s.collector_stale_after.items())) + ").",
        "none", [Query(f"count({stale_terms}) or vector(0)", instant=True)],
        steps=thresholds(GREEN, (1, ORANGE)), decimals=0), 4, 4)

    board.row("Alerts")
    board.add(table_panel(
        "Firing alerts",
        "Every firing alert for the selected backends plus fleet-wide ones (no backend label). Click an alert name for its runbook, a backend for its qubit dashboard.",
        "none",
        [Query(f"ALERTS{rec(FIRING)} or ALERTS{{{FIRING}, backend=\"\"}}", instant=True, table=True)],
        hide_columns=("Time", "Value", "__name__", "alertstate"),
        overrides=[
            link_override("alertname", "Runbook", f"{s.runbook_base_url}${{__value.raw}}.md"),
            link_override("backend", "Qubit detail", qubit_url),
        ]), 16, 9)
    board.add(text_panel("Runbooks", "Links to the runbook of every alert (alerts/runbooks).", runbook_index(s)), 8, 9)

    board.row("Backends and collectors")
    board.add(state_timeline_panel(
        "Backend status", "Operational (1) or not (0) per backend, as the provider reports it (qpu_backend_up).",
        "none", [Query(f"max by (provider, backend) (qpu_backend_up{raw()})", "{{backend}}")],
        mappings=UP_DOWN, steps=thresholds(RED, (1, GREEN))), 12, 8)
    board.add(bargauge_panel(
        "Collector data age",
        "Seconds since each collector's last successful poll per backend; orange past the smallest staleness limit.",
        "s", [Query(_collector_age(), "{{backend}} {{collector}}", instant=True)],
        steps=thresholds(GREEN, (min(s.collector_stale_after.values()), ORANGE))), 12, 8)
    board.add(state_timeline_panel(
        "Collector health", "Whether the last poll of each collector worked (qpu_exporter_collector_success).",
        "none", [Query(f"max by (provider, backend, collector) (qpu_exporter_collector_success{raw()})", "{{backend}} {{collector}}")],
        mappings=OK_FAIL, steps=thresholds(RED, (1, GREEN))), 12, 8)
    board.add(timeseries_panel(
        "Collector poll duration", "How long the last poll of each collector took (qpu_exporter_collector_duration_seconds).",
        "s", [Query(f"max by (provider, backend, collector) (qpu_exporter_collector_duration_seconds{raw()})", "{{backend}} {{collector}}")],
        min_value=0), 12, 8)

    board.row("Jobs")
    board.add(timeseries_panel(
        "Failed jobs by backend and class", "Failed jobs per minute by error class (qpu_job_failures_by_class_total).",
        "opm", [Query(f"60 * max by (provider, backend, error_class) (rate(qpu_job_failures_by_class_total{raw()}[$__rate_interval]))",
                      "{{backend}} {{error_class}}")],
        min_value=0), 12, 8)
    board.add(timeseries_panel(
        "Job failure ratio (1h) vs SLO",
        f"Share of finished jobs that failed over the last hour per backend (recording rule); the line is the error budget 1 - {s.slo_objective:g}.",
        "percentunit", [Query(f"provider_backend:qpu_jobs_failed:ratio_rate1h{rec()}", "{{backend}}")],
        min_value=0, steps=thresholds(GREEN, (round(1 - s.slo_objective, 6), RED)), threshold_line=True), 12, 8)
    board.add(timeseries_panel(
        "Queue time p50 / p95",
        f"Median and 95th percentile time finished jobs waited in the queue, from the qpu_job_queue_duration_seconds histogram; the QPUJobQueueTimeHigh threshold is p{s.queue_time_quantile * 100:g} > {s.queue_time_threshold / 3600:g} h.",
        "s",
        [Query(f"histogram_quantile({q}, max by (provider, backend, le) (rate(qpu_job_queue_duration_seconds_bucket{raw()}[$__rate_interval])))",
               f"{{{{backend}}}} p{int(q * 100)}") for q in (0.5, 0.95)],
        min_value=0, steps=thresholds(GREEN, (s.queue_time_threshold, RED)), threshold_line=True), 12, 8)
    board.add(timeseries_panel(
        "Pending jobs", "Jobs waiting in each backend's queue (qpu_backend_pending_jobs).",
        "none", [Query(f"max by (provider, backend) (qpu_backend_pending_jobs{raw()})", "{{backend}}")], min_value=0), 12, 8)

    board.row("Drift and probes")
    board.add(table_panel(
        "Drift alarms by series",
        "Series with the most drift-detector alarms over the selected range (qpu_drift_alarms_total), largest first; a series is e.g. t1:q3 or gate_error:cz:3_4.",
        "none",
        [Query(f"topk(20, sum by (provider, backend, series) (max by (provider, backend, series, detector) (increase(qpu_drift_alarms_total{raw()}[$__range]))))",
               instant=True, table=True)],
        hide_columns=("Time",), sort_by="Value",
        overrides=[unit_override("Value", "none", "alarms in range"), link_override("backend", "Qubit detail", qubit_url)]), 12, 8)
    board.add(timeseries_panel(
        "Active drift alarms per backend", "Detector series signalling now, per backend (qpu_drift_alarm).",
        "none", [Query(f"sum by (provider, backend) (max by (provider, backend, series, detector) (qpu_drift_alarm{raw()}))", "{{backend}}")],
        min_value=0), 12, 8)
    board.add(timeseries_panel(
        "Probe failures", "Failed benchmark probes per hour per backend (qpu_probe_failures_total).",
        "none", [Query(f"3600 * max by (provider, backend) (rate(qpu_probe_failures_total{raw()}[$__rate_interval]))", "{{backend}}")],
        min_value=0), 8, 8)
    board.add(timeseries_panel(
        "Probes skipped by reason", "Probes not run per hour, by reason (budget, backend down, ...) (qpu_probe_skipped_total).",
        "none", [Query(f"3600 * max by (provider, backend, reason) (rate(qpu_probe_skipped_total{raw()}[$__rate_interval]))", "{{backend}} {{reason}}")],
        min_value=0), 8, 8)
    board.add(bargauge_panel(
        "Probe age", f"Time since the last successful probe per backend; red past the QPUProbeStale limit ({s.probe_stale_after / 3600:g} h).",
        "s", [Query(f"time() - max by (provider, backend) (qpu_probe_last_success_timestamp_seconds{raw()} > 0)", "{{backend}}", instant=True)],
        steps=thresholds(GREEN, (s.probe_stale_after, RED))), 8, 8)
    return board.build()

