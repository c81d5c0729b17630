"""Calibration snapshots as plain dicts (the ``latest`` table and probe records store them as JSON)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

from ..model import CalibrationSnapshot, GateCalibration, Measurement, QubitCalibration


def calibration_values(snap: CalibrationSnapshot) -> Iterable[tuple[str, str, Measurement]]:
    """(target, quantity, measurement) of every value in a snapshot: the history rows."""
    for q in snap.qubits:
        for quantity, m in q.values.items():
            yield f"q{q.qubit}", quantity, m
    for g in snap.gates:
        target = f"{g.gate}:{g.qubits_label}"
        if g.error is not None:
            yield target, "gate_error", g.error
        if g.duration is not None:
            yield target, "gate_duration", g.duration


def snapshot_to_dict(snap: CalibrationSnapshot) -> dict:
    return asdict(snap)


def snapshot_from_dict(d: dict) -> CalibrationSnapshot:
    def m(x):
        return None if x is None else Measurement(**x)

    return CalibrationSnapshot(
        provider=d["provider"],
        backend=d["backend"],
        fetched_at=d["fetched_at"],
        calibrated_at=d["calibrated_at"],
        qubits=[
            QubitCalibration(q["qubit"], {k: Measurement(**v) for k, v in q["values"].items()}, q["operational"])
            for q in d["qubits"]
        ],
        gates=[
            GateCalibration(g["gate"], tuple(g["qubits"]), m(g["error"]), m(g["duration"]), g["operational"])
            for g in d["gates"]
        ],
    )
