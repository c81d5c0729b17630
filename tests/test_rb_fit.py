"""RB fit: recovery, coverage, interleaved bounds, explicit failures, JSON front end."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qpu_exporter.rb import synthetic
from qpu_exporter.rb.cli_fit import fit_json, is_all_zeros_outcome
from qpu_exporter.rb.fit import (
    RBFitError,
    RBInputError,
    fit_interleaved_rb,
    fit_rb,
    magesan_systematic_error,
)

READOUT = 0.015


def _design_lengths(alpha: float, samples: int) -> np.ndarray:
    xs = np.array([0.0, 0.3, 0.7, 1.2, 2.5, 5.0])
    ms = np.unique(np.maximum(1, np.round(xs / (1 - alpha)))).astype(int)
    return np.repeat(ms, samples)


def _binomial_rb(rng, epc, num_qubits, samples, shots, alpha_c=None):
    alpha = synthetic.alpha_from_epc(epc, num_qubits)
    lengths = _design_lengths(alpha, samples)
    p = synthetic.depolarizing_survival(lengths, alpha, num_qubits, alpha_c)
    p = synthetic.apply_readout_error(p, READOUT, num_qubits)
    return lengths, rng.binomial(shots, p) / shots, np.full(lengths.size, shots)


@pytest.mark.parametrize("num_qubits,epc", [(1, 1e-4), (1, 1e-3), (2, 1e-2)])
def test_fit_recovers_known_epc(num_qubits, epc):
    rng = np.random.default_rng(1234)
    lengths, y, n = _binomial_rb(rng, epc, num_qubits, samples=20, shots=500)
    res = fit_rb(lengths, y, n, num_qubits)
    assert res.ok, res.reason
    # Expected rel. sd ~ 5.6/sqrt(60000) ~ 2.3% (1q); allow 4 standard errors and demand the
    # error bar itself is in the right range (not inflated to make the first check pass).
    assert abs(res.epc - epc) < 4 * res.epc_stderr
    assert 0.005 < res.epc_stderr / epc < 0.06
    assert res.alpha == pytest.approx(1 - epc * 2**num_qubits / (2**num_qubits - 1), abs=4 * res.alpha_stderr)


def test_one_sigma_coverage_shot_noise_only():
    rng = np.random.default_rng(2024)
    epc, hits, reps = 2e-3, 0, 200
    for _ in range(reps):
        lengths, y, n = _binomial_rb(rng, epc, 1, samples=8, shots=200)
        res = fit_rb(lengths, y, n, 1)
        assert res.ok, res.reason
        hits += abs(res.epc - epc) < res.epc_stderr
    # Nominal 0.68; the Monte Carlo SE at 200 reps is 0.033.
    assert 0.58 <= hits / reps <= 0.78


def test_one_sigma_coverage_with_coherent_sequence_variance():
    """Coherent errors make sequences differ a lot: the error bar must include that."""
    rng = np.random.default_rng(7)
    epc, reps, k, shots = 5e-3, 80, 20, 100
    sim = synthetic.BlochRB(synthetic.coherent_noise(epc))
    alpha = synthetic.alpha_from_epc(epc, 1)
    ms = np.unique(_design_lengths(alpha, 1))
    table = {m: sim.survival(int(m), reps * k, rng).reshape(reps, k) for m in ms}
    hits = 0
    for i in range(reps):
        lengths = np.repeat(ms, k)
        p = synthetic.apply_readout_error(np.concatenate([table[m][i] for m in ms]), READOUT, 1)
        y = rng.binomial(shots, p) / shots
        res = fit_rb(lengths, y, np.full(lengths.size, shots), 1)
        assert res.ok, res.reason
        hits += abs(res.epc - epc) < res.epc_stderr
    assert 0.55 <= hits / reps <= 0.82
    assert res.sequence_variance_kappa > 0  # the spread between sequences was detected


def test_interleaved_gate_error_and_bounds():
    rng = np.random.default_rng(99)
    epc, gate_err, nq = 1e-3, 5e-4, 1
    alpha_c = synthetic.alpha_from_epc(gate_err, nq)
    ls, ys, ns = _binomial_rb(rng, epc, nq, samples=30, shots=300)
    li, yi, ni = _binomial_rb(rng, epc, nq, samples=30, shots=300, alpha_c=alpha_c)
    res = fit_interleaved_rb(
        np.concatenate([ls, li]), np.concatenate([ys, yi]), np.concatenate([ns, ni]),
        np.r_[np.zeros(ls.size, bool), np.ones(li.size, bool)], nq,
    )
    assert res.ok, res.reason
    assert abs(res.gate_error - gate_err) < 4 * res.gate_error_stderr
    assert res.gate_error_stderr < 0.3 * gate_err
    lo, hi = res.systematic_bounds
    assert lo <= gate_err <= hi
    assert res.systematic_error == pytest.approx(magesan_systematic_error(res.standard.alpha, res.alpha_c, nq))
    assert res.alpha_interleaved == pytest.approx(res.standard.alpha * res.alpha_c)


def test_magesan_bound_matches_worked_examples():
    # Magesan et al., PRL 109, 080505 (2012), Eqs. 4-5: 1Q r=1e-3, r_C=5e-4 -> E=1.5e-3; 2Q r=1.5e-2, r_C=7e-3 -> E=2.3e-2.
    assert magesan_systematic_error(1 - 2e-3, 1 - 1e-3, 1) == pytest.approx(1.5e-3, rel=1e-9)
    e2 = magesan_systematic_error(1 - 1.5e-2 * 4 / 3, 1 - 7e-3 * 4 / 3, 2)
    assert e2 == pytest.approx(0.023, rel=1e-9)


def _lengths_many():
    return np.repeat([1, 50, 100, 200, 400], 5)


def test_no_decay_fails_explicitly():
    rng = np.random.default_rng(3)
    m = _lengths_many()
    y = rng.binomial(400, 0.97, size=m.size) / 400
    res = fit_rb(m, y, np.full(m.size, 400), 1)
    assert not res.ok and "decay" in res.reason
    assert math.isnan(res.epc)
    with pytest.raises(RBFitError, match="decay"):
        res.raise_for_failure()


def test_rising_survival_fails():
    m = _lengths_many()
    y = 0.5 + 0.4 * (1 - 0.99**m)
    res = fit_rb(m, y, np.full(m.size, 1000), 1)
    assert not res.ok and "decay" in res.reason


def test_too_few_lengths_fails():
    m = np.repeat([1, 100], 10)
    res = fit_rb(m, 0.5 + 0.45 * 0.99**m, np.full(m.size, 1000), 1)
    assert not res.ok and "too few distinct lengths" in res.reason


def test_all_zero_fails():
    m = _lengths_many()
    res = fit_rb(m, np.zeros(m.size), np.full(m.size, 100), 1)
    assert not res.ok and "zero" in res.reason


def test_non_finite_fails():
    m = _lengths_many()
    y = 0.5 + 0.45 * 0.99**m
    y[3] = np.nan
    res = fit_rb(m, y, np.full(m.size, 100), 1)
    assert not res.ok and "non-finite" in res.reason


def test_malformed_arrays_raise_input_error():
    with pytest.raises(RBInputError, match="sizes differ"):
        fit_rb([1, 2, 3], [0.9, 0.8], [100, 100, 100], 1)
    with pytest.raises(RBInputError, match="shots"):
        fit_rb([1, 2, 3], [0.9, 0.8, 0.7], [100, 0, 100], 1)


# --------------------------------------------------------------------------------------------
# JSON front end


def _doc(epc=2e-3, nq=1, samples=6, shots=400, seed=5, interleaved_c=None, key_style="bin"):
    rng = np.random.default_rng(seed)
    seqs = []
    for inter, c in ((False, None), (True, interleaved_c)):
        if inter and interleaved_c is None:
            continue
        lengths, y, n = _binomial_rb(rng, epc, nq, samples, shots, alpha_c=c)
        for m, yy in zip(lengths, y):
            zero = int(round(yy * shots))
            zkey = {"bin": "0" * nq, "hex": "0x0"}[key_style]
            okey = {"bin": "1" * nq, "hex": "0x1"}[key_style]
            seqs.append({"length": int(m), "counts": {zkey: zero, okey: shots - zero}, "interleaved": inter})
    return {"num_qubits": nq, "sequences": seqs}


def test_fit_json_output_keys_and_values():
    out = fit_json(_doc())
    for key in ("alpha", "alpha_stderr", "epc", "epc_stderr"):
        assert isinstance(out[key], float) and math.isfinite(out[key])
    assert abs(out["epc"] - 2e-3) < 4 * out["epc_stderr"]
    assert "interleaved" not in out


def test_fit_json_interleaved_block():
    alpha_c = synthetic.alpha_from_epc(1e-3, 1)
    out = fit_json(_doc(samples=15, interleaved_c=alpha_c))
    block = out["interleaved"]
    assert set(block) >= {"alpha_c", "gate_error", "gate_error_stderr", "systematic_bounds"}
    lo, hi = block["systematic_bounds"]
    assert lo <= block["gate_error"] <= hi
    assert abs(block["gate_error"] - 1e-3) < 4 * block["gate_error_stderr"]


def test_fit_json_hex_keys_give_same_result():
    assert fit_json(_doc(key_style="hex"))["epc"] == pytest.approx(fit_json(_doc(key_style="bin"))["epc"])


@pytest.mark.parametrize(
    "key,zero",
    [("0", True), ("00", True), ("0 0", True), ("0x0", True), ("0x00", True), ("01", False), ("10", False), ("0x1", False), ("0x2", False)],
)
def test_all_zeros_outcome_rule(key, zero):
    assert is_all_zeros_outcome(key) is zero


def test_all_zeros_outcome_rejects_garbage():
    with pytest.raises(ValueError):
        is_all_zeros_outcome("2")


def _bad(mutator):
    doc = _doc()
    mutator(doc)
    return doc


@pytest.mark.parametrize(
    "doc,message",
    [
        ([1, 2], "input: must be a JSON object"),
        ({"sequences": []}, "num_qubits: missing"),
        ({"num_qubits": 3, "sequences": []}, "num_qubits: must be 1 or 2"),
        ({"num_qubits": True, "sequences": []}, "num_qubits: must be 1 or 2"),
        ({"num_qubits": 1}, "sequences: missing"),
        ({"num_qubits": 1, "sequences": []}, "sequences: must be a non-empty array"),
        (_bad(lambda d: d["sequences"].__setitem__(3, {**d["sequences"][3], "counts": [1, 2]})),
         "sequences[3].counts: must be an object of outcome -> count"),
        (_bad(lambda d: d["sequences"][2].pop("length")), "sequences[2].length: missing"),
        (_bad(lambda d: d["sequences"][2].__setitem__("length", 0)), "sequences[2].length: must be a positive integer"),
        (_bad(lambda d: d["sequences"][2].__setitem__("length", "5")), "sequences[2].length: must be a positive integer"),
        (_bad(lambda d: d["sequences"][1].__setitem__("counts", {"0": -1, "1": 5})), "sequences[1].counts['0']: count must be a non-negative integer"),
        (_bad(lambda d: d["sequences"][1].__setitem__("counts", {"0": 1.5})), "sequences[1].counts['0']: count must be a non-negative integer"),
        (_bad(lambda d: d["sequences"][1].__setitem__("counts", {"zz": 3})), "sequences[1].counts['zz']: outcome must be a bitstring"),
        (_bad(lambda d: d["sequences"][1].__setitem__("counts", {"0": 0, "1": 0})), "sequences[1].counts: total count is zero"),
        (_bad(lambda d: d["sequences"][0].__setitem__("interleaved", "no")), "sequences[0].interleaved: must be true or false"),
        (_bad(lambda d: d["sequences"].__setitem__(0, "x")), "sequences[0]: must be an object"),
        (_bad(lambda d: [s.__setitem__("interleaved", True) for s in d["sequences"]]), "interleaved sequences need standard"),
    ],
)
def test_fit_json_malformed_input_messages(doc, message):
    with pytest.raises(RBInputError) as info:
        fit_json(doc)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_fit_json_no_decay_is_fit_error():
    doc = {"num_qubits": 1, "sequences": [{"length": m, "counts": {"0": 970, "1": 30}} for m in (1, 10, 100, 1000) for _ in range(3)]}
    with pytest.raises(RBFitError) as info:
        fit_json(doc)
    assert "decay" in str(info.value) and "\n" not in str(info.value)
