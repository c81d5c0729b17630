"""RB probe rules (rules/probes.yml): regression, disagreement, failures, freshness, budget."""

from __future__ import annotations

from .common import PB, WINDOW_CLOSED, Links, alert, for_duration, group, number, record, seconds

PBQ = f"{PB}, qubits"
PBGQ = f"{PB}, gate, qubits"
PROBE_AGE = "provider_backend:qpu_probe_age:seconds"
RATIO_TO_REPORTED = "provider_backend_gate_qubits:qpu_probe_gate_error:ratio_to_reported"


def _epc_baseline(window: str) -> str:
    return f"provider_backend_qubits:qpu_probe_epc_ratio:median{window}"


def build(config: dict, links: Links) -> dict:
    cfg = config["probes"]
    reg, dis, failing, stale, budget = (
        cfg["epc_regression"], cfg["disagreement"], cfg["failing"], cfg["stale"], cfg["budget_exhausted"]
    )
    baseline = _epc_baseline(str(reg["baseline_window"]))
    fwin, swin = str(failing["window"]), str(budget["skipped_window"])
    stale_after = str(stale["after"])
    oncall = links.dashboard("oncall")
    rules = [
        # The median is the baseline because a fresh regression barely moves it.
        record(baseline, f"max by ({PBQ}) (quantile_over_time(0.5, qpu_probe_epc_ratio[{reg['baseline_window']}]))"),
        record(
            RATIO_TO_REPORTED,
            f"max by ({PBGQ}) (qpu_probe_gate_error_ratio)\n"
            f"/ on ({PBGQ})\n"
            # Dead couplers (reported error 1) and missing values (0) have nothing to compare against.
            f"(max by ({PBGQ}) (qpu_gate_error_ratio) > 0 < 1)",
        ),
        record(PROBE_AGE, f"time() - max by ({PB}) (qpu_probe_last_success_timestamp_seconds)"),
        alert(
            "QPUProbeEPCRegression",
            f"""
max by ({PBQ}) (qpu_probe_epc_ratio)
  > {number(reg['min_ratio_to_baseline'], 'probes.epc_regression.min_ratio_to_baseline')} * {baseline}
and on ({PBQ})
(max by ({PBQ}) (qpu_probe_epc_ratio) - {baseline})
  > {number(reg['min_stderrs'], 'probes.epc_regression.min_stderrs')} * max by ({PBQ}) (qpu_probe_epc_stderr_ratio)
""",
            for_=for_duration(reg, "probes.epc_regression"),
            severity="ticket",
            concern="probes",
            summary="The RB probe's error per Clifford regressed against its own baseline.",
            description=(
                "EPC on qubits {{ $labels.qubits }} of {{ $labels.provider }}/{{ $labels.backend }} is "
                f"{{{{ $value | humanizePercentage }}}}, more than {reg['min_ratio_to_baseline']}x its "
                f"{reg['baseline_window']} median and {reg['min_stderrs']} standard errors above it."
            ),
            links=links,
            dashboard=links.dashboard("qubit"),
        ),
        alert(
            "QPUProbeDisagreesWithCalibration",
            f"""
(
  {RATIO_TO_REPORTED} > {number(dis['ratio_high'], 'probes.disagreement.ratio_high')}
  or
  {RATIO_TO_REPORTED} < {number(dis['ratio_low'], 'probes.disagreement.ratio_low')}
)
and on ({PBGQ})
abs(max by ({PBGQ}) (qpu_probe_gate_error_ratio) - max by ({PBGQ}) (qpu_gate_error_ratio))
  >= {number(dis['min_abs_difference'], 'probes.disagreement.min_abs_difference')}
and on ({PBGQ})
abs(max by ({PBGQ}) (qpu_probe_gate_error_ratio) - max by ({PBGQ}) (qpu_gate_error_ratio))
  > {number(dis['min_sigma'], 'probes.disagreement.min_sigma')} * max by ({PBGQ}) (qpu_probe_gate_error_stderr_ratio)
""",
            for_=for_duration(dis, "probes.disagreement"),
            severity="ticket",
            concern="probes",
            summary="The probe's measured gate error disagrees with the provider's reported calibration.",
            description=(
                'The probe measures {{ $value | printf "%.2f" }}x the provider-reported {{ $labels.gate }} error '
                "on qubits {{ $labels.qubits }} of {{ $labels.provider }}/{{ $labels.backend }} "
                f"(allowed {dis['ratio_low']}x to {dis['ratio_high']}x), by more than "
                f"{dis['min_sigma']} standard errors of the probe."
            ),
            links=links,
            dashboard=links.dashboard("qubit"),
        ),
        alert(
            "QPUProbeFailing",
            f"""
max by ({PB}) (increase(qpu_probe_failures_total[{fwin}]))
  >= {number(failing['min_failures'], 'probes.failing.min_failures')}
and on ({PB})
max by ({PB}) (increase(qpu_probe_failures_total[{fwin}]))
  / max by ({PB}) (increase(qpu_probe_runs_total[{fwin}]))
  >= {number(failing['min_failure_ratio'], 'probes.failing.min_failure_ratio')}
""",
            for_=for_duration(failing, "probes.failing"),
            severity="ticket",
            concern="probes",
            summary="RB probes keep failing on a QPU backend.",
            description=(
                '{{ $value | printf "%.0f" }} probe runs failed on {{ $labels.provider }}/{{ $labels.backend }} '
                f"in the last {fwin} (at least {failing['min_failure_ratio']} of the runs)."
            ),
            links=links,
            dashboard=oncall,
        ),
        alert(
            "QPUProbeStale",
            f"""
{PROBE_AGE} > {seconds(stale_after, 'probes.stale.after')}
and on ({PB}) max by ({PB}) (qpu_probe_last_success_timestamp_seconds) > 0
unless on ({PB}) max by ({PB}) (increase(qpu_probe_skipped_total{{reason=~"budget|backend_down"}}[{stale_after}])) > 0
unless on ({PB}) {WINDOW_CLOSED}
""",
            for_=for_duration(stale, "probes.stale"),
            severity="ticket",
            concern="probes",
            summary="No RB probe has succeeded on a QPU backend for longer than expected.",
            description=(
                "The last successful probe on {{ $labels.provider }}/{{ $labels.backend }} was "
                f"{{{{ $value | humanizeDuration }}}} ago (expected within {stale_after}); "
                "no budget or backend-down skips explain it."
            ),
            links=links,
            dashboard=oncall,
        ),
        alert(
            "QPUProbeBudgetExhausted",
            f"""
max by ({PB}) (qpu_budget_remaining_ratio)
  <= {number(budget['max_remaining_ratio'], 'probes.budget_exhausted.max_remaining_ratio')}
or on ({PB})
(
  max by ({PB}) (qpu_budget_remaining_ratio)
  and on ({PB})
  max by ({PB}) (increase(qpu_probe_skipped_total{{reason="budget"}}[{swin}])) > 0
)
""",
            for_=for_duration(budget, "probes.budget_exhausted"),
            severity="ticket",
            concern="probes",
            summary="The probe budget of a QPU backend is used up; probes are being skipped.",
            description=(
                "{{ $value | humanizePercentage }} of the probe budget is left for "
                "{{ $labels.provider }}/{{ $labels.backend }}; probes there are skipped until the budget window "
                "rolls over."
            ),
            links=links,
            dashboard=oncall,
        ),
    ]
    return group("qpu-probes", rules)
