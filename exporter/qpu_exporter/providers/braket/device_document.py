"""Braket device documents (GetDevice ``deviceCapabilities``) -> calibration, through the
official ``amazon-braket-schemas`` models (``braket.device_schema``).

Each section is parsed by the model its ``braketSchemaHeader`` names, so every published
version (standardized v1, v2, v3; the service properties) is read the way Braket defines it,
and a document the models reject is rejected here too (the caller turns that into a
``malformed`` poll). The models ignore keys they do not know; a top-level key of the
standardized section that differs from a field only in case (AQT's documents spell
``ReadoutFidelity``, ``TwoQubitGateFidelity``, ...) is read as that field, any other unknown
key is counted as rejected (``unknown_field``), never dropped silently.

What becomes what (SI units; error = 1 - fidelity; a fidelity of 0 is a dead element):

* v1/v2 (Rigetti, IQM, OQC), per qubit: T1, T2; READOUT -> ``readout_error``;
  RANDOMIZED_BENCHMARKING or SIMULTANEOUS_RANDOMIZED_BENCHMARKING -> a reported error per
  Clifford (``model.REPORTED_EPC`` on that qubit, RB preferred). Per edge: each two-qubit gate
  by lower-cased name on (control, target) when directed, else on the edge as published (IQM
  keys edges high-low, e.g. ``10-5``: that is the direction the gate is offered in), the most
  gate-specific method kept (interleaved RB first); IQM's ``Two_Qubit_Clifford`` is a
  two-qubit Clifford RB figure, so a reported EPC on the pair, not a gate.
* v3 (IonQ, AQT), device level: T1, T2, readout error and readout duration on every qubit
  0..n-1; the single-qubit RB fidelity -> a device-level reported EPC (qubits ``()``); the
  two-qubit gate fidelity -> gate ``2q_rb`` on ``()`` with its duration; per-qubit
  one-qubit fidelities -> reported EPC per qubit.
* Times: a value's measurement time where the schema has one (v3 ``updatedAt``; AQT's
  provider ``updated_at``), the table's ``calibrated_at`` = that or, only where none exists,
  the service's ``updatedAt``.
"""

from __future__ import annotations

from typing import Any

from ...model import REPORTED_EPC, CalibrationSnapshot, GateCalibration, Measurement, QubitCalibration

_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
# One-qubit RB methods whose fidelity is a reported EPC, most specific first.
_ONE_QUBIT_RB = ("RANDOMIZED_BENCHMARKING", "SIMULTANEOUS_RANDOMIZED_BENCHMARKING")
# When an edge lists one gate under several methods, keep the most gate-specific.
_TWO_QUBIT_PRIORITY = {
    "INTERLEAVED_RANDOMIZED_BENCHMARKING": 0,
    "SIMULTANEOUS_INTERLEAVED_RANDOMIZED_BENCHMARKING": 1,
    "RANDOMIZED_BENCHMARKING": 2,
    "SIMULTANEOUS_RANDOMIZED_BENCHMARKING": 3,
}
_CLIFFORD_GATE_NAMES = ("two_qubit_clifford",)  # a 2q Clifford RB figure published as a "gate"
# Far above any device announced; a document claiming more is malformed, not a reason to
# allocate a record per claimed qubit (fuzzing found a 10^12 qubitCount eating all memory).
MAX_QUBITS = 100_000


def qubit_count(value: Any) -> int:
    count = int(value or 0)
    if not 0 <= count <= MAX_QUBITS:
        raise ValueError(f"qubitCount {count} out of range")
    return count


def _unit(unit: Any) -> str:
    return str(getattr(unit, "value", unit) or "s").strip().lower().replace("μ", "µ")


def seconds(duration: Any) -> float | None:
    """A schema duration (value + unit) in seconds; None when absent or in an unknown unit."""
    if duration is None:
        return None
    scale = _TIME_UNITS.get(_unit(duration.unit))
    return None if scale is None else float(duration.value) * scale


def _method(fidelity: Any) -> str:
    ftype = getattr(fidelity, "fidelityType", None)
    name = getattr(ftype, "name", None) if ftype is not None else None
    return str(getattr(name, "value", name) or "").strip().upper()


def _timestamp(value: Any) -> float | None:
    from ...model import parse_timestamp

    return parse_timestamp(value)


def parse_section(section: dict, rejected: dict[str, int] | None = None) -> Any:
    """A document section through the model its braketSchemaHeader names. Top-level keys
    the model lacks are matched to its fields case-insensitively; the rest are counted in
    ``rejected['unknown_field']``. Raises ValueError for anything the models reject."""
    from braket.schema_common import BraketSchemaBase

    if not isinstance(section, dict):
        raise ValueError("section is not an object")
    try:
        header = BraketSchemaBase.parse_obj(section).braketSchemaHeader
        model = BraketSchemaBase.get_schema_class(header.import_schema_module(), header.name)
    except ImportError:  # a version this amazon-braket-schemas does not have
        raise ValueError("unsupported schema name or version") from None
    if model is None or not hasattr(model, "__fields__"):
        raise ValueError("unsupported schema name")
    fields = {f.lower(): f for f in model.__fields__}
    normalized: dict[str, Any] = {}
    for key, value in section.items():
        name = key if key in model.__fields__ else fields.get(str(key).lower())
        if name is None:
            if rejected is not None:
                rejected["unknown_field"] = rejected.get("unknown_field", 0) + 1
            continue
        if name in normalized and name != key:
            continue  # the exact spelling wins over a case variant
        normalized[name] = value
    return model.parse_obj(normalized)


