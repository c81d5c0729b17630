"""Property-based fuzzing of every parser of outside data (hypothesis).

Each parser either returns a valid result or raises its documented, handled error class;
bad values (NaN, negative T1, error > 1, unknown units) are rejected and counted by the
data-quality checks and never reach exposition. The example counts below add up to more
than 10,000 generated cases per run.
"""

from __future__ import annotations

import json
import math
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qpu_exporter.config import ConfigError, load_config
from qpu_exporter.drift import DriftInputError, parse_csv, run_backtest
from qpu_exporter.model import QUBIT_QUANTITIES
from qpu_exporter.providers.base import ProviderError
from qpu_exporter.providers.braket.device_document import parse_standardized
from qpu_exporter.providers.braket.provider import parse_queue_size
from qpu_exporter.providers.ibm.properties import parse_properties
from qpu_exporter.quality import _QUBIT_RANGES, validate_snapshot
from qpu_exporter.rb.cli_fit import RBFitError, RBInputError, fit_json

FAST = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = 1_800_000_000.0

weird_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-10**12, max_value=10**12),
    st.sampled_from([0, 1, -1, 1e-300, 1e300, 0.5, 2.0]),
)
weird_values = st.one_of(weird_numbers, st.text(max_size=8), st.none(), st.booleans(), st.lists(st.integers(), max_size=2))
units = st.sampled_from(["us", "ns", "ms", "s", "", "GHz", "MHz", "Hz", "parsecs", "µs", None, 5])
dates = st.one_of(st.sampled_from(["2026-11-20T10:00:00Z", "2026-11-21T00:00:00+02:00", "2020-01-01T00:00:00Z",
                                   "not a date", "", None]), st.text(max_size=12))


def nduv(name):
    return st.fixed_dictionaries({"name": st.just(name), "value": weird_values, "unit": units, "date": dates})


ibm_qubit = st.lists(st.one_of(*[nduv(n) for n in ("T1", "T2", "frequency", "readout_error", "prob_meas0_prep1",
                                                   "readout_length", "operational", "anharmonicity")]), max_size=8)
ibm_gate = st.fixed_dictionaries({
    "gate": st.sampled_from(["sx", "x", "cz", "ecr", "rz", "measure_2"]),
    "qubits": st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=2),
    "parameters": st.lists(st.one_of(nduv("gate_error"), nduv("gate_length")), max_size=3),
})
ibm_payload = st.fixed_dictionaries(
    {"backend_name": st.just("ibm_fuzz"), "last_update_date": dates,
     "qubits": st.lists(ibm_qubit, max_size=5), "gates": st.lists(ibm_gate, max_size=6)},
)


def _assert_exportable(snap):
    """What passes validation is finite and physically plausible."""
    for q in snap.qubits:
        for name, m in q.values.items():
            assert name in QUBIT_QUANTITIES
            lo, hi = _QUBIT_RANGES[name]
            assert math.isfinite(m.value) and lo <= m.value <= hi, (name, m.value)
            if name in ("t1", "t2"):
                assert m.value > 0
        if "t1" in q.values and "t2" in q.values:
            assert q.values["t2"].value <= 2 * q.values["t1"].value
    for g in snap.gates:
        if g.error is not None:
            assert 0 < g.error.value < 1 and math.isfinite(g.error.value)
            assert g.operational


@FAST
@given(ibm_payload)
def test_ibm_properties_parse_or_reject(payload):
    try:
        snap, unknown_units = parse_properties(payload, provider="ibm", backend="ibm_fuzz", fetched_at=NOW)
    except ProviderError as exc:
        assert exc.kind == "malformed"
        return
    assert unknown_units >= 0
    clean, rejected = validate_snapshot(snap)
    _assert_exportable(clean)
    raw = sum(len(q.values) for q in snap.qubits) + sum(g.error is not None for g in snap.gates)
    kept = sum(len(q.values) for q in clean.qubits) + sum(g.error is not None for g in clean.gates)
    assert kept + sum(rejected.values()) >= raw - sum(1 for g in snap.gates if g.duration is not None and g.error is None)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from([math.nan, -1e-4, 0.0, 2e-4, 1.5, math.inf, 5e-5]), min_size=1, max_size=6))
