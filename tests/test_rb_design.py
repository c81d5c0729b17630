"""RB design: budget, scaling of lengths with 1/(1-p), serialisable record, predicted precision."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qpu_exporter.rb import synthetic
from qpu_exporter.rb.design import design_rb
from qpu_exporter.rb.fit import fit_rb


@pytest.mark.parametrize("nq,epc", [(1, 1e-4), (1, 1e-3), (1, 2e-2), (2, 1e-2), (2, 5e-2)])
@pytest.mark.parametrize("budget", [2_000, 10_000, 50_000, 1_000_000])
@pytest.mark.parametrize("interleaved", [None, "gate"])
def test_design_respects_budget(nq, epc, budget, interleaved):
    d = design_rb(nq, epc, shot_budget=budget, target_rel_precision=0.02, seed=1, interleaved_gate=interleaved)
    assert d.total_shots <= budget
    assert d.total_shots == sum(d.samples_per_length) * d.shots * (2 if interleaved else 1)
    assert len(d.lengths) >= 3 and min(d.samples_per_length) >= 2 and d.shots >= 1


def test_lengths_scale_with_inverse_decay():
    a = design_rb(1, 1e-3, seed=1)
    b = design_rb(1, 1e-2, seed=1)
    # 1/(1-p) is 10x larger for the 10x smaller error; compare the longer lengths (m=1 is fixed).
    ratio = np.array(a.lengths[1:]) / np.array(b.lengths[1:])
    assert np.allclose(ratio, 10, rtol=0.05)
    c = design_rb(2, 1e-2, seed=1)
    alpha = 1 - 1e-2 * 4 / 3
    assert c.lengths[-1] == pytest.approx(5 / (1 - alpha), rel=0.01)


def test_more_sequences_before_more_shots():
    small = design_rb(1, 1e-3, target_rel_precision=0.05, shot_budget=10**6, min_shots=100, max_circuits=300, seed=1)
    assert small.shots == 100 and small.num_circuits < 300
    big = design_rb(1, 1e-3, target_rel_precision=0.01, shot_budget=10**6, min_shots=100, max_circuits=300, seed=1)
    assert big.num_circuits >= 290 and big.shots > 100


def test_target_met_when_budget_allows_and_flagged_when_not():
    ok = design_rb(1, 1e-3, target_rel_precision=0.04, shot_budget=10**6, seed=1)
    assert ok.limited_by == "target" and ok.expected_rel_precision <= 0.04 * 1.05
    tight = design_rb(1, 1e-3, target_rel_precision=0.01, shot_budget=5_000, seed=1)
    assert tight.limited_by in ("budget", "minimum_design") and tight.expected_rel_precision > 0.01


def test_record_is_json_serialisable_and_seeded():
    d = design_rb(2, 1e-2, seed=42, interleaved_gate="cz", expected_gate_error=5e-3)
    rec = json.loads(json.dumps(d.to_dict()))
    assert rec["seed"] == 42 and rec["lengths"] == list(d.lengths)
    assert rec["num_circuits"] == 2 * sum(d.samples_per_length)
    assert rec["expected_gate_error_rel_precision"] > 0
    assert design_rb(1, 1e-3).seed != design_rb(1, 1e-3).seed  # fresh seeds are recorded


def test_invalid_arguments():
    with pytest.raises(ValueError, match="num_qubits"):
        design_rb(3, 1e-3)
    with pytest.raises(ValueError, match="expected_epc"):
        design_rb(1, 0.0)


def test_predicted_precision_matches_monte_carlo():
    """The design's expected precision is what the fit achieves on depolarizing data."""
    d = design_rb(1, 1e-3, target_rel_precision=0.05, shot_budget=10**6, readout_error=0.015, seed=3)
    rng = np.random.default_rng(8)
    alpha = synthetic.alpha_from_epc(1e-3, 1)
    lengths = np.repeat(d.lengths, d.samples_per_length)
    p = synthetic.apply_readout_error(synthetic.depolarizing_survival(lengths, alpha, 1), 0.015, 1)
    est = []
    for _ in range(150):
        res = fit_rb(lengths, rng.binomial(d.shots, p) / d.shots, np.full(lengths.size, d.shots), 1)
        assert res.ok
        est.append(res.epc)
    rel_rmse = np.sqrt(np.mean((np.array(est) - 1e-3) ** 2)) / 1e-3
    # MC SE of an RMSE from 150 reps is ~6%; allow 25%.
    assert rel_rmse == pytest.approx(d.expected_rel_precision, rel=0.25)
