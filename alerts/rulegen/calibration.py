"""Calibration freshness and dead-coupler rules (rules/calibration.yml)."""

from __future__ import annotations

from .common import PB, WINDOW_CLOSED, Links, alert, for_duration, group, number, record, seconds

CALIBRATION_AGE = "provider_backend:qpu_calibration_age:seconds"
COUPLERS_DEAD = "provider_backend:qpu_couplers_dead:count"
QUBITS_DEAD = "provider_backend:qpu_qubits_dead:count"


def _stale_expr(stale: dict) -> str:
    """One clause per provider with its own cadence, plus the default for every other provider."""
    by_provider = dict(sorted(stale["after_by_provider"].items()))
    clauses = [
        f'{CALIBRATION_AGE}{{provider="{provider}"}} > {seconds(after, f"calibration.stale.after_by_provider.{provider}")}'
        for provider, after in by_provider.items()
    ]
    default = seconds(stale["default_after"], "calibration.stale.default_after")
    others = "|".join(by_provider)
    clauses.append(f'{CALIBRATION_AGE}{{provider!~"{others}"}} > {default}' if others else f"{CALIBRATION_AGE} > {default}")
    body = "\n  or ".join(clauses)
    return f"(\n  {body}\n)\nunless on ({PB}) {WINDOW_CLOSED}\n"


def build(config: dict, links: Links) -> dict:
    cfg = config["calibration"]
    stale, couplers = cfg["stale"], cfg["dead_couplers"]
    window = str(couplers["window"])
    rules = [
        record(CALIBRATION_AGE, f"time() - max by ({PB}) (qpu_backend_calibration_timestamp_seconds)"),
        # A coupler counts once even when several gates (cz, ecr, ...) act on it; 1q gates are left out.
        record(
            COUPLERS_DEAD,
            f'sum by ({PB}) (max by ({PB}, qubits) (1 - qpu_gate_operational{{qubits=~"[0-9]+_[0-9]+"}}))',
        ),
        record(QUBITS_DEAD, f"sum by ({PB}) (max by ({PB}, qubit) (1 - qpu_qubit_operational))"),
        alert(
            "QPUCalibrationStale",
            _stale_expr(stale),
            for_=for_duration(stale, "calibration.stale"),
            severity="ticket",
            concern="calibration",
            summary="A QPU backend has not been recalibrated within the provider's usual cadence.",
            description=(
                "The last calibration of {{ $labels.provider }}/{{ $labels.backend }} is "
                "{{ $value | humanizeDuration }} old, beyond the provider's cadence "
                f"(default {stale['default_after']})."
            ),
            links=links,
            dashboard=links.dashboard("oncall"),
        ),
        alert(
            "QPUDeadCouplersRising",
            f"{COUPLERS_DEAD} - min_over_time({COUPLERS_DEAD}[{window}]) >= "
            f"{number(couplers['min_rise'], 'calibration.dead_couplers.min_rise')}",
            for_=for_duration(couplers, "calibration.dead_couplers"),
            severity="ticket",
            concern="calibration",
            summary="More couplers of a QPU backend are reported dead (gate error 1) than earlier today.",
            description=(
                '{{ $value | printf "%.0f" }} more couplers of {{ $labels.provider }}/{{ $labels.backend }} '
                f"are reported dead than at the best point of the last {window}."
            ),
            links=links,
            dashboard=links.dashboard("qubit"),
        ),
    ]
    return group("qpu-calibration", rules)
