"""Outside check: real payload shapes that no other test reads go through the providers'
real code paths (stubbed only at the network edge), and nothing is lost, misread or rejected.

* Braket: the Rigetti v1, OQC and IonQ (standardized v3) documents of amazon-braket-schemas'
  own unit tests (tests/fixtures/outside/braket), each checked value by value against the
  document read independently here.
* IBM: the fake backends fake_torino (Heron r1), fake_brisbane (Eagle r3) and
  fake_marrakesh (Heron r2) that qiskit-ibm-runtime ships, served over HTTP to the provider,
  checked against the raw properties; and job entries as the SDK's own fake client serves
  them (upper-case states, ``reasonCode``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses

from qpu_exporter.model import REPORTED_EPC, parse_timestamp
from qpu_exporter.providers.fake_snapshots import load_snapshot
from qpu_exporter.quality import validate_snapshot
from test_braket_provider import calibration_of_document
from test_ibm_provider import SDK, make_provider, serve_backends

OUTSIDE = Path(__file__).parent / "fixtures" / "outside"
_UNIT = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _seconds(d: dict) -> float:
    return d["value"] * _UNIT[d["unit"].lower()]


@pytest.mark.parametrize("name", sorted(p.stem for p in (OUTSIDE / "braket").glob("*.json")))
def test_braket_documents_nobody_else_reads(name):
    caps = json.loads((OUTSIDE / "braket" / f"{name}.json").read_text())
    snap = calibration_of_document(caps)
    assert snap.rejected == {}, "the parser dropped something"
    std = caps["standardized"]
    qubits = {q.qubit: q for q in snap.qubits}
    epc = {g.qubits: g for g in snap.gates if g.gate == REPORTED_EPC}
    version = std["braketSchemaHeader"]["version"]
    for key, props in std.get("oneQubitProperties", {}).items():
        q = qubits[int(key)]
        if "T1" in props:
            assert q.values["t1"].value == pytest.approx(_seconds(props["T1"]))
            assert q.values["t2"].value == pytest.approx(_seconds(props["T2"]))
        for f in props["oneQubitFidelity"]:
            kind = f["fidelityType"]["name"]
            if kind == "READOUT":
                assert q.values["readout_error"].value == pytest.approx(1 - f["fidelity"])
            else:
                assert epc[(int(key),)].error.value == pytest.approx(1 - f["fidelity"])
    for edge, props in std.get("twoQubitProperties", {}).items():
        for f in props["twoQubitGateFidelity"]:
            d = f.get("direction")
            pair = (d["control"], d["target"]) if d else tuple(int(x) for x in edge.split("-"))
            gate = next(g for g in snap.gates if g.gate == f["gateName"].lower() and g.qubits == pair)
            assert gate.error.value == pytest.approx(1 - f["fidelity"])
    if version == "3":  # device-level figures on every qubit, measured at updatedAt
        assert len(snap.qubits) == caps["paradigm"]["qubitCount"]
        measured = parse_timestamp(std["updatedAt"])
        assert snap.calibrated_at == measured
        assert all(q.values["t1"].value == pytest.approx(_seconds(std["T1"])) and q.values["t1"].measured_at == measured
                   for q in snap.qubits)
        if std.get("singleQubitFidelity"):
            assert epc[()].error.value == pytest.approx(1 - std["singleQubitFidelity"][0]["fidelity"])
        two = next(g for g in snap.gates if g.gate == "2q_rb")
        assert two.error.value == pytest.approx(1 - std["twoQubitGateFidelity"][0]["fidelity"])
        assert two.duration.value == pytest.approx(_seconds(std["twoQubitGateDuration"]))
    else:
        assert snap.calibrated_at == parse_timestamp(caps["service"]["updatedAt"])
    clean, rejected = validate_snapshot(snap)
    assert clean.qubits and not rejected.get("unknown_field")


@pytest.fixture(scope="module")
def ibm_outside():
    names = {"ibm_torino": "fake_torino", "ibm_brisbane": "fake_brisbane", "ibm_marrakesh": "fake_marrakesh"}
    return {name: load_snapshot(fake) for name, fake in names.items()}


@pytest.fixture
def ibm_stub(ibm_outside):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rs:
        serve_backends(rs, {name: ({**conf, "backend_name": name}, props) for name, (conf, props) in ibm_outside.items()})
        yield rs


def test_ibm_backends_nobody_else_reads(ibm_stub, ibm_outside):
    provider = make_provider(backends=list(ibm_outside))
    infos = {i.backend: i.num_qubits for i in provider.backends()}
    assert infos == {name: conf["n_qubits"] for name, (conf, _) in ibm_outside.items()}
    for name, (conf, props) in ibm_outside.items():
        calibrated = parse_timestamp(props["last_update_date"])
        provider.clock = lambda: calibrated + 3600
        snap = provider.calibration(name)
        assert snap.rejected == {}, name
        assert snap.calibrated_at == calibrated
        assert len(snap.qubits) == len(props["qubits"])
        for q, entries in zip(snap.qubits, props["qubits"]):
            raw = {e["name"]: e for e in entries}
            if "T1" in raw:
                assert q.values["t1"].value == pytest.approx(raw["T1"]["value"] * 1e-6)
                assert q.values["t1"].measured_at == parse_timestamp(raw["T1"]["date"])
            if "readout_error" in raw:
                assert q.values["readout_error"].value == pytest.approx(raw["readout_error"]["value"])
        gates = {(g.gate, g.qubits): g for g in snap.gates}
        for entry in props["gates"]:
            if entry["gate"] in ("rz",):
                continue
            error = next((p["value"] for p in entry["parameters"] if p["name"] == "gate_error"), None)
            g = gates[(entry["gate"], tuple(entry["qubits"]))]
            if error is None:
                assert g.error is None
            elif error >= 1:
                assert not g.operational and g.error is None  # IBM's dead-coupler sentinel
            else:
                assert g.error.value == pytest.approx(error)


def test_ibm_job_entries_as_the_sdk_fake_client_serves_them():
    provider = make_provider()
    now = 1_800_000_000.0
    # BaseFakeRuntimeJob.to_dict for the final states of its job classes: COMPLETED,
    # FAILED, CANCELLED, and CANCELLED with reason "RAN TOO LONG" / reasonCode 1305.
    cases = [("COMPLETED", None, "done", ""), ("FAILED", None, "failed", "unknown"),
             ("CANCELLED", None, "cancelled", ""), ("CANCELLED", 1305, "failed", "timeout")]
    for i, (status, code, ours, error_class) in enumerate(cases):
        entry = json.loads(json.dumps(SDK["job_entry"]))
        entry.update(id=f"job{i}", created="2026-01-15T08:00:00Z")
        entry["state"].update(status=status, reasonCode=code, reason="RAN TOO LONG" if code else None)
        record = provider._record("ibm_sherbrooke", entry, SDK["usage_completed"], now)
        assert (record.status, record.error_class) == (ours, error_class), status
        assert record.usage_seconds == 123 and record.cost_usd == pytest.approx(123 * 1.60)
