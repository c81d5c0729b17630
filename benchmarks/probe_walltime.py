"""Wall time of default probes on the simulated fleet (Aer, noise from the current calibration).

Runs the exporter's own ProbeRunner with the default probe settings (config defaults) on the
automatic targets of each backend and prints one row per probe: the design, the wall time
split into generate / execute / fit, shots, the price it was charged as an IBM job, and the
fitted EPC. Usage: .venv/bin/python benchmarks/probe_walltime.py [--backends a,b] [--repeat N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from qpu_exporter.config import Config
from qpu_exporter.probes import fitting
from qpu_exporter.probes.runner import ProbeRunner
from qpu_exporter.probes.targets import targets_for
from qpu_exporter.providers.factory import build_providers
from qpu_exporter.store import Store


class Timed:
    """Wraps a provider to time run_circuits (execution) separately."""

    def __init__(self, inner):
        self.inner = inner
        self.kind = inner.kind
        self.run_seconds = 0.0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def run_circuits(self, *a, **kw):
        t = time.perf_counter()
        try:
            return self.inner.run_circuits(*a, **kw)
        finally:
            self.run_seconds += time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="fake_sherbrooke,fake_torino")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    backends = args.backends.split(",")
    cfg = Config.model_validate({"providers": [{"kind": "simulated", "backends": backends, "dynamics": "calm"}]})
    store = Store(Path(tempfile.mkdtemp()) / "bench.db")
    sim = build_providers(cfg, origin=time.time())[0]
    timed = Timed(sim)
    # The worker loop on a thread, so the wrapper times execution in this process (the
    # exporter runs the same loop in a worker process: benchmarks/footprint.py).
    runner = ProbeRunner([timed], store, cfg.probes, isolation="thread")
    fit_seconds = {"t": 0.0}
    orig_fit = fitting.fit_record

    def timed_fit(record):
        t = time.perf_counter()
        try:
            return orig_fit(record)
        finally:
            fit_seconds["t"] += time.perf_counter() - t

    fitting.fit_record = timed_fit
    print(f"defaults: shots_per_probe={cfg.probes.shots_per_probe} min_shots={cfg.probes.min_shots} "
          f"max_circuits={cfg.probes.max_circuits} max_length={cfg.probes.max_length} "
          f"agreement_shots={cfg.probes.agreement_shots}")
    head = (f"{'backend':16} {'qubits':7} {'gate':4} {'circ':>4} {'shots':>5} {'max m':>6} | {'gen+s':>6} {'exec s':>6} "
            f"{'fit s':>5} {'total':>6} | {'usd':>5} | epc")
    print(head)
    print("-" * len(head))
    for b in backends:
        snap = sim.calibration(b)
        for target in targets_for(cfg.probes, snap):
            for _ in range(args.repeat):
                timed.run_seconds, fit_seconds["t"] = 0.0, 0.0
                t = time.perf_counter()
                [o] = runner.probe_backend(timed, b, targets=[target])
                total = time.perf_counter() - t
                d = o.design
                other = total - timed.run_seconds - fit_seconds["t"]
                print(f"{b:16} {target.qubits_label:7} {target.interleaved or '-':4} {d.get('num_circuits', 0):4d} "
                      f"{o.shots:5d} {max(d.get('lengths', [0])):6d} | {other:6.2f} {timed.run_seconds:6.2f} "
                      f"{fit_seconds['t']:5.2f} {total:6.2f} | {o.cost_usd:5.2f} | "
                      f"{o.epc:.3g} +- {o.epc_stderr:.2g}" + (f"  gate {o.gate_error:.3g} +- {o.gate_error_stderr:.2g}"
                                                             if o.gate_error is not None else "")
                      + ("" if o.status == "ok" else f"  {o.status}: {o.reason}"))


if __name__ == "__main__":
    main()
