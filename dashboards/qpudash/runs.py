"""Workload runs dashboard (uid qpu-runs): what users' own programs report through the
instrumentation library (qpu_client_*, pushed to a Pushgateway): output fidelity against the
reference and run to run per circuit and backend, job outcomes, retries, latency and the age of
the calibration each job ran under.

The series come from a Pushgateway scraped with honor_labels, so `job` is the pushed job and
`instance` the push's grouping key (the library uses the host name); the variables are read from
the client metrics, not from the exporter's.
"""

from __future__ import annotations

from .layout import Board, datasource_variable, query_variable
from .panels import GREEN, ORANGE, RED, Query, stat_panel, table_panel, thresholds, timeseries_panel, unit_override
from .settings import Settings

JOB = 'job=~"$job", instance=~"$instance"'
RUN = f'{JOB}, provider=~"$provider", backend=~"$backend", workload=~"$workload"'
CIRCUIT = f'{RUN}, circuit=~"$circuit"'
WPB = "workload, provider, backend"
WPBC = "workload, provider, backend, circuit"
WORKLOAD = f'{JOB}, workload=~"$workload"'  # series without provider and backend labels
FAILED = 'status="failed"'
OBJECTIVE = f"max by (workload) (qpu_client_hellinger_fidelity_objective_ratio{{{WORKLOAD}}})"


def _variables():
    executions = "qpu_client_executions_total"
    any_value = {"multi": True, "include_all": True, "all_value": ".*"}
    return [
        datasource_variable(),
        query_variable("job", "Job", f"label_values({executions}, job)", multi=True, include_all=True, all_value=".+"),
        query_variable("instance", "Instance", f'label_values({executions}{{job=~"$job"}}, instance)',
                       multi=True, include_all=True, all_value=".+"),
        query_variable("provider", "Provider", f"label_values({executions}{{{JOB}}}, provider)", **any_value),
        query_variable("backend", "Backend", f'label_values({executions}{{{JOB}, provider=~"$provider"}}, backend)',
                       **any_value),
        query_variable("workload", "Workload",
                       f'label_values({executions}{{{JOB}, provider=~"$provider", backend=~"$backend"}}, workload)',
                       **any_value),
        query_variable("circuit", "Circuit", f"label_values(qpu_client_hellinger_fidelity_ratio{{{RUN}}}, circuit)",
                       **any_value),
    ]


def _increase(metric: str, selector: str = RUN, extra: str = "") -> str:
    matchers = f"{selector}, {extra}" if extra else selector
    return f"sum(increase({metric}{{{matchers}}}[$__range]))"


