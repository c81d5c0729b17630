"""Every metric the exporter exposes: name, type, labels, meaning and source.

The single source for HELP text in exposition and for ``docs/metrics.md`` (rendered by
``render_markdown``; a test keeps the committed file equal to it and checks that every
exported family is listed here).
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import QUBIT_QUANTITIES


@dataclass(frozen=True)
class MetricSpec:
    name: str
    type: str  # gauge | counter | histogram | info
    labels: tuple[str, ...]
    help: str
    source: str


_PB = ("provider", "backend")
_COLL = ("provider", "backend", "collector")
_WL = ("provider", "backend", "workload")

_SPECS: list[MetricSpec] = [
    MetricSpec("qpu_exporter_build_info", "gauge", ("version", "revision"), "Build of the running exporter; value 1.", "exporter"),
    MetricSpec("qpu_exporter_collector_success", "gauge", _COLL, "1 when the last poll of this collector succeeded.", "scheduler"),
    MetricSpec("qpu_exporter_collector_last_success_timestamp_seconds", "gauge", _COLL, "Unix time of the last successful poll (staleness = time() - this).", "scheduler"),
    MetricSpec("qpu_exporter_collector_duration_seconds", "gauge", _COLL, "Duration of the last poll.", "scheduler"),
    MetricSpec("qpu_exporter_collector_errors_total", "counter", _COLL + ("kind",), "Failed polls by error class (timeout, http_5xx, rate_limited, auth, malformed, ...).", "scheduler"),
    MetricSpec("qpu_exporter_config_last_reload_successful", "gauge", (), "1 when the last config reload (SIGHUP or POST /-/reload) was applied; 0 when it was refused and the running config kept. 1 after start.", "reload"),
    MetricSpec("qpu_exporter_config_last_reload_success_timestamp_seconds", "gauge", (), "Unix time the running config was loaded (start or last successful reload).", "reload"),
    MetricSpec("qpu_exporter_state_write_failures_total", "counter", (), "Writes to the state (file or database) that failed; the exporter keeps serving from memory.", "store"),
    MetricSpec("qpu_data_quality_rejections_total", "counter", _PB + ("check",), "Provider values rejected by a data-quality check (out_of_range, stale, t2_exceeds_2t1, zero_error, unknown_unit, unknown_field: a field or fidelity type the parser does not use) and not exported.", "quality checks"),
    MetricSpec("qpu_backend_info", "gauge", _PB + ("num_qubits", "processor"), "Static backend metadata; value 1.", "provider backend list"),
    MetricSpec("qpu_backend_up", "gauge", _PB, "1 when the provider reports the backend operational / online.", "provider status"),
    MetricSpec("qpu_backend_maintenance", "gauge", _PB, "1 when the provider reports the backend in maintenance.", "provider status"),
    MetricSpec("qpu_backend_availability_window_open", "gauge", _PB, "1 inside the provider's availability window (always 1 for providers without windows).", "provider status"),
    MetricSpec("qpu_backend_pending_jobs", "gauge", _PB, "Jobs waiting in the backend's queue.", "provider status"),
    MetricSpec("qpu_backend_calibration_timestamp_seconds", "gauge", _PB, "Unix time of the provider's last calibration of the backend.", "provider calibration"),
    MetricSpec("qpu_backend_operational_qubits", "gauge", _PB, "Qubits the provider reports operational.", "provider calibration"),
    MetricSpec("qpu_backend_dead_couplers", "gauge", _PB, "Two-qubit gates reported faulty (gate error == 1 sentinel).", "provider calibration"),
]
for _q, (_unit, _meaning) in QUBIT_QUANTITIES.items():
    _SPECS.append(
        MetricSpec(f"qpu_qubit_{_q}_{_unit}", "gauge", _PB + ("qubit",), f"{_meaning}, as last measured by the provider.", "provider calibration")
    )
_SPECS += [
    MetricSpec("qpu_qubit_measurement_timestamp_seconds", "gauge", _PB + ("qubit", "quantity"), "Unix time the provider measured this qubit quantity (per-metric age; differs from the calibration time).", "provider calibration"),
    MetricSpec("qpu_qubit_operational", "gauge", _PB + ("qubit",), "1 unless the provider marks the qubit faulty.", "provider calibration"),
    MetricSpec("qpu_gate_error_ratio", "gauge", _PB + ("gate", "qubits"), "Gate error per gate and (directed) qubit tuple; absent for faulty gates.", "provider calibration"),
    MetricSpec("qpu_gate_duration_seconds", "gauge", _PB + ("gate", "qubits"), "Gate duration.", "provider calibration"),
    MetricSpec("qpu_gate_operational", "gauge", _PB + ("gate", "qubits"), "0 for a gate the provider reports faulty (dead coupler), else 1.", "provider calibration"),
    MetricSpec("qpu_gate_measurement_timestamp_seconds", "gauge", _PB + ("gate", "qubits"), "Unix time the provider measured this gate's error.", "provider calibration"),
    MetricSpec("qpu_reported_epc_ratio", "gauge", _PB + ("qubits",), "Error per Clifford the provider reports from its own randomized benchmarking (1 - published RB fidelity: Braket per-qubit RANDOMIZED_BENCHMARKING, IQM Two_Qubit_Clifford per pair; qubits empty for a device-level figure). Comparable with qpu_probe_epc_ratio.", "provider calibration"),
    MetricSpec("qpu_jobs_total", "counter", _PB, "Jobs that reached a final state (done, failed or cancelled).", "provider jobs"),
    MetricSpec("qpu_jobs_failed_total", "counter", _PB, "Jobs that failed.", "provider jobs"),
    MetricSpec("qpu_jobs_cancelled_total", "counter", _PB, "Jobs that were cancelled.", "provider jobs"),
    MetricSpec("qpu_job_failures_by_class_total", "counter", _PB + ("error_class",), "Failed jobs by error class (a short, bounded vocabulary).", "provider jobs"),
    MetricSpec("qpu_job_queue_duration_seconds", "histogram", _PB, "Time finished jobs waited in the queue.", "provider jobs"),
    MetricSpec("qpu_job_execution_duration_seconds", "histogram", _PB, "Time finished jobs ran.", "provider jobs"),
    MetricSpec("qpu_job_usage_seconds_total", "counter", _PB, "Billed QPU time of finished jobs whose usage is known and final (IBM: job and batch jobs' quantum time, sessions' active wall-clock time; Braket publishes none).", "provider jobs"),
    MetricSpec("qpu_cost_usd_total", "counter", _PB, "Money spent on finished jobs whose cost is known, in US dollars (docs/providers.md: how each provider prices).", "provider jobs, billing config and price table"),
    MetricSpec("qpu_jobs_cost_unknown_total", "counter", _PB + ("reason",), "Finished jobs whose cost cannot be known and is not in qpu_cost_usd_total: reason unpriced_device, no_billing_plan, subscription, usage_not_final, not_read or reservation.", "provider jobs"),
    MetricSpec("qpu_instance_usage_consumed_seconds", "gauge", ("provider",), "QPU time consumed by the account/instance in the provider's current usage period (IBM instance usage).", "provider usage"),
    MetricSpec("qpu_instance_usage_limit_seconds", "gauge", ("provider",), "QPU-time limit of the usage period; absent when the plan has none.", "provider usage"),
    MetricSpec("qpu_instance_usage_remaining_seconds", "gauge", ("provider",), "QPU time left in the usage period.", "provider usage"),
    MetricSpec("qpu_cost_budget_daily_usd", "gauge", (), "Configured daily spend budget for all jobs (config cost.daily_budget_usd).", "config"),
    MetricSpec("qpu_workload_jobs_total", "counter", _WL, "Jobs that reached a final state, by workload (the job tag workloads.tag; untagged, other); sums to qpu_jobs_total per backend.", "provider jobs and their tags"),
    MetricSpec("qpu_workload_jobs_failed_total", "counter", _WL, "Jobs that failed, by workload; sums to qpu_jobs_failed_total per backend.", "provider jobs and their tags"),
    MetricSpec("qpu_workload_usage_seconds_total", "counter", _WL, "Billed QPU time of finished jobs, by workload; sums to qpu_job_usage_seconds_total per backend.", "provider jobs and their tags"),
    MetricSpec("qpu_workload_cost_usd_total", "counter", _WL, "Money spent on finished jobs in US dollars, by workload; sums to qpu_cost_usd_total per backend.", "provider jobs, their tags and price table"),
    MetricSpec("qpu_workload_queue_duration_seconds", "histogram", _WL, "Time finished jobs waited in the queue, by workload (same buckets as qpu_job_queue_duration_seconds).", "provider jobs and their tags"),
    MetricSpec("qpu_workload_tag_rejections_total", "counter", _PB + ("reason",), "Jobs counted under workload=\"other\" because their tag value was not used as a label: overflow (workloads.max values already kept), too_long, looks_secret, invalid, ambiguous.", "provider jobs and their tags"),
    MetricSpec("qpu_workload_cost_budget_daily_usd", "gauge", ("workload",), "Configured daily spend budget of the workload (config workloads.budgets).", "config"),
    MetricSpec("qpu_workload_job_success_objective_ratio", "gauge", ("workload",), "Job-success objective of the workload where the config overrides the fleet one (workloads.objectives.*.job_success).", "config"),
    MetricSpec("qpu_workload_queue_objective_seconds", "gauge", ("workload",), "Queue-time objective of the workload where the config overrides the fleet one (workloads.objectives.*.queue_seconds).", "config"),
    MetricSpec("qpu_drift_statistic", "gauge", _PB + ("series", "detector"), "Drift statistic in sigma units: the EWMA's standardized deviation (signed) or the CUSUM's larger side. Present once the series finished its warm-up.", "drift monitor"),
    MetricSpec("qpu_drift_limit", "gauge", _PB + ("series", "detector"), "Control limit of the statistic, in the same sigma units (designed from the configured ARL0).", "drift monitor"),
    MetricSpec("qpu_drift_alarm", "gauge", _PB + ("series", "detector"), "1 when the detector signalled on the series' latest sample.", "drift monitor"),
    MetricSpec("qpu_drift_alarms_total", "counter", _PB + ("series", "detector"), "Alarms raised by the detector on the series.", "drift monitor"),
    MetricSpec("qpu_probe_epc_ratio", "gauge", _PB + ("qubits",), "Error per Clifford measured by the exporter's latest successful randomized-benchmarking probe of the qubit set.", "probes"),
    MetricSpec("qpu_probe_epc_stderr_ratio", "gauge", _PB + ("qubits",), "Standard error of qpu_probe_epc_ratio (includes between-sequence variance).", "probes"),
    MetricSpec("qpu_probe_gate_error_ratio", "gauge", _PB + ("gate", "qubits"), "Gate error measured by the latest successful interleaved-RB probe (directed qubits).", "probes"),
    MetricSpec("qpu_probe_gate_error_stderr_ratio", "gauge", _PB + ("gate", "qubits"), "Standard error of qpu_probe_gate_error_ratio (the Magesan systematic bound is not included).", "probes"),
    MetricSpec("qpu_probe_runs_total", "counter", _PB, "Probe runs submitted (one per probed qubit set and attempt cycle, failed ones included).", "probes"),
    MetricSpec("qpu_probe_failures_total", "counter", _PB, "Probe runs that failed: submission failed after retries, or the fit failed.", "probes"),
    MetricSpec("qpu_probe_shots_total", "counter", _PB, "Shots submitted by probes, retries included.", "probes"),
    MetricSpec("qpu_probe_skipped_total", "counter", _PB + ("reason",), "Probes not run: reason budget (cap reached), backend_down, busy (another probe on the backend) or unpriced (the provider cannot price the probe, so the USD caps could not hold).", "probes"),
    MetricSpec("qpu_probe_last_success_timestamp_seconds", "gauge", _PB, "Unix time of the last successful probe of the backend; 0 until the first one.", "probes"),
    MetricSpec("qpu_budget_remaining_ratio", "gauge", _PB, "Share of the probe budget left in the rolling 24 h window: the minimum over the backend's and the global shot and USD caps.", "probes budget ledger"),
    MetricSpec("qpu_probe_hellinger_fidelity_ratio", "gauge", _PB, "Hellinger fidelity of the backend's latest Bell-circuit distribution to the ideal one (cross-device agreement probe).", "probes"),
    MetricSpec("qpu_probe_agreement_hellinger_fidelity_ratio", "gauge", _PB + ("other_provider", "other_backend"), "Hellinger fidelity between two backends' latest Bell-circuit distributions (same fixed circuit on both).", "probes"),
]

SPECS: dict[str, MetricSpec] = {s.name: s for s in _SPECS}

# The instrumentation library's metrics (qpu_exporter.instrument, docs/instrument.md). Users'
# own programs expose them (pushed to a Pushgateway or served by inst.serve()), never the
# exporter; `circuit` is the circuit's name or fingerprint prefix, capped per workload.
_WPB = ("workload", "provider", "backend")
_CLIENT_SOURCE = "instrumentation library"
_CLIENT_SPECS: list[MetricSpec] = [
    MetricSpec("qpu_client_executions_total", "counter", _WPB + ("status",), "Jobs submitted through a wrapped sampler or device that finished: status ok (a result came back) or failed (submission or job failed).", _CLIENT_SOURCE),
    MetricSpec("qpu_client_shots_total", "counter", _WPB, "Shots in the results of jobs that finished ok.", _CLIENT_SOURCE),
    MetricSpec("qpu_client_execution_duration_seconds", "histogram", _WPB, "Wall time from submitting a job to its result returning to the user's code (queue and execution included), for jobs that finished ok.", _CLIENT_SOURCE),
    MetricSpec("qpu_client_retries_total", "counter", _WPB, "Submissions that resubmit a circuit (same fingerprint) whose previous submission failed.", _CLIENT_SOURCE),
    MetricSpec("qpu_client_calibration_age_seconds", "gauge", _WPB, "Age of the backend's calibration when the latest job was submitted; absent where the backend publishes no calibration time (local simulators).", _CLIENT_SOURCE),
    MetricSpec("qpu_client_last_execution_timestamp_seconds", "gauge", _WPB, "Unix time the latest job's result (or failure) came back.", _CLIENT_SOURCE),
    MetricSpec("qpu_client_hellinger_fidelity_ratio", "gauge", _WPB + ("circuit",), "Hellinger fidelity of the circuit's latest output distribution to its reference (metadata expected, or the ideal distribution by exact simulation).", _CLIENT_SOURCE),
    MetricSpec("qpu_client_run_to_run_hellinger_fidelity_ratio", "gauge", _WPB + ("circuit",), "Hellinger fidelity between the latest and the previous output distribution of the same circuit (fingerprint) on the same backend: run-to-run stability, shot noise included.", _CLIENT_SOURCE),
    MetricSpec("qpu_client_hellinger_fidelity_objective_ratio", "gauge", ("workload",), "The workload's declared fidelity objective (Instrumentation(fidelity_objective=...)); the QPUWorkloadFidelityBelowObjective alert compares against it.", _CLIENT_SOURCE),
    MetricSpec("qpu_client_instrumentation_errors_total", "counter", ("workload", "stage"), "Failures inside the instrumentation (stage submit, result, reference, calibration, log, push); the user's run is never affected.", _CLIENT_SOURCE),
]
CLIENT_SPECS: dict[str, MetricSpec] = {s.name: s for s in _CLIENT_SPECS}


def qubit_metric_name(quantity: str) -> str:
    unit = QUBIT_QUANTITIES[quantity][0]
    return f"qpu_qubit_{quantity}_{unit}"


def render_markdown() -> str:
    lines = [
        "# Metrics",
        "",
        "Every metric qpu-exporter exposes on `/metrics`. Generated from",
        "`exporter/qpu_exporter/catalog.py` by `qpu-exporter docs metrics`; a test keeps this file",
        "in sync with the catalog and the catalog in sync with what the exporter serves.",
        "",
        "Values are in SI base units (seconds, hertz, ratios 0-1). Calibration, status and job",
        "metrics are cached from the last poll (polled on a schedule, not per scrape); freshness is",
        "`qpu_exporter_collector_last_success_timestamp_seconds`. Label `qubit` is the qubit index",
        "as a string; `qubits` joins a gate's qubits with `_` in the provider's order (directed",
        "for two-qubit gates, e.g. `3_4`).",
        "",
        "| metric | type | labels | meaning | source |",
        "|---|---|---|---|---|",
    ]
    lines += _table_rows(_SPECS)
    lines += [
        "",
        "## Instrumentation library (`qpu_client_*`)",
        "",
        "Exposed by users' own programs through `qpu_exporter.instrument` (pushed to a Pushgateway",
        "or served by `inst.serve()`), not by the exporter; see docs/instrument.md.",
        "",
        "| metric | type | labels | meaning | source |",
        "|---|---|---|---|---|",
    ]
    lines += _table_rows(_CLIENT_SPECS)
    return "\n".join(lines) + "\n"


def _table_rows(specs: list[MetricSpec]) -> list[str]:
    return [f"| `{s.name}` | {s.type} | {', '.join(f'`{x}`' for x in s.labels) or '-'} | {s.help} | {s.source} |"
            for s in specs]
