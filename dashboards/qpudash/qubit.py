"""Qubit detail dashboard (uid qpu-qubit): one backend at a time; per-qubit T1, T2 and readout
error over time as heatmaps, gate error per coupler, drift statistics and the latest probe results.
Alerts link here with var-provider, var-backend and var-qubit."""

from __future__ import annotations

from .layout import Board, datasource_variable, job_instance_variables
from .panels import (
    GREEN,
    ORANGE,
    RED,
    YELLOW,
    Query,
    heatmap_panel,
    stat_panel,
    table_panel,
    thresholds,
    timeseries_panel,
    unit_override,
)
from .selectors import EDGE, fleet_variables, qubit_variable, raw
from .settings import Settings

QUBIT = 'qubit=~"$qubit"'
SX = 'gate="sx"'
SINGLE_QUBIT = 'qubits=~"$qubit"'
# Couplers touching one of the selected qubits ("3_4" or "4_3" for qubit 3).
EDGE_OF_QUBIT = 'qubits=~"($qubit)_[0-9]+|[0-9]+_($qubit)"'
# Probe qubit sets that include a selected qubit ("3", "3_4", "4_3").
PROBE_QUBITS = 'qubits=~"($qubit)|($qubit)_[0-9]+|[0-9]+_($qubit)"'
# Drift series about the selected qubits: "t1:q3", "readout_error:q3", "gate_error:cz:3_4".
DRIFT_SERIES = 'series=~"[a-z0-9_]+:q($qubit)|gate_error:[^:]+:(($qubit)_[0-9]+|[0-9]+_($qubit))"'


def _per_qubit(metric: str) -> str:
    return f"max by (qubit) ({metric}{raw(QUBIT)})"