def build(s: Settings):
    board = Board(
        title="QPU workloads / Runs",
        uid=s.uids["runs"],
        description="Users' own qiskit and Braket runs, as the instrumentation library reports them: output fidelity "
                    "per circuit and backend against its reference and from run to run, job outcomes, retries, latency "
                    "and the age of the calibration each job ran under (docs/instrument.md).",
        time_from="now-24h",
        refresh="1m",
        variables=_variables(),
    )
    fidelity = f"max by ({WPBC}) (qpu_client_hellinger_fidelity_ratio{{{CIRCUIT}}})"
    run_to_run = f"max by ({WPBC}) (qpu_client_run_to_run_hellinger_fidelity_ratio{{{CIRCUIT}}})"

    board.row("Output quality")
    board.add(timeseries_panel(
        "Fidelity to the reference",
        "Hellinger fidelity of each circuit's latest output distribution to its reference (metadata expected, or "
        "the ideal distribution by exact simulation), with each workload's declared objective. Shot noise alone "
        "keeps it slightly below 1.",
        "percentunit",
        [Query(fidelity, "{{workload}} / {{circuit}} @ {{backend}}"), Query(OBJECTIVE, "{{workload}} objective")],
        min_value=0, max_value=1), 12, 8)
    board.add(timeseries_panel(
        "Run-to-run stability",
        "Hellinger fidelity between the latest and the previous output of the same circuit (same fingerprint) on "
        "the same backend: execution variance. Low here but high to the reference means noise; high here but low "
        "to the reference means a systematic change.",
        "percentunit", [Query(run_to_run, "{{workload}} / {{circuit}} @ {{backend}}")],
        min_value=0, max_value=1), 12, 8)
    board.add(table_panel(
        "Latest per circuit",
        "The latest fidelity to the reference and run-to-run stability of every circuit, worst first.",
        "percentunit",
        [Query(fidelity, instant=True, table=True), Query(run_to_run, instant=True, table=True)],
        merge=True, overrides=[unit_override("Value #A", "percentunit", "fidelity to reference"),
                               unit_override("Value #B", "percentunit", "run to run")],
        steps=thresholds(RED, (0.9, ORANGE), (0.97, GREEN))), 16, 8)
    board.add(stat_panel(
        "Circuits below their objective",
        "Circuits whose latest fidelity is below the objective their workload declares; the "
        "QPUWorkloadFidelityBelowObjective alert fires when that holds on average for an hour.",
        "none",
        [Query(f"count({fidelity} < on (workload) group_left () {OBJECTIVE}) or vector(0)", instant=True)],
        steps=thresholds(GREEN, (1, RED)), decimals=0), 8, 4)
    board.add(stat_panel(
        "Since the last result",
        "Time since the latest job of the selected workloads returned (or failed).",
        "s", [Query(f"time() - max(qpu_client_last_execution_timestamp_seconds{{{RUN}}})", instant=True)],
        steps=thresholds(GREEN, (6 * 3600, ORANGE)), decimals=0), 8, 4)

    board.row("Executions")
    board.add(timeseries_panel(
        "Jobs by status",
        "Jobs per second that finished ok or failed (submission or execution), per workload and backend.",
        "ops",
        [Query(f"sum by ({WPB}, status) (rate(qpu_client_executions_total{{{RUN}}}[$__rate_interval]))",
               "{{workload}} @ {{backend}} {{status}}")],
        min_value=0), 8, 8)
    board.add(timeseries_panel(
        "Latency, submit to result",
        "Median and 90th percentile of the wall time from submitting a job to its result reaching the user's code "
        "(queue and execution included).",
        "s",
        [Query(f"histogram_quantile({q}, sum by (le, {WPB}) "
               f"(rate(qpu_client_execution_duration_seconds_bucket{{{RUN}}}[$__rate_interval])))",
               f"p{int(q * 100)} {{{{workload}}}} @ {{{{backend}}}}") for q in (0.5, 0.9)],
        min_value=0), 8, 8)
    board.add(timeseries_panel(
        "Calibration age at submission",
        "How old the backend's calibration was when the latest job was submitted; absent for local simulators, "
        "which publish none.",
        "s", [Query(f"max by ({WPB}) (qpu_client_calibration_age_seconds{{{RUN}}})", "{{workload}} @ {{backend}}")],
        min_value=0), 8, 8)
    board.add(stat_panel(
        "Failed share", "Share of the jobs that finished over the time range that failed.", "percentunit",
        [Query(_increase("qpu_client_executions_total", extra=FAILED) + " / " + _increase("qpu_client_executions_total"),
               instant=True)],
        steps=thresholds(GREEN, (0.01, ORANGE), (0.1, RED)), decimals=1), 6, 4)
    board.add(stat_panel(
        "Retries", "Submissions over the time range that resubmitted a circuit whose previous submission failed.",
        "none", [Query(f"{_increase('qpu_client_retries_total')} or vector(0)", instant=True)],
        steps=thresholds(GREEN, (1, ORANGE)), decimals=0), 6, 4)
    board.add(stat_panel(
        "Shots", "Shots in the results of jobs that finished ok over the time range.", "short",
        [Query(_increase("qpu_client_shots_total"), instant=True)], steps=thresholds(GREEN), decimals=0), 6, 4)
    board.add(stat_panel(
        "Instrumentation errors",
        "Failures inside the instrumentation library over the time range (the users' runs were not affected); "
        "see the workload's log for the stage.",
        "none",
        [Query(_increase("qpu_client_instrumentation_errors_total", WORKLOAD) + " or vector(0)", instant=True)],
        steps=thresholds(GREEN, (1, ORANGE)), decimals=0), 6, 4)
    return board.build()