def test_bad_values_are_counted_never_exported(values):
    payload = {"last_update_date": "2026-11-21T00:00:00Z", "gates": [], "qubits": [
        [{"name": "T1", "value": v, "unit": "s", "date": "2026-11-21T00:00:00Z"},
         {"name": "readout_error", "value": v, "unit": "", "date": "2026-11-21T00:00:00Z"}] for v in values]}
    snap, _ = parse_properties(payload, provider="ibm", backend="b", fetched_at=NOW)
    clean, rejected = validate_snapshot(snap)
    _assert_exportable(clean)
    bad_t1 = sum(1 for v in values if not (math.isfinite(v) and 0 < v <= 86400))
    bad_ro = sum(1 for v in values if not (math.isfinite(v) and 0 <= v <= 1))
    assert rejected["out_of_range"] == bad_t1 + bad_ro


braket_fid = st.fixed_dictionaries({"fidelityType": st.one_of(st.fixed_dictionaries({"name": st.sampled_from(
    ["RANDOMIZED_BENCHMARKING", "READOUT", "SIMULTANEOUS_RANDOMIZED_BENCHMARKING", "weird"])}), weird_values),
    "fidelity": weird_values})
braket_time = st.one_of(st.fixed_dictionaries({"value": weird_values, "unit": units}), weird_values)
SERVICE_HEADER = {"name": "braket.device_schema.device_service_properties", "version": "1"}
STANDARDIZED = "braket.device_schema.standardized_gate_model_qpu_device_properties"
braket_caps = st.fixed_dictionaries({
    "service": st.fixed_dictionaries({"braketSchemaHeader": st.just(SERVICE_HEADER), "updatedAt": dates,
                                      "executionWindows": st.just([]), "shotsRange": st.just([1, 10])}),
    "paradigm": st.fixed_dictionaries({"qubitCount": st.one_of(st.integers(min_value=0, max_value=4), weird_values)}),
    "standardized": st.one_of(st.none(), st.fixed_dictionaries({
        "braketSchemaHeader": st.fixed_dictionaries({"name": st.just(STANDARDIZED),
                                                     "version": st.sampled_from(["1", "3", "2", "", "9"])}),
        "oneQubitProperties": st.dictionaries(st.sampled_from(["0", "1", "2", "x"]), st.one_of(
            st.fixed_dictionaries({"T1": braket_time, "T2": braket_time, "oneQubitFidelity": st.lists(braket_fid, max_size=3)}),
            weird_values), max_size=3),
        "twoQubitProperties": st.dictionaries(st.sampled_from(["0-1", "1-2", "bad"]), st.fixed_dictionaries({
            "twoQubitGateFidelity": st.lists(st.fixed_dictionaries({"gateName": st.sampled_from(["CZ", "iSWAP", ""]),
                                                                   "fidelity": weird_values}), max_size=2)}), max_size=2),
        "T1": braket_time, "T2": braket_time, "readoutFidelity": st.lists(braket_fid, max_size=2),
    })),
})
# parse_standardized's callers turn exactly these into ProviderError("malformed").
BRAKET_MALFORMED = (KeyError, TypeError, ValueError, AttributeError)


@FAST
@given(braket_caps)
def test_braket_device_document_parse_or_reject(caps):
    try:
        snap = parse_standardized(caps, provider="braket", backend="dev", fetched_at=NOW)
    except BRAKET_MALFORMED:
        return
    clean, _ = validate_snapshot(snap)
    _assert_exportable(clean)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.text(max_size=8), st.integers(), st.none(), st.floats()))
def test_braket_queue_size_strings(value):
    try:
        size, exact = parse_queue_size(value)
    except ValueError:
        return
    assert size >= 0 and isinstance(exact, bool)


def _ibm_provider():
    from qpu_exporter.providers.ibm.config import IbmProviderConfig
    from qpu_exporter.providers.ibm.provider import IbmProvider

    return IbmProvider(IbmProviderConfig(kind="ibm", billing={"plan": "pay_as_you_go"}), clock=lambda: NOW, environ={})


ibm_job = st.fixed_dictionaries({
    "id": st.one_of(st.text(min_size=1, max_size=6), st.integers()),
    "created": dates, "ended": dates,
    "state": st.one_of(st.fixed_dictionaries({"status": st.sampled_from(["Completed", "Failed", "Cancelled", "Running", "x"]),
                                              "reason_code": st.one_of(st.none(), st.integers(0, 9999), st.text(max_size=3))}),
                       weird_values),
    "usage": st.one_of(st.fixed_dictionaries({"quantum_seconds": weird_values}), weird_values),
})
ibm_metrics = st.one_of(st.none(), st.fixed_dictionaries({
    "timestamps": st.fixed_dictionaries({"created": dates, "running": dates, "finished": dates}),
    "usage": st.fixed_dictionaries({"qpu_charge_time_seconds": weird_values, "status": st.sampled_from(["completed", "pending"])}),
}))