def build(s: Settings):
    board = Board(
        title="QPU fleet / Qubit detail",
        uid=s.uids["qubit"],
        description="One backend in depth: per-qubit T1, T2 and readout error over time, gate error per coupler, drift detector statistics and the latest benchmark probe results.",
        time_from="now-7d",
        refresh="5m",
        variables=[datasource_variable(), *job_instance_variables(), *fleet_variables(multi=False), qubit_variable()],
    )

    board.row("Backend")
    board.add(stat_panel(
        "Operational qubits", "Qubits the provider reports operational (qpu_backend_operational_qubits).", "none",
        [Query(f"max(qpu_backend_operational_qubits{raw()})", instant=True)], steps=thresholds(GREEN), decimals=0), 4, 4)
    board.add(stat_panel(
        "Dead couplers", "Two-qubit gates the provider reports faulty (qpu_backend_dead_couplers).", "none",
        [Query(f"max(qpu_backend_dead_couplers{raw()})", instant=True)],
        steps=thresholds(GREEN, (1, YELLOW), (5, ORANGE)), decimals=0), 4, 4)
    board.add(stat_panel(
        "Calibration age", "Time since the provider last calibrated this backend.", "s",
        [Query(f"time() - max(qpu_backend_calibration_timestamp_seconds{raw()})", instant=True)],
        steps=thresholds(GREEN, (s.calibration_stale_after, ORANGE))), 4, 4)
    board.add(stat_panel(
        "Median T1 (selected qubits)", "Median energy-relaxation time T1 over the selected qubits.", "s",
        [Query(f"quantile(0.5, {_per_qubit('qpu_qubit_t1_seconds')})", instant=True)],
        steps=thresholds(GREEN), graph=True), 4, 4)
    board.add(stat_panel(
        "Median T2 (selected qubits)", "Median dephasing time T2 (Hahn echo) over the selected qubits.", "s",
        [Query(f"quantile(0.5, {_per_qubit('qpu_qubit_t2_seconds')})", instant=True)],
        steps=thresholds(GREEN), graph=True), 4, 4)
    board.add(stat_panel(
        "Median readout error (selected qubits)", "Median readout assignment error over the selected qubits.", "percentunit",
        [Query(f"quantile(0.5, {_per_qubit('qpu_qubit_readout_error_ratio')})", instant=True)],
        steps=thresholds(GREEN, (0.05, ORANGE)), graph=True, decimals=2), 4, 4)

    board.row("Qubits over time")
    board.add(heatmap_panel(
        "T1 per qubit", "T1 of every selected qubit over time: one row per qubit, colour = T1 (dark = short). Dips show TLS defects and drops.",
        "s", [Query(_per_qubit("qpu_qubit_t1_seconds"), "{{qubit}}")], scheme="Spectral"), 24, 10)
    board.add(heatmap_panel(
        "T2 per qubit", "T2 of every selected qubit over time: one row per qubit, colour = T2 (dark = short).",
        "s", [Query(_per_qubit("qpu_qubit_t2_seconds"), "{{qubit}}")], scheme="Spectral"), 24, 10)
    board.add(heatmap_panel(
        "Readout error per qubit", "Readout assignment error of every selected qubit over time: one row per qubit, colour = error (dark = high).",
        "percentunit", [Query(_per_qubit("qpu_qubit_readout_error_ratio"), "{{qubit}}")], scheme="Spectral", reverse=True), 24, 10)
    board.add(table_panel(
        "Selected qubits now",
        "Latest calibration of each selected qubit: T1, T2, readout error, frequency and whether the provider marks it operational.",
        "none",
        [Query(_per_qubit(m), instant=True, table=True) for m in (
            "qpu_qubit_t1_seconds", "qpu_qubit_t2_seconds", "qpu_qubit_readout_error_ratio",
            "qpu_qubit_frequency_hertz", "qpu_qubit_operational")],
        merge=True, hide_columns=("Time",),
        overrides=[unit_override("Value #A", "s", "T1"), unit_override("Value #B", "s", "T2"),
                   unit_override("Value #C", "percentunit", "readout error"),
                   unit_override("Value #D", "hertz", "frequency"), unit_override("Value #E", "bool_yes_no", "operational")]), 24, 8)

    board.row("Gates")
    board.add(heatmap_panel(
        "Two-qubit gate error per coupler",
        "Provider-reported two-qubit gate error of every coupler touching a selected qubit: one row per gate and qubit pair, colour = error (dark = high). Dead couplers are absent.",
        "percentunit", [Query(f"max by (gate, qubits) (qpu_gate_error_ratio{raw(EDGE, EDGE_OF_QUBIT)})", "{{gate}} {{qubits}}")],
        scheme="Spectral", reverse=True), 24, 10)
    board.add(table_panel(
        "Worst couplers now", "The 15 couplers (touching a selected qubit) with the highest two-qubit gate error now.",
        "percentunit", [Query(f"topk(15, max by (gate, qubits) (qpu_gate_error_ratio{raw(EDGE, EDGE_OF_QUBIT)}))", instant=True, table=True)],
        hide_columns=("Time",), sort_by="Value", overrides=[unit_override("Value", "percentunit", "gate error")]), 12, 8)
    board.add(timeseries_panel(
        "Single-qubit gate error", "Provider-reported error of the sx gate on each selected qubit.", "percentunit",
        [Query(f"max by (qubits) (qpu_gate_error_ratio{raw(SX, SINGLE_QUBIT)})", "q{{qubits}}")],
        min_value=0), 12, 8)

    board.row("Drift")
    board.add(timeseries_panel(
        "Drift statistics (largest 10)",
        "EWMA and CUSUM statistics in sigma units for the selected qubits' series (qpu_drift_statistic); the ten largest in absolute value at each step.",
        "none", [Query(f"topk(10, max by (series, detector) (abs(qpu_drift_statistic{raw(DRIFT_SERIES)})))", "{{series}} {{detector}}")]),
        12, 8)
    board.add(table_panel(
        "Drift alarms in range",
        "Alarms per series and detector over the selected range for the selected qubits (qpu_drift_alarms_total), most first.",
        "none", [Query(f"topk(20, max by (series, detector) (increase(qpu_drift_alarms_total{raw(DRIFT_SERIES)}[$__range])))", instant=True, table=True)],
        hide_columns=("Time",), sort_by="Value", overrides=[unit_override("Value", "none", "alarms")]), 12, 8)

    board.row("Probes")
    board.add(table_panel(
        "Latest probe EPC",
        "Latest randomized-benchmarking error per Clifford and its standard error per probed qubit set (qpu_probe_epc_ratio, qpu_probe_epc_stderr_ratio).",
        "percentunit",
        [Query(f"max by (qubits) (qpu_probe_epc_ratio{raw(PROBE_QUBITS)})", instant=True, table=True),
         Query(f"max by (qubits) (qpu_probe_epc_stderr_ratio{raw(PROBE_QUBITS)})", instant=True, table=True)],
        merge=True, hide_columns=("Time",),
        overrides=[unit_override("Value #A", "percentunit", "EPC"), unit_override("Value #B", "percentunit", "stderr")]), 8, 8)
    board.add(table_panel(
        "Latest probe gate error",
        "Latest interleaved-RB gate error per gate and qubit set (qpu_probe_gate_error_ratio) next to the provider-reported error.",
        "percentunit",
        [Query(f"max by (gate, qubits) (qpu_probe_gate_error_ratio{raw(PROBE_QUBITS)})", instant=True, table=True),
         Query(f"max by (gate, qubits) (qpu_gate_error_ratio{raw(PROBE_QUBITS)}) and on (gate, qubits) max by (gate, qubits) (qpu_probe_gate_error_ratio{raw(PROBE_QUBITS)})",
               instant=True, table=True)],
        merge=True, hide_columns=("Time",),
        overrides=[unit_override("Value #A", "percentunit", "probe"), unit_override("Value #B", "percentunit", "provider")]), 8, 8)
    board.add(timeseries_panel(
        "Probe EPC over time", "Error per Clifford of each probed qubit set over time (qpu_probe_epc_ratio).", "percentunit",
        [Query(f"max by (qubits) (qpu_probe_epc_ratio{raw(PROBE_QUBITS)})", "{{qubits}}")], min_value=0), 8, 8)
    board.add(stat_panel(
        "Probe age", f"Time since the last successful probe of this backend; red past {s.probe_stale_after / 3600:g} h (QPUProbeStale).",
        "s", [Query(f"time() - max(qpu_probe_last_success_timestamp_seconds{raw()} > 0)", instant=True)],
        steps=thresholds(GREEN, (s.probe_stale_after, RED))), 8, 4)
    board.add(stat_panel(
        "Probe budget left", "Share of this backend's probe budget left in the current window (qpu_budget_remaining_ratio).",
        "percentunit", [Query(f"max(qpu_budget_remaining_ratio{raw()})", instant=True)],
        steps=thresholds(RED, (0.02, ORANGE), (0.2, GREEN)), decimals=0), 8, 4)
    board.add(stat_panel(
        "Probe shots today", "Shots spent on probes of this backend since midnight UTC (qpu_probe_shots_total).",
        "none", [Query(f"max(increase(qpu_probe_shots_total{raw()}[$__range]))", instant=True)],
        steps=thresholds(GREEN), decimals=0, time_from="now/d"), 8, 4)
    return board.build()
