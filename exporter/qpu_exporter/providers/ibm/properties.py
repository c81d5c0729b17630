"""Parse IBM's ``/backends/{name}/properties`` payload into a CalibrationSnapshot.

Shared by the IBM provider and the simulated fleet (whose baselines are IBM snapshots).
Units are normalised to SI; per-metric dates are kept (they differ from
``last_update_date`` by hours to weeks). A dead coupler (gate_error == 1, IBM's faulty
sentinel) is marked ``operational=False`` rather than reported as an error rate.
"""

from __future__ import annotations


from ...model import CalibrationSnapshot, GateCalibration, Measurement, QubitCalibration, parse_timestamp
from ..base import ProviderError

_UNIT_SCALE = {
    "": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9,
    "hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9,
}
# IBM property name -> our quantity name (model.QUBIT_QUANTITIES)
_QUBIT_NAMES = {
    "T1": "t1", "T2": "t2", "frequency": "frequency", "readout_error": "readout_error",
    "prob_meas0_prep1": "prob_meas0_prep1", "prob_meas1_prep0": "prob_meas1_prep0",
    "readout_length": "readout_duration",
}
# Virtual gates: zero error and zero length by construction, nothing to monitor.
_VIRTUAL_GATES = {"rz"}


def _measurement(entry: dict, unknown_units: list[str]) -> Measurement | None:
    unit = str(entry.get("unit") or "").strip().lower()
    scale = _UNIT_SCALE.get(unit)
    if scale is None:
        unknown_units.append(unit)
        return None
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"value of {entry.get('name')!r} is not a number")
    return Measurement(float(value) * scale, parse_timestamp(entry.get("date")))


def parse_properties(
    payload: dict, *, provider: str, backend: str, fetched_at: float
) -> tuple[CalibrationSnapshot, int]:
    """Returns the snapshot and the number of values dropped for an unknown unit.
    Raises ProviderError('malformed') when the payload's structure is wrong."""
    unknown: list[str] = []
    try:
        snap = CalibrationSnapshot(
            provider=provider,
            backend=backend,
            fetched_at=fetched_at,
            calibrated_at=parse_timestamp(payload.get("last_update_date")),
        )
        for index, entries in enumerate(payload.get("qubits") or []):
            q = QubitCalibration(qubit=index)
            for entry in entries:
                name = _QUBIT_NAMES.get(entry.get("name"))
                if name is None:
                    if entry.get("name") == "operational" and entry.get("value") in (0, False):
                        q.operational = False
                    continue
                m = _measurement(entry, unknown)
                if m is not None:
                    q.values[name] = m
            snap.qubits.append(q)
        for entry in payload.get("gates") or []:
            gate = str(entry["gate"])
            if gate in _VIRTUAL_GATES:
                continue
            g = GateCalibration(gate=gate, qubits=tuple(int(x) for x in entry["qubits"]))
            for param in entry.get("parameters") or []:
                if param.get("name") == "gate_error":
                    g.error = _measurement(param, unknown)
                elif param.get("name") == "gate_length":
                    g.duration = _measurement(param, unknown)
            if g.error is not None and g.error.value >= 1.0:
                g.operational = False
                g.error = None
            snap.gates.append(g)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ProviderError("malformed", f"malformed properties payload for {backend}: {exc}") from None
    return snap, len(unknown)
