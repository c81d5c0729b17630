"""Users' own runs, as the instrumentation library reports them (rules/runs.yml).

The objective is the one the workload declares in its code (Instrumentation(fidelity_objective=...)
exports qpu_client_hellinger_fidelity_objective_ratio): fidelity targets are per workload and
circuit family, not fleet-wide, so there is no default here. Series stay in a Pushgateway after a
workload stops pushing, so only workloads whose latest result is recent are judged.
"""

from __future__ import annotations

from .common import Links, alert, for_duration, group, seconds

WPBC = "workload, provider, backend, circuit"
WPB = "workload, provider, backend"


def build(config: dict, links: Links) -> dict:
    cfg = config["workload_runs"]["fidelity_below_objective"]
    window, recent = str(cfg["window"]), str(cfg["recent"])
    rules = [
        alert(
            "QPUWorkloadFidelityBelowObjective",
            f"""
(
  max by ({WPBC}) (avg_over_time(qpu_client_hellinger_fidelity_ratio[{window}]))
  < on (workload) group_left ()
  max by (workload) (qpu_client_hellinger_fidelity_objective_ratio)
)
and on ({WPB})
(time() - max by ({WPB}) (qpu_client_last_execution_timestamp_seconds)) < {seconds(recent, 'workload_runs.fidelity_below_objective.recent')}
""",
            for_=for_duration(cfg, "workload_runs.fidelity_below_objective"),
            severity="ticket",
            concern="runs",
            summary="A workload's circuit output is below the fidelity objective the workload declares.",
            description=(
                "Circuit {{ $labels.circuit }} of workload {{ $labels.workload }} on "
                "{{ $labels.provider }}/{{ $labels.backend }} averaged a Hellinger fidelity of "
                f"{{{{ $value | humanizePercentage }}}} to its reference over {window}, below the workload's objective."
            ),
            links=links,
            dashboard=links.dashboard("runs", ("workload", "provider", "backend")),
        ),
    ]
    return group("qpu-workload-runs", rules)
