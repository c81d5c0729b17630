"""Noise model from the current calibration; Aer execution."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")

from qiskit.quantum_info import average_gate_fidelity  # noqa: E402

from qpu_exporter.model import CalibrationSnapshot, GateCalibration, Measurement, QubitCalibration  # noqa: E402
from qpu_exporter.rb import circuits as rbc  # noqa: E402
from qpu_exporter.rb.execute_aer import run_counts  # noqa: E402
from qpu_exporter.rb.fit import fit_rb  # noqa: E402
from qpu_exporter.rb.noise import build_noise_model  # noqa: E402

BASIS = ["rz", "sx", "x", "cz"]


def snapshot(t1=300e-6, t2=200e-6, sx_error=3e-4, cz_error=5e-3, readout=0.02, qubits=(3, 4)):
    qs = [
        QubitCalibration(
            q,
            {"t1": Measurement(t1), "t2": Measurement(t2), "readout_error": Measurement(readout)},
        )
        for q in qubits
    ]
    gates = [GateCalibration(g, (q,), Measurement(sx_error), Measurement(36e-9)) for q in qubits for g in ("sx", "x")]
    gates.append(GateCalibration("cz", (qubits[1], qubits[0]), Measurement(cz_error), Measurement(68e-9)))
    return CalibrationSnapshot("simulated", "fake", 0.0, None, qs, gates)


def _error_of(noise, gate, qubits):
    return noise._local_quantum_errors[gate][tuple(qubits)]


def test_gate_errors_match_reported_values():
    nm = build_noise_model(snapshot(), (3, 4), BASIS)
    sx = _error_of(nm, "sx", [0])
    assert 1 - average_gate_fidelity(sx.to_quantumchannel()) == pytest.approx(3e-4, rel=1e-6)
    cz = _error_of(nm, "cz", [0, 1])  # calibration given as (4, 3): either direction is used
    assert 1 - average_gate_fidelity(cz.to_quantumchannel()) == pytest.approx(5e-3, rel=1e-6)


def test_relaxation_alone_when_it_exceeds_the_reported_error():
    nm = build_noise_model(snapshot(t1=1e-6, t2=1e-6, sx_error=1e-5), (3,), BASIS)
    err = 1 - average_gate_fidelity(_error_of(nm, "sx", [0]).to_quantumchannel())
    assert err > 1e-5  # relaxation over 36 ns with T1 = 1 us is already ~1.2e-2: no negative depolarizing


def _survival(snap, seed):
    circs = rbc.rb_circuits((3,), [1, 400, 1500], 5, BASIS, seed=seed)
    counts = run_counts([c.circuit for c in circs], build_noise_model(snap, (3,), BASIS), shots=200, seed=seed)
    return circs, counts


def test_lower_t1_gives_lower_survival_at_long_lengths():
    circs, good = _survival(snapshot(t1=300e-6, t2=200e-6, sx_error=1e-4), seed=4)
    _, bad = _survival(snapshot(t1=5e-6, t2=5e-6, sx_error=1e-4), seed=4)
    long_idx = [i for i, c in enumerate(circs) if c.length == 1500]
    p_good = np.mean([good[i].get("0", 0) / 200 for i in long_idx])
    p_bad = np.mean([bad[i].get("0", 0) / 200 for i in long_idx])
    # T1 = 5 us over ~0.8 sx of 36 ns per Clifford: EPC ~ 2e-3 -> survival near 0.5 at m=1500,
    # versus ~0.9 with T1 = 300 us; shot noise of a 5x200-shot mean is ~0.015.
    assert p_good - p_bad > 0.2


def test_two_qubit_probe_runs_and_fits_near_expectation():
    snap = snapshot()
    circs = rbc.rb_circuits((3, 4), [1, 20, 50, 100, 200], 4, BASIS, seed=3)
    t0 = time.perf_counter()
    counts = run_counts([c.circuit for c in circs], build_noise_model(snap, (3, 4), BASIS), shots=200, seed=1)
    elapsed = time.perf_counter() - t0
    res = fit_rb([c.length for c in circs], [ct.get("00", 0) / 200 for ct in counts], [200] * len(circs), 2)
    assert res.ok, res.reason
    # Expected EPC ~ 1.5 cz x 5e-3 + ~5.8 1q gates x 3e-4 x 1.2 ~ 9.6e-3 (a prior, not exact).
    assert 0.005 < res.epc < 0.02
    assert elapsed < 20


def test_counts_are_reproducible_with_seed():
    snap = snapshot()
    circs = [c.circuit for c in rbc.rb_circuits((3,), [10, 100], 2, BASIS, seed=1)]
    nm = build_noise_model(snap, (3,), BASIS)
    assert run_counts(circs, nm, 100, seed=5) == run_counts(circs, nm, 100, seed=5)
