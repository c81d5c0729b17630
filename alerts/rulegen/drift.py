"""Drift-detector alarm rules (rules/drift.yml).

The exporter runs EWMA and CUSUM detectors per calibration series and exports both the current
alarm state (qpu_drift_alarm) and a counter of alarms (qpu_drift_alarms_total). A detector restarts
after it signals, so the gauge can drop back between two scrapes; the counter read over a lookback
window keeps every alarm visible for that long.
"""

from __future__ import annotations

from .common import PB, Links, alert, for_duration, group, record

SERIES_LABELS = f"{PB}, series, detector"
QUBIT_FROM_SERIES = '"qubit", "$1", "series", "[a-z0-9_]+:q([0-9]+)"'


def _alarm_expr(series_regex: str, lookback: str) -> str:
    selector = f'{{series=~"{series_regex}"}}'
    return (
        f"max by ({SERIES_LABELS}) (qpu_drift_alarm{selector}) == 1\n"
        f"or on ({SERIES_LABELS})\n"
        f"max by ({SERIES_LABELS}) (increase(qpu_drift_alarms_total{selector}[{lookback}])) > 0"
    )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def build(config: dict, links: Links) -> dict:
    cfg = config["drift"]
    lookback = str(cfg["lookback"])
    qubit_board = links.dashboard("qubit", ("provider", "backend", "qubit"))
    per_qubit = (
        "Detector {{ $labels.detector }} signalled a drift of {{ $labels.series }} (qubit {{ $labels.qubit }}) "
        "on {{ $labels.provider }}/{{ $labels.backend }} within the last " + lookback + "."
    )
    rules = [
        record(
            "provider_backend:qpu_drift_alarms:increase1d",
            f"sum by ({PB}) (max by ({SERIES_LABELS}) (increase(qpu_drift_alarms_total[1d])))",
        ),
        record(
            "provider_backend:qpu_drift_alarms_active:count",
            f"sum by ({PB}) (max by ({SERIES_LABELS}) (qpu_drift_alarm))",
        ),
        alert(
            "QPUQubitCoherenceDrift",
            f"label_replace(\n{_indent(_alarm_expr('(t1|t2):.*', lookback))},\n  {QUBIT_FROM_SERIES}\n)",
            for_=for_duration(cfg["coherence"], "drift.coherence"),
            severity="ticket",
            concern="drift",
            summary="A qubit's T1 or T2 has drifted away from its usual level.",
            description=per_qubit,
            links=links,
            dashboard=qubit_board,
        ),
        alert(
            "QPUReadoutErrorDrift",
            f"label_replace(\n{_indent(_alarm_expr('readout_error:.*', lookback))},\n  {QUBIT_FROM_SERIES}\n)",
            for_=for_duration(cfg["readout_error"], "drift.readout_error"),
            severity="ticket",
            concern="drift",
            summary="A qubit's readout error has drifted away from its usual level.",
            description=per_qubit,
            links=links,
            dashboard=qubit_board,
        ),
        alert(
            "QPUGateErrorDrift",
            "label_replace(\n  label_replace(\n"
            + _indent(_indent(_alarm_expr("gate_error:.*", lookback)))
            + ',\n    "gate", "$1", "series", "gate_error:([^:]+):.*"\n  ),\n'
            + '  "qubits", "$1", "series", "gate_error:[^:]+:(.+)"\n)',
            for_=for_duration(cfg["gate_error"], "drift.gate_error"),
            severity="ticket",
            concern="drift",
            summary="A gate's error rate has drifted away from its usual level.",
            description=(
                "Detector {{ $labels.detector }} signalled a drift of the {{ $labels.gate }} error on qubits "
                "{{ $labels.qubits }} of {{ $labels.provider }}/{{ $labels.backend }} within the last "
                + lookback
                + "."
            ),
            links=links,
            dashboard=links.dashboard("qubit"),
        ),
    ]
    return group("qpu-drift", rules)