class _Builder:
    def __init__(self, measured_at: float | None):
        self.measured_at = measured_at
        self.qubits: dict[int, QubitCalibration] = {}
        self.gates: dict[tuple, tuple[int, GateCalibration]] = {}

    def qubit(self, index: int) -> QubitCalibration:
        return self.qubits.setdefault(index, QubitCalibration(qubit=index))

    def value(self, q: QubitCalibration, name: str, value: float | None) -> None:
        if value is not None:
            q.values[name] = Measurement(value, self.measured_at)

    def gate(self, name: str, qubits: tuple, fidelity: float, rank: int = 0, duration: float | None = None) -> None:
        key = (name, qubits)
        if key in self.gates and self.gates[key][0] <= rank:
            return
        if fidelity <= 0.0:
            g = GateCalibration(name, qubits, error=None, operational=False)
        else:
            g = GateCalibration(name, qubits, error=Measurement(1.0 - fidelity, self.measured_at))
        if duration is not None:
            g.duration = Measurement(duration, self.measured_at)
        self.gates[key] = (rank, g)

    def one_qubit_fidelities(self, q: QubitCalibration, fidelities: list, rejected: dict[str, int]) -> None:
        for f in fidelities or []:
            method = _method(f)
            if method == "READOUT":
                if f.fidelity <= 0.0:
                    q.operational = False
                else:
                    self.value(q, "readout_error", 1.0 - f.fidelity)
            elif method in _ONE_QUBIT_RB:
                if f.fidelity <= 0.0:
                    q.operational = False
                self.gate(REPORTED_EPC, (q.qubit,), f.fidelity, _ONE_QUBIT_RB.index(method))
            else:
                rejected["unknown_field"] = rejected.get("unknown_field", 0) + 1


def _version(std: Any) -> str:
    return str(std.braketSchemaHeader.version)


def _provider_time(provider_section: Any) -> float | None:
    """A provider section's own measurement time (AQT: properties.updated_at), if any."""
    if not isinstance(provider_section, dict) or "braketSchemaHeader" not in provider_section:
        return None
    try:
        parsed = parse_section(provider_section)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None  # provider sections are vendor-specific extras; the calibration does not need them
    return _timestamp(getattr(getattr(parsed, "properties", None), "updated_at", None))


def parse_standardized(caps: dict, *, provider: str, backend: str, fetched_at: float) -> CalibrationSnapshot:
    """Device capabilities (the parsed ``deviceCapabilities`` JSON) -> CalibrationSnapshot.
    Raises ValueError/TypeError/KeyError/AttributeError for a document the models reject."""
    rejected: dict[str, int] = {}
    service_raw = caps.get("service")
    service = parse_section(service_raw) if service_raw is not None else None
    service_updated = _timestamp(service.updatedAt) if service is not None else None
    std_raw = caps.get("standardized")
    if not std_raw:  # e.g. QuEra (analog): no standardized gate-model properties
        return CalibrationSnapshot(provider, backend, fetched_at, service_updated)
    std = parse_section(std_raw, rejected)
    if _version(std) == "3":
        measured = _timestamp(std.updatedAt) or _provider_time(caps.get("provider"))
    else:
        measured = None  # v1/v2 publish no measurement times
    snap = CalibrationSnapshot(provider, backend, fetched_at, measured or service_updated, rejected=rejected)
    b = _Builder(measured)
    if _version(std) == "3":
        paradigm = caps.get("paradigm") or {}
        count = qubit_count(paradigm.get("qubitCount") if isinstance(paradigm, dict) else None)
        t1, t2 = seconds(std.T1), seconds(std.T2)
        readout = [f.fidelity for f in std.readoutFidelity or []]
        readout_duration = seconds(std.readoutDuration)
        for i in range(count):
            q = b.qubit(i)
            b.value(q, "t1", t1)
            b.value(q, "t2", t2)
            if readout:
                b.value(q, "readout_error", 1.0 - readout[0])
            b.value(q, "readout_duration", readout_duration)
        one = [f.fidelity for f in std.singleQubitFidelity or []]
        if one:
            b.gate(REPORTED_EPC, (), one[0], duration=seconds(std.singleQubitGateDuration))
        two = [f.fidelity for f in std.twoQubitGateFidelity or []]
        if two:
            b.gate("2q_rb", (), two[0], duration=seconds(std.twoQubitGateDuration))
    for key, props in (std.oneQubitProperties or {}).items():
        q = b.qubit(int(key))
        if hasattr(props, "T1"):  # v1/v2: per-qubit coherence
            b.value(q, "t1", seconds(props.T1))
            b.value(q, "t2", seconds(props.T2))
        b.one_qubit_fidelities(q, props.oneQubitFidelity, rejected)
    for edge, props in (getattr(std, "twoQubitProperties", None) or {}).items():
        a, c = (int(x) for x in str(edge).split("-"))
        for f in props.twoQubitGateFidelity:
            name = f.gateName.strip().lower()
            if not name:
                continue
            if name in _CLIFFORD_GATE_NAMES:
                b.gate(REPORTED_EPC, (a, c), f.fidelity)
                continue
            direction = f.direction or None
            if direction:
                values = {str(getattr(k, "value", k)): int(v) for k, v in direction.items()}
                pair = (values["control"], values["target"])
            else:
                pair = (a, c)
            b.gate(name, pair, f.fidelity, _TWO_QUBIT_PRIORITY.get(_method(f), 9))
    snap.qubits = [b.qubits[i] for i in sorted(b.qubits)]
    snap.gates = [g for _, g in b.gates.values()]
    return snap


def published_price(caps: dict) -> tuple[float, str] | None:
    """The service's own price (``service.deviceCost``: price and unit, e.g. per shot), or
    None when the document publishes none."""
    service_raw = caps.get("service")
    if service_raw is None:
        return None
    cost = parse_section(service_raw).deviceCost
    if cost is None:
        return None
    return float(cost.price), str(cost.unit).strip().lower()
