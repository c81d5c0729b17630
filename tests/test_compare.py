"""`qpu-exporter compare`: the CLI contract, and the test's size and power checked by simulation.

Size: on identical distributions the rejection rate must not be significantly above alpha
(one-sided, 3 sigma), at small and at large shot counts; the same harness flags the asymptotic
chi-square on a small 2 x 2 table, whose exact size there is 6.5 %, so the check has teeth.
Power: on a known difference, paired with scipy's chi2_contingency on the very same tables, our
test must not reject significantly less often. The larger simulation is benchmarks/compare_power.py.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from conftest import run_cli
from qpu_exporter.homogeneity import compare_counts, hellinger_interval, homogeneity_test, parse_counts

ALPHA = 0.05
KEYS = ("00", "01", "10", "11")


def _sample(rng, n, p) -> dict[str, int]:
    return {k: int(v) for k, v in zip(KEYS, rng.multinomial(n, p)) if v}


def _rejections(p, q, n, trials, seed, resamples=99, with_scipy=False, **kw) -> tuple[int, int, int, int]:
    """Rejections at ALPHA over the same simulated table pairs: (ours, scipy's chi2_contingency,
    tables only ours rejected, tables only scipy rejected). Any number of resamples gives a valid
    Monte Carlo p-value, so few suffice for a size check."""
    rng = np.random.default_rng(seed)
    ours = scipy = ours_only = scipy_only = 0
    for _ in range(trials):
        a, b = _sample(rng, n, p), _sample(rng, n, q)
        r_ours = homogeneity_test(a, b, alpha=ALPHA, rng=rng, resamples=resamples, **kw).p_value <= ALPHA
        r_scipy = False
        if with_scipy:
            keys = sorted(a.keys() | b.keys())
            table = np.array([[a.get(k, 0) for k in keys], [b.get(k, 0) for k in keys]])
            r_scipy = len(keys) > 1 and chi2_contingency(table).pvalue <= ALPHA
        ours += r_ours
        scipy += r_scipy
        ours_only += r_ours and not r_scipy
        scipy_only += r_scipy and not r_ours
    return ours, scipy, ours_only, scipy_only


def _size_bound(trials: int) -> float:
    return ALPHA * trials + 3 * math.sqrt(trials * ALPHA * (1 - ALPHA))


NOISY_BELL = (0.45, 0.05, 0.05, 0.45)


@pytest.mark.parametrize("p,n,trials", [
    (NOISY_BELL, 20, 3000),            # most expected counts below 5
    ((0.5, 0.5, 0, 0), 25, 3000),      # a 2 x 2 table where the asymptotic test is too liberal
    (NOISY_BELL, 2000, 1500),          # large counts
], ids=["small-counts", "small-2x2", "large-counts"])
def test_false_positive_rate_is_at_most_alpha(p, n, trials):
    ours, *_ = _rejections(p, p, n, trials, seed=11)
    assert ours <= _size_bound(trials), f"{ours}/{trials} rejections of identical distributions"
    assert ours > 0  # the harness does reject sometimes: it is not vacuous


def test_the_size_check_catches_the_asymptotic_test_on_a_small_table():
    # budget=0 forces the chi-square approximation wherever Cochran's rule allows it.
    trials = 8000
    ours, *_ = _rejections((0.5, 0.5, 0, 0), (0.5, 0.5, 0, 0), 25, trials, seed=11, budget=0)
    assert ours > _size_bound(trials)


@pytest.mark.parametrize("p,q,n,trials", [
    ((0.5, 0, 0, 0.5), (0.4, 0.1, 0.1, 0.4), 20, 600),          # leakage into 01/10, few shots
    (NOISY_BELL, (0.40, 0.07, 0.07, 0.46), 500, 400),             # a small shift, many shots
], ids=["small-counts", "large-counts"])
def test_power_is_at_least_scipys_chi2_contingency(p, q, n, trials):
    ours, scipy, ours_only, scipy_only = _rejections(p, q, n, trials, seed=5, resamples=199, with_scipy=True)
    assert ours > 0.1 * trials  # a real difference is found
    # Paired on the same tables (McNemar): ours may not lose significantly.
    assert ours_only - scipy_only >= -3 * math.sqrt(ours_only + scipy_only + 1), (ours, scipy)


def test_permutation_and_asymptotic_agree_on_a_large_table():
    rng = np.random.default_rng(3)
    a, b = _sample(rng, 3000, NOISY_BELL), _sample(rng, 3000, (0.43, 0.06, 0.05, 0.46))
    exact = homogeneity_test(a, b, rng=rng)
    asymptotic = homogeneity_test(a, b, budget=0)
    assert (exact.test, asymptotic.test) == ("pearson_chi2_permutation", "pearson_chi2")
    keys = sorted(a)
    stat, p_value, *_ = chi2_contingency(np.array([[a[k] for k in keys], [b[k] for k in keys]]), correction=False)
    assert asymptotic.statistic == pytest.approx(stat) == exact.statistic
    assert asymptotic.p_value == pytest.approx(p_value)
    assert exact.p_value == pytest.approx(p_value, abs=4 * math.sqrt(p_value * (1 - p_value) / 9999) + 2e-4)


def test_sparse_tables_never_use_the_approximation():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(256))
    a = {format(i, "08b"): int(v) for i, v in enumerate(rng.multinomial(300, p)) if v}
    b = {format(i, "08b"): int(v) for i, v in enumerate(rng.multinomial(300, p)) if v}
    assert homogeneity_test(a, b, budget=0, resamples=99).test == "pearson_chi2_permutation"


def test_hellinger_fidelity_is_qiskits_and_its_interval_covers_the_truth():
    from qiskit.quantum_info import hellinger_fidelity

    a, b = {"00": 480, "11": 470, "01": 50}, {"00": 430, "11": 500, "10": 70}
    out = compare_counts(a, b)
    assert out["hellinger_fidelity"] == pytest.approx(hellinger_fidelity(a, b))
    # Coverage of the 95 % interval, many shots per outcome (its documented domain).
    rng = np.random.default_rng(8)
    q = (0.40, 0.07, 0.07, 0.46)
    truth = sum(math.sqrt(x * y) for x, y in zip(NOISY_BELL, q)) ** 2
    covered = 0
    for _ in range(100):
        lo, hi = hellinger_interval(_sample(rng, 1000, NOISY_BELL), _sample(rng, 1000, q), rng=rng, resamples=400)
        covered += lo <= truth <= hi
    assert covered >= 85


def test_identical_single_outcome_is_not_different():
    out = compare_counts({"0": 10}, {"0": 3})
    assert out["p_value"] == 1.0 and out["different"] is False and out["hellinger_fidelity"] == 1.0


# --- the command line -----------------------------------------------------------------------

def _write(tmp_path, name, doc) -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def _main(capsys, *args: str) -> tuple[int, str, str]:
    """The command line in-process (the same parser and handler as the installed script)."""
    from qpu_exporter.cli import main

    try:
        code = main(["compare", *args])
    except SystemExit as exc:  # argparse errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_contract_keys_and_exit_codes(tmp_path, capsys):
    a = _write(tmp_path, "a.json", {"counts": {"00": 512, "11": 488}, "backend": "ignored"})
    b = _write(tmp_path, "b.json", {"counts": {"00": 440, "11": 500, "01": 60}})
    same = _write(tmp_path, "same.json", {"counts": {"0 0": 500, "11": 500}})  # register spaces are removed
    r = run_cli("compare", a, b)  # once through the installed entry point
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert list(out) == ["test", "statistic", "p_value", "hellinger_fidelity", "hellinger_fidelity_ci", "different"]
    assert out["different"] is True and out["p_value"] <= 0.05
    lo, hi = out["hellinger_fidelity_ci"]
    assert 0 <= lo <= out["hellinger_fidelity"] <= hi <= 1
    code, stdout, _ = _main(capsys, a, b)
    assert code == 1 and json.loads(stdout) == out  # deterministic
    code, stdout, stderr = _main(capsys, a, same, "--alpha", "0.01")
    assert code == 0, stderr
    assert json.loads(stdout)["different"] is False


@pytest.mark.parametrize("doc, problem", [
    ("{", "invalid JSON"),
    ({"count": {"0": 1}}, 'no "counts" object'),
    ([1, 2], "JSON object"),
    ({"counts": {"0x": 1}}, "not a bitstring"),
    ({"counts": {"00": 1, "1": 2}}, "different lengths"),
    ({"counts": {"00": -1}}, "non-negative integer"),
    ({"counts": {"00": 0.5}}, "non-negative integer"),
    ({"counts": {"00": True}}, "non-negative integer"),
    ({"counts": {}}, "no shots"),
    ({"counts": {"000": 5}}, "3 bits"),
])
def test_cli_bad_input_names_the_file_and_the_problem(tmp_path, capsys, doc, problem):
    good = _write(tmp_path, "good.json", {"counts": {"00": 5, "11": 5}})
    bad = _write(tmp_path, "bad.json", doc)
    code, stdout, stderr = _main(capsys, good, bad)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.json" in lines[0] and problem in lines[0], stderr
    assert stdout == ""


def test_cli_missing_file_and_bad_alpha(tmp_path, capsys):
    good = _write(tmp_path, "good.json", {"counts": {"0": 5, "1": 5}})
    code, _, stderr = _main(capsys, good, str(tmp_path / "missing.json"))
    assert code == 2 and "missing.json: cannot read" in stderr
    for alpha in ("1.5", "0", "nan"):
        code, _, stderr = _main(capsys, good, good, "--alpha", alpha)
        assert code == 2 and "--alpha" in stderr and len(stderr.strip().splitlines()) == 1


def test_parse_counts_sums_keys_that_differ_only_by_register_spaces():
    assert parse_counts({"counts": {"0 1": 2, "01": 3}}) == {"01": 5}
