"""Braket device documents from amazon-braket-schemas' own examples, through the provider:
every spelling the schema allows is read (AQT), measurement times are used where the schema
has them, IQM's one-way edges give probe targets in the published direction, and reported
RB figures are exported as reported EPC, not as gates."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from conftest import parse_samples
from qpu_exporter.config import ProbesConfig
from qpu_exporter.exposition import families
from qpu_exporter.model import REPORTED_EPC, BackendInfo, parse_timestamp
from qpu_exporter.probes.targets import auto_targets, check_target, native_pairs
from qpu_exporter.providers.base import ProviderError
from qpu_exporter.providers.braket.device_document import parse_standardized
from qpu_exporter.quality import validate_snapshot
from qpu_exporter.textformat import render
from qpu_exporter.view import FleetView
from test_braket_provider import calibration_of_document

SCHEMAS = Path(__file__).parent / "fixtures" / "braket" / "schemas"


def doc(name: str) -> dict:
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def test_iqm_edges_published_high_low_are_probed_in_that_direction():
    snap, _ = validate_snapshot(calibration_of_document(doc("iqm_capabilities_v1")))
    cz = {g.qubits for g in snap.gates if g.gate == "cz"}
    assert (10, 5) in cz and (5, 10) not in cz  # as published: "10-5"
    pairs = [pair for _, pair in native_pairs(snap)]
    assert pairs and all(pair in cz for pair in pairs)
    assert any(a > b for a, b in pairs)  # high-low edges are not turned around
    for target in auto_targets(snap, 3, 5):
        assert check_target(target, snap) == "", target


def test_iqm_two_qubit_clifford_is_a_reported_epc_not_a_gate():
    caps = doc("iqm_capabilities_v1")
    snap, _ = validate_snapshot(calibration_of_document(caps))
    assert not any("clifford" in g.gate and g.gate != REPORTED_EPC for g in snap.gates)
    view = FleetView()
    view.set_backend(BackendInfo("braket", "Garnet", 20, "IQM"))
    view.set_calibration(("braket", "Garnet"), snap)
    samples = parse_samples(render(families(view.copy(), {}, version="t", revision="t", daily_budget_usd=1)).decode())
    gates = {lab["gate"] for n, lab, _ in samples if n == "qpu_gate_error_ratio"}
    assert gates == {"cz"}
    reported = {lab["qubits"]: v for n, lab, v in samples if n == "qpu_reported_epc_ratio"}
    edge = caps["standardized"]["twoQubitProperties"]["1-2"]["twoQubitGateFidelity"]
    clifford = next(f for f in edge if f["gateName"] == "Two_Qubit_Clifford")
    assert reported["1_2"] == pytest.approx(1 - clifford["fidelity"])
    one = caps["standardized"]["oneQubitProperties"]["3"]["oneQubitFidelity"]
    srb = next(f for f in one if f["fidelityType"]["name"] == "SIMULTANEOUS_RANDOMIZED_BENCHMARKING")
    assert reported["3"] == pytest.approx(1 - srb["fidelity"])
    # Every qubit's and every Clifford-carrying pair's figure, nothing invented.
    assert len(reported) == 20 + sum(
        any(f["gateName"] == "Two_Qubit_Clifford" for f in e["twoQubitGateFidelity"])
        for e in caps["standardized"]["twoQubitProperties"].values())


def test_aqt_spellings_are_read_and_its_own_measurement_time_is_used():
    caps = doc("aqt_capabilities_v1")
    std = caps["standardized"]
    assert "ReadoutFidelity" in std and "readoutFidelity" not in std  # the spelling under test
    snap = calibration_of_document(caps)
    assert snap.rejected == {}
    assert len(snap.qubits) == caps["paradigm"]["qubitCount"]
    readout = 1 - std["ReadoutFidelity"][0]["fidelity"]
    assert all(q.values["readout_error"].value == pytest.approx(readout) for q in snap.qubits)
    assert all(q.values["readout_duration"].value == pytest.approx(std["ReadoutDuration"]["value"]) for q in snap.qubits)
    two = next(g for g in snap.gates if g.gate == "2q_rb")
    assert two.error.value == pytest.approx(1 - std["TwoQubitGateFidelity"][0]["fidelity"])
    assert two.duration.value == pytest.approx(std["TwoQubitGateDuration"]["value"])
    # No standardized updatedAt: the provider section's own updated_at, not service.updatedAt.
    measured = parse_timestamp(caps["provider"]["properties"]["updated_at"])
    assert snap.calibrated_at == measured != parse_timestamp(caps["service"]["updatedAt"])
    assert all(q.values["t1"].measured_at == measured for q in snap.qubits)


def test_v1_without_measurement_times_falls_back_to_the_service_time_only_for_the_table():
    caps = doc("rigetti_capabilities_v2")
    snap = parse_standardized(caps, provider="braket", backend="r", fetched_at=0.0)
    assert snap.calibrated_at == parse_timestamp(caps["service"]["updatedAt"])
    assert all(m.measured_at is None for q in snap.qubits for m in q.values.values())


def test_unknown_fields_are_counted_and_unknown_versions_rejected():
    caps = doc("iqm_capabilities_v1")
    caps["standardized"]["futureField"] = {"x": 1}
    caps["standardized"]["oneQubitProperties"]["1"]["oneQubitFidelity"].append(
        {"fidelityType": {"name": "GATE_SET_TOMOGRAPHY"}, "fidelity": 0.999})
    _, rejected = validate_snapshot(calibration_of_document(caps))
    assert rejected["unknown_field"] == 2

    for change in ({"version": "99"}, {"name": "braket.device_schema.nothing_like_this"}):
        bad = copy.deepcopy(doc("iqm_capabilities_v1"))
        bad["standardized"]["braketSchemaHeader"].update(change)
        with pytest.raises(ProviderError) as err:
            calibration_of_document(bad)
        assert err.value.kind == "malformed"
    bad = copy.deepcopy(doc("iqm_capabilities_v1"))
    bad["standardized"]["oneQubitProperties"]["1"]["oneQubitFidelity"][0]["fidelity"] = 1.5  # the model's bound
    with pytest.raises(ProviderError):
        calibration_of_document(bad)


def test_default_probe_targets_on_the_iqm_document_are_runnable():
    snap, _ = validate_snapshot(calibration_of_document(doc("iqm_capabilities_v1")))
    from qpu_exporter.probes.targets import targets_for

    targets = targets_for(ProbesConfig(), snap)
    assert any(len(t.qubits) == 2 for t in targets)
    assert all(check_target(t, snap) == "" for t in targets)
