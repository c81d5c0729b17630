"""RB estimation benchmark (protocol in docs/rb.md): accuracy, error bars, design efficiency, Aer cost.

Prints tables; targets vs measured with PASS/FAIL. Runs in ~3-4 minutes on 2 cores, ~45 s of
which is the default 1q Aer probe (--no-aer skips it).

Data: depolarizing cases are sampled exactly (binomial counts from P(m) = (1+(d-1)p^(m+1))/d
through a 1.5% readout error); robustness cases use the 1q Bloch simulator in
qpu_exporter.rb.synthetic (coherent over-rotation / amplitude damping of equal EPC after every
Clifford: exact per-sequence survival, real sequence-to-sequence variance). The same counts are
fed to qiskit-experiments' RBAnalysis / InterleavedRBAnalysis (ExperimentData with external
counts) and its figures are printed beside ours.

Usage: .venv/bin/python benchmarks/rb_accuracy.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings

import numpy as np

from qpu_exporter.rb import synthetic
from qpu_exporter.rb.design import _fisher_cov, design_rb
from qpu_exporter.rb.fit import fit_interleaved_rb, fit_rb

READOUT = 0.015
SEED = 20240601
STATS10 = (0.02, 0.05, 0.1, 0.2, 0.4, 0.7, 1, 1.5, 2.5)


def protocol_lengths(alpha: float) -> np.ndarray:
    return np.unique(np.maximum(1, np.r_[1, np.round(np.array(STATS10) / (1 - alpha))])).astype(int)


def rel_crb(nq, alpha, lengths, k, shots, alpha_c=None):
    cov = _fisher_cov(nq, alpha, np.asarray(lengths), np.full(len(lengths), float(k)) if np.isscalar(k) else np.asarray(k, float), shots, READOUT, alpha_c)
    if alpha_c is None:
        return math.sqrt(cov[2, 2]) / (1 - alpha)
    return math.sqrt(cov[3, 3]) / (1 - alpha_c)


# --------------------------------------------------------------------------------------------
# qiskit-experiments on external counts


class QiskitAnalysis:
    def __init__(self):
        warnings.filterwarnings("ignore")
        from qiskit.circuit.library import CZGate, SXGate
        from qiskit_experiments.framework import ExperimentData
        from qiskit_experiments.library import InterleavedRB, StandardRB

        self.ExperimentData = ExperimentData
        self.StandardRB, self.InterleavedRB = StandardRB, InterleavedRB
        self.gates = {1: SXGate(), 2: CZGate()}

    def _experiment(self, nq, lengths, k, interleaved):
        qubits = list(range(nq))
        if interleaved:
            exp = self.InterleavedRB(self.gates[nq], qubits, list(lengths), num_samples=k, seed=1)
        else:
            exp = self.StandardRB(qubits, list(lengths), num_samples=k, seed=1)
            exp.analysis.set_options(gate_error_ratio=None)
        exp.analysis.set_options(plot=False)
        return exp

    def fit(self, nq, lengths, zeros, shots, flags=None):
        """Returns (value, stderr) of EPC (standard) or of the interleaved gate error, or None."""
        uniq = sorted(set(int(m) for m in lengths))
        k = int(np.sum(np.asarray(lengths) == uniq[0]) // (2 if flags is not None else 1))
        exp = self._experiment(nq, uniq, k, flags is not None)
        ed = self.ExperimentData(experiment=exp)
        data = []
        for i, (m, z) in enumerate(zip(lengths, zeros)):
            md = {"xval": int(m), "group": "Clifford"}
            if flags is not None:
                md["interleaved"] = bool(flags[i])
            data.append({"counts": {"0" * nq: int(z), "1" * nq: int(shots - z)}, "metadata": md, "shots": int(shots)})
        ed.add_data(data)
        try:
            exp.analysis.run(ed, replace_results=True).block_for_results()
            df = ed.analysis_results(dataframe=True)
            val = df.loc[df.name == "EPC", "value"].iloc[0]
            v, s = float(val.nominal_value), float(val.std_dev)
        except Exception:  # noqa: BLE001 - any analysis failure counts as a failed fit
            return None
        if not (math.isfinite(v) and math.isfinite(s)):
            return None
        return v, s


# --------------------------------------------------------------------------------------------
# Statistics of a set of estimates


def summarise(truth, results):
    """results: list of (value, stderr) or None. Returns dict of bias, rmse, coverage, failures."""
    ok = [r for r in results if r is not None]
    fails = len(results) - len(ok)
    if not ok:
        return {"n": 0, "fail": fails, "bias": math.nan, "rmse": math.nan, "cov": math.nan, "sd": math.nan}
    v = np.array([r[0] for r in ok])
    s = np.array([r[1] for r in ok])
    return {
        "n": len(ok),
        "fail": fails,
        "bias": v.mean() / truth - 1,
        "rmse": math.sqrt(np.mean((v - truth) ** 2)) / truth,
        "cov": float(np.mean(np.abs(v - truth) < s)),
        "sd": float(np.mean(s)) / truth,
    }


def ours_std(lengths, zeros, shots, nq):
    res = fit_rb(lengths, zeros / shots, np.full(lengths.size, shots), nq)
    if not res.ok:
        return None, res.reason
    return (res.epc, res.epc_stderr), ""


def ours_irb(lengths, zeros, shots, flags, nq):
    res = fit_interleaved_rb(lengths, zeros / shots, np.full(lengths.size, shots), flags, nq)
    if not res.ok:
        return None, res.reason, None
    return (res.gate_error, res.gate_error_stderr), "", res.systematic_bounds


def silent_check(results, reasons):
    """A failure is 'silent' if it has no reason or a returned value is non-finite."""
    silent = 0
    for r, why in zip(results, reasons):
        if r is None and not why:
            silent += 1
        if r is not None and not (math.isfinite(r[0]) and math.isfinite(r[1]) and r[1] > 0):
            silent += 1
    return silent


# --------------------------------------------------------------------------------------------
# Cases


def depolarizing_cases(rng, qk, reps, qreps, rows, checks):
    print("\n== B1/B2 depolarizing, protocol design: 10 lengths {1} U round({.02..2.5}/(1-p)), K=10, N=1000 ==")
    print(f"{'case':<14}{'CRB':>7} | {'ours: bias':>11}{'RMSE/CRB':>9}{'cov':>6}{'fail':>5} | {'qiskit: bias':>13}{'RMSE/CRB':>9}{'cov':>6}{'fail':>5}")
    for nq, r in ((1, 1e-4), (1, 1e-3), (1, 1e-2), (2, 1e-2), (2, 3e-2)):
        alpha = synthetic.alpha_from_epc(r, nq)
        ms = protocol_lengths(alpha)
        k, shots = 10, 1000
        lengths = np.repeat(ms, k)
        p = synthetic.apply_readout_error(synthetic.depolarizing_survival(lengths, alpha, nq), READOUT, nq)
        crb = rel_crb(nq, alpha, ms, k, shots)
        ours, reasons, qis = [], [], []
        for i in range(reps):
            zeros = rng.binomial(shots, p)
            res, why = ours_std(lengths, zeros.astype(float), shots, nq)
            ours.append(res)
            reasons.append(why)
            if i < qreps:
                qis.append(qk.fit(nq, lengths, zeros, shots))
        so, sq = summarise(r, ours), summarise(r, qis)
        silent = silent_check(ours, reasons)
        name = f"{nq}Q r={r:g}"
        print(f"{name:<14}{crb:7.3f} | {so['bias']:+11.2%}{so['rmse'] / crb:9.2f}{so['cov']:6.2f}{so['fail']:5d} | {sq['bias']:+13.2%}{sq['rmse'] / crb:9.2f}{sq['cov']:6.2f}{sq['fail']:5d}")
        checks.append((f"{name} |bias| <= 1%", "<= 0.01", f"{abs(so['bias']):.4f}", abs(so["bias"]) <= 0.01))
        checks.append((f"{name} RMSE/CRB <= 1.15", "<= 1.15", f"{so['rmse'] / crb:.3f}", so["rmse"] / crb <= 1.15))
        checks.append((f"{name} 1-sigma coverage", "[0.60, 0.76]", f"{so['cov']:.3f}", 0.60 <= so["cov"] <= 0.76))
        checks.append((f"{name} silent failures", "0", f"{silent} (explicit {so['fail']})", silent == 0))
        rows.append((name, so, sq, crb))


def irb_cases(rng, qk, reps, qreps, checks):
    print("\n== IRB (depolarizing), protocol lengths, N=1000; gate error r_C ==")
    print(f"{'case':<26}{'CRB':>7} | {'ours: bias':>11}{'RMSE/CRB':>9}{'cov':>6}{'sys-in':>7}{'fail':>5} | {'qiskit: bias':>13}{'RMSE/CRB':>9}{'cov':>6}{'fail':>5}")
    for nq, r, rc in ((1, 1e-3, 5e-4), (2, 1.5e-2, 7e-3)):
        for k in (10, 30):
            alpha = synthetic.alpha_from_epc(r, nq)
            ac = synthetic.alpha_from_epc(rc, nq)
            ms = protocol_lengths(alpha)
            shots = 1000
            lengths = np.r_[np.repeat(ms, k), np.repeat(ms, k)]
            flags = np.r_[np.zeros(ms.size * k, bool), np.ones(ms.size * k, bool)]
            p = np.r_[
                synthetic.depolarizing_survival(np.repeat(ms, k), alpha, nq),
                synthetic.depolarizing_survival(np.repeat(ms, k), alpha, nq, ac),
            ]
            p = synthetic.apply_readout_error(p, READOUT, nq)
            crb = rel_crb(nq, alpha, ms, k, shots, ac)
            ours, reasons, qis, inside = [], [], [], []
            for i in range(reps):
                zeros = rng.binomial(shots, p)
                res, why, bounds = ours_irb(lengths, zeros.astype(float), shots, flags, nq)
                ours.append(res)
                reasons.append(why)
                if bounds is not None:
                    inside.append(bounds[0] <= rc <= bounds[1])
                if i < qreps:
                    qis.append(qk.fit(nq, lengths, zeros, shots, flags))
            so, sq = summarise(rc, ours), summarise(rc, qis)
            name = f"{nq}Q r={r:g} rC={rc:g} K={k}"
            sys_in = float(np.mean(inside)) if inside else math.nan
            print(f"{name:<26}{crb:7.3f} | {so['bias']:+11.2%}{so['rmse'] / crb:9.2f}{so['cov']:6.2f}{sys_in:7.2f}{so['fail']:5d} | {sq['bias']:+13.2%}{sq['rmse'] / crb:9.2f}{sq['cov']:6.2f}{sq['fail']:5d}")
            checks.append((f"IRB {name} RMSE/CRB <= 1.15", "<= 1.15", f"{so['rmse'] / crb:.3f}", so["rmse"] / crb <= 1.15))
            checks.append((f"IRB {name} coverage", "[0.60, 0.76]", f"{so['cov']:.3f}", 0.60 <= so["cov"] <= 0.76))
            checks.append((f"IRB {name} systematic interval holds truth", "1.00", f"{sys_in:.2f}", sys_in == 1.0))
            checks.append((f"IRB {name} silent failures", "0", f"{silent_check(ours, reasons)}", silent_check(ours, reasons) == 0))


def robustness_cases(rng, qk, reps, qreps, checks):
    print("\n== B4 robustness, 1Q r=1e-3, protocol lengths, K=30, N=1000 (Bloch simulator; report only) ==")
    print(f"{'noise':<20}{'shot CRB':>9} | {'ours: bias':>11}{'relRMSE':>9}{'rel sd':>8}{'cov':>6}{'fail':>5} | {'qiskit: bias':>13}{'relRMSE':>9}{'cov':>6}{'fail':>5}")
    r, nq, k, shots = 1e-3, 1, 30, 1000
    alpha = synthetic.alpha_from_epc(r, nq)
    ms = protocol_lengths(alpha)
    crb = rel_crb(nq, alpha, ms, k, shots)
    for label, noise in (("coherent", synthetic.coherent_noise(r)), ("amplitude damping", synthetic.amplitude_damping_noise(r))):
        sim = synthetic.BlochRB(noise)
        table = {m: sim.survival(int(m), reps * k, rng).reshape(reps, k) for m in ms}
        lengths = np.repeat(ms, k)
        ours, reasons, qis = [], [], []
        for i in range(reps):
            p = synthetic.apply_readout_error(np.concatenate([table[m][i] for m in ms]), READOUT, nq)
            zeros = rng.binomial(shots, p)
            res, why = ours_std(lengths, zeros.astype(float), shots, nq)
            ours.append(res)
            reasons.append(why)
            if i < qreps:
                qis.append(qk.fit(nq, lengths, zeros, shots))
        so, sq = summarise(r, ours), summarise(r, qis)
        print(f"{label:<20}{crb:9.3f} | {so['bias']:+11.2%}{so['rmse']:9.3f}{so['sd']:8.3f}{so['cov']:6.2f}{so['fail']:5d} | {sq['bias']:+13.2%}{sq['rmse']:9.3f}{sq['cov']:6.2f}{sq['fail']:5d}")
        checks.append((f"B4 {label} silent failures", "0", f"{silent_check(ours, reasons)}", silent_check(ours, reasons) == 0))
        checks.append((f"B4 {label} coverage (report only)", "~0.68", f"{so['cov']:.3f}", None))


def design_comparison(rng, qk, reps, checks):
    print("\n== Design efficiency at equal total shots: qiskit-experiments default vs ours ==")
    print("qiskit default = tutorial lengths (1q: 1..601 step 200; 2q: 1..181 step 30), num_samples=3 (library default), 1024 shots, its own analysis")
    print(f"{'case':<22}{'shots':>7} | {'qiskit relRMSE':>15}{'fail':>5} | {'ours relRMSE':>13}{'fail':>5}{'ratio':>7} | {'ours, prior 3x off':>19}")
    for nq, r, qlen in ((1, 1e-3, list(range(1, 800, 200))), (2, 1e-2, list(range(1, 200, 30)))):
        alpha = synthetic.alpha_from_epc(r, nq)
        qk_k, qk_n = 3, 1024
        budget = len(qlen) * qk_k * qk_n
        q_lengths = np.repeat(qlen, qk_k)
        q_p = synthetic.apply_readout_error(synthetic.depolarizing_survival(q_lengths, alpha, nq), READOUT, nq)
        qis = [qk.fit(nq, q_lengths, rng.binomial(qk_n, q_p), qk_n) for _ in range(reps)]
        results = {}
        for label, prior in (("ours", r), ("off", r / 3)):
            d = design_rb(nq, prior, target_rel_precision=1e-3, shot_budget=budget, readout_error=READOUT, seed=1)
            lengths = np.repeat(d.lengths, d.samples_per_length)
            p = synthetic.apply_readout_error(synthetic.depolarizing_survival(lengths, alpha, nq), READOUT, nq)
            out = [ours_std(lengths, rng.binomial(d.shots, p).astype(float), d.shots, nq)[0] for _ in range(reps)]
            results[label] = (summarise(r, out), d.total_shots)
        sq = summarise(r, qis)
        so, total = results["ours"]
        soff, _ = results["off"]
        ratio = sq["rmse"] / so["rmse"]
        name = f"{nq}Q r={r:g}"
        print(f"{name:<22}{budget:7d} | {sq['rmse']:15.3f}{sq['fail']:5d} | {so['rmse']:13.3f}{so['fail']:5d}{ratio:7.2f} | {soff['rmse']:19.3f}")
        checks.append((f"{name} precision vs qiskit default (equal shots, ours used {total})", ">= 2x", f"{ratio:.2f}x", ratio >= 2))


def aer_probe_timing(checks):
    print("\n== Wall time of a default probe on Aer (design defaults: target 5%, budget 30k shots) ==")
    from qpu_exporter.model import CalibrationSnapshot, GateCalibration, Measurement, QubitCalibration
    from qpu_exporter.rb.calibration import expected_epc
    from qpu_exporter.rb.circuits import rb_circuits_from_design
    from qpu_exporter.rb.execute_aer import run_counts
    from qpu_exporter.rb.noise import build_noise_model

    # Sherbrooke-like medians (qiskit-ibm-runtime's FakeSherbrooke snapshot): T1 278 us, sx 2.4e-4 @ 57 ns, ecr 7.8e-3 @ 533 ns.
    qs = [QubitCalibration(q, {"t1_seconds": Measurement(278e-6), "t2_seconds": Measurement(180e-6), "readout_error_ratio": Measurement(0.02)}) for q in (5, 6)]
    gates = [GateCalibration(g, (q,), Measurement(2.4e-4), Measurement(57e-9)) for q in (5, 6) for g in ("sx", "x")]
    gates.append(GateCalibration("ecr", (5, 6), Measurement(7.8e-3), Measurement(533e-9)))
    snap = CalibrationSnapshot("simulated", "sherbrooke-like", 0.0, None, qs, gates)
    basis = ["rz", "sx", "x", "ecr"]
    print(f"{'probe':<28}{'exp. EPC':>9}{'circuits':>9}{'shots':>6}{'max m':>7} | {'gen s':>6}{'noise s':>8}{'run s':>7}{'fit s':>6}{'total':>7} | fitted EPC")
    for label, qubits, kwargs in (
        ("1q default", (5,), {}),
        ("1q min_shots=400", (5,), {"min_shots": 400}),
        ("2q default", (5, 6), {}),
    ):
        t0 = time.perf_counter()
        prior = expected_epc(snap, qubits, basis)
        d = design_rb(len(qubits), prior, seed=11, **kwargs)
        circs = rb_circuits_from_design(d, qubits, basis)
        t1 = time.perf_counter()
        nm = build_noise_model(snap, qubits, basis)
        t2 = time.perf_counter()
        counts = run_counts([c.circuit for c in circs], nm, d.shots, seed=5)
        t3 = time.perf_counter()
        zero = "0" * len(qubits)
        res = fit_rb([c.length for c in circs], [ct.get(zero, 0) / d.shots for ct in counts], [d.shots] * len(circs), len(qubits))
        t4 = time.perf_counter()
        fitted = f"{res.epc:.3g} +- {res.epc_stderr:.2g}" if res.ok else f"FAILED: {res.reason}"
        print(f"{label:<28}{prior:9.2e}{d.num_circuits:9d}{d.shots:6d}{max(d.lengths):7d} | {t1 - t0:6.2f}{t2 - t1:8.3f}{t3 - t2:7.2f}{t4 - t3:6.3f}{t4 - t0:7.2f} | {fitted}")
        checks.append((f"Aer {label} wall time", "report", f"{t4 - t0:.1f} s", None))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    ap.add_argument("--no-aer", action="store_true", help="skip the Aer timing section")
    ap.add_argument("--qiskit-reps", type=int, default=100, help="repetitions fed to qiskit-experiments (its analysis is the slow part)")
    args = ap.parse_args(argv)
    if args.quick:
        reps, qreps, rob_reps, irb_reps, irb_q = 40, 10, 20, 40, 10
    else:
        reps, rob_reps, irb_reps = 200, 100, 200
        qreps, irb_q = args.qiskit_reps, min(args.qiskit_reps, 100)
    rng = np.random.default_rng(SEED)
    t_start = time.perf_counter()
    qk = QiskitAnalysis()
    checks: list[tuple[str, str, str, bool | None]] = []
    rows: list = []
    depolarizing_cases(rng, qk, reps, qreps, rows, checks)
    irb_cases(rng, qk, irb_reps, irb_q, checks)
    robustness_cases(rng, qk, rob_reps, min(qreps, rob_reps), checks)
    design_comparison(rng, qk, reps if not args.quick else 40, checks)
    if not args.no_aer:
        aer_probe_timing(checks)
    print("\n== Targets ==")
    print(f"{'check':<62}{'target':>14}{'measured':>24}  result")
    failed = 0
    for name, target, measured, passed in checks:
        verdict = "report" if passed is None else ("PASS" if passed else "FAIL")
        failed += passed is False
        print(f"{name:<62}{target:>14}{measured:>24}  {verdict}")
    print(f"\n{failed} target(s) missed; total wall time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