@FAST
@given(ibm_job, ibm_metrics)
def test_ibm_job_records_parse_or_reject(entry, metrics):
    provider = _ibm_provider()
    try:
        record = provider._record("ibm_fuzz", entry, metrics, NOW)
    except ProviderError as exc:
        assert exc.kind == "malformed"
        return
    if record is not None:
        assert record.status in ("done", "failed", "cancelled")
        # Unknown is None (never a made-up 0); known values are finite and non-negative.
        assert record.usage_seconds is None or (math.isfinite(record.usage_seconds) and record.usage_seconds >= 0)
        assert record.cost_usd is None or (math.isfinite(record.cost_usd) and record.cost_usd >= 0)
        assert record.cost_usd is None or record.usage_seconds is not None
        assert record.error_class == "" or record.error_class.replace("_", "").isalnum()


yaml_scalars = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(alphabet=string.ascii_letters + "0123456789 :-", max_size=10),
                         st.booleans(), st.none())
config_docs = st.recursive(
    st.fixed_dictionaries({}, optional={
        "providers": st.lists(st.fixed_dictionaries({"kind": st.sampled_from(["simulated", "ibm", "braket", "nope"])}, optional={
            "backends": st.lists(st.sampled_from(["fake_fez", "fake_nowhere", 3]), max_size=2),
            "speedup": yaml_scalars, "seed": yaml_scalars,
            "incidents": st.lists(st.dictionaries(st.sampled_from(["backend", "kind", "at", "duration", "qubit", "x"]), yaml_scalars), max_size=2),
        }), max_size=2),
        "schedule": st.dictionaries(st.sampled_from(["calibration_interval", "jobs_interval", "bogus"]), yaml_scalars, max_size=2),
        "state_path": yaml_scalars,
    }),
    lambda children: st.dictionaries(st.text(max_size=5), children, max_size=2),
    max_leaves=6,
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.one_of(config_docs.map(json.dumps), st.text(max_size=60)))
def test_config_yaml_loads_or_fails_with_one_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_text(text)
    try:
        load_config(path)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message.strip() and message.startswith(str(path))


rb_docs = st.fixed_dictionaries({}, optional={
    "num_qubits": st.one_of(st.sampled_from([1, 2]), weird_values),
    "sequences": st.one_of(st.lists(st.fixed_dictionaries({}, optional={
        "length": st.one_of(st.integers(0, 500), weird_values),
        "counts": st.one_of(st.dictionaries(st.sampled_from(["0", "1", "00", "11", "0x0", "zz"]),
                                            st.one_of(st.integers(0, 1000), weird_values), max_size=3), weird_values),
        "interleaved": st.one_of(st.booleans(), weird_values),
    }), max_size=12), weird_values),
})


@FAST
@given(rb_docs)
def test_rb_fit_json_fits_or_fails_clearly(doc):
    try:
        out = fit_json(doc)
    except (RBInputError, RBFitError) as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert 0 <= out["alpha"] <= 1.0 + 1e-9 and math.isfinite(out["epc"])


csv_rows = st.lists(st.tuples(
    st.one_of(st.integers(0, 2**31).map(str), st.sampled_from(["2026-11-21T00:00:00Z", "x", "", "1e9"])),
    st.sampled_from(["t1:q0", "readout_error:q1", "gate_error:cz:0_1", "", "a,b"]),
    st.one_of(st.floats(allow_nan=True).map(repr), st.sampled_from(["abc", "", "1e-4", "-1"])),
), max_size=30)


@FAST
@given(st.sampled_from(["timestamp,series,value", "time,series,value", ""]), csv_rows)
def test_backtest_csv_parses_or_names_the_line(header, rows):
    text = "\n".join([header] + [",".join(r) for r in rows]) + "\n"
    try:
        parsed = parse_csv(text)
    except DriftInputError as exc:
        assert str(exc).startswith("line ")
        return
    result = run_backtest(parsed, warmup=10)
    assert isinstance(result["alarms"], list)
