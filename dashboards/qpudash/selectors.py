"""Label matchers shared by the dashboards.

Raw exporter series carry `job` and `instance` (dashboard-linter's job/instance rules); recording
rules and ALERTS are aggregated over exporter replicas (`max by (provider, backend)`), so they only
take the provider/backend matchers.
"""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import VariableSort

from .layout import query_variable

JOB = 'job=~"$job", instance=~"$instance"'
BACKEND = 'provider=~"$provider", backend=~"$backend"'
RAW = f"{JOB}, {BACKEND}"

FIRING = 'alertstate="firing"'
# Alerts about the exporter or the pipeline carry no backend label.
NOT_FLEET_WIDE = 'backend!=""'

# Two-qubit gates name their qubits "3_4"; one-qubit gates "3".
EDGE = 'qubits=~"[0-9]+_[0-9]+"'


def raw(*extra: str) -> str:
    """Matchers for a raw exporter metric: `{job, instance, provider, backend, extra...}`."""
    return "{" + ", ".join((RAW, *extra)) + "}"


def rec(*extra: str) -> str:
    """Matchers for a recording rule or ALERTS: `{provider, backend, extra...}`."""
    return "{" + ", ".join((BACKEND, *extra)) + "}"


def fleet_variables(*, multi: bool):
    """provider and backend. Multi-select boards use All = `.*` so that series without the label
    (fleet-wide alerts) still match; the qubit board is per backend (single select)."""
    all_value = ".*" if multi else None
    return [
        query_variable("provider", "Provider", f"label_values(qpu_backend_info{{{JOB}}}, provider)",
                       multi=multi, include_all=multi, all_value=all_value),
        query_variable("backend", "Backend",
                       f'label_values(qpu_backend_info{{{JOB}, provider=~"$provider"}}, backend)',
                       multi=multi, include_all=multi, all_value=all_value),
    ]


def qubit_variable():
    return query_variable(
        "qubit", "Qubit", f"label_values(qpu_qubit_t1_seconds{{{RAW}}}, qubit)",
        multi=True, include_all=True, all_value=".+", sort=VariableSort.NUMERICAL_ASC,
    )


def workload_variable():
    """The workload label of the per-workload series (exporters with a `workloads:` config);
    All = `.*`."""
    return query_variable("workload", "Workload", f"label_values(qpu_workload_jobs_total{{{RAW}}}, workload)",
                          multi=True, include_all=True, all_value=".*")
