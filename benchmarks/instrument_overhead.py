"""What the instrumentation library adds per job.

The cost is measured without the simulator's run-to-run noise: each SDK object is subclassed so
that run() hands back an already finished job holding a real result (recorded once from a real
run), so ``wrapped - plain`` over many calls is the wrapper's own work: argument handling, tags,
fingerprints, references, counts extraction, Hellinger fidelities, metrics and the log line. For
scale the table also gives the median wall time of the real job (a noiseless local simulation,
the fastest backend there is; a QPU job takes seconds to hours).

Scenarios: a Bell circuit on qiskit-aer's SamplerV2 (no reference; ideal reference; ideal plus
the execution log), a 100-point parameter sweep in one pub (each binding fingerprinted and
scored), a Bell circuit transpiled onto a 127-qubit fake device (device-wide fingerprint, the
ideal reduced to the 2 active qubits), a 20-qubit GHZ circuit above the ideal limit, and a Bell
circuit on Braket's LocalSimulator (translated to qiskit to fingerprint and score).

    .venv/bin/python benchmarks/instrument_overhead.py [--calls 300]

Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "exporter"))

from qpu_exporter.instrument import Instrumentation  # noqa: E402


def _bell(n_qubits: int = 2):
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(n_qubits, name=f"ghz{n_qubits}")
    qc.h(0)
    for q in range(1, n_qubits):
        qc.cx(q - 1, q)
    qc.measure_all()
    return qc


class _Finished:
    """A finished job: what PrimitiveJob offers the instrumentation (result, done, job_id)."""

    def __init__(self, result):
        self._result = result

    def result(self):
        return self._result

    def done(self) -> bool:
        return True

    def job_id(self) -> str:
        return "replay"


def _replay_sampler(recorded):
    from qiskit_aer.primitives import SamplerV2

    class ReplaySampler(SamplerV2):
        def run(self, pubs, *, shots=None):
            list(pubs)  # the SDK reads the pubs; so does this stand-in
            return _Finished(recorded)

    return ReplaySampler


def _timed(call, calls: int) -> float:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def _row(title: str, make_plain, make_wrapped_target, run, calls: int, real_calls: int, reference, log_path=None):
    """(title, real job median, instrumentation cost median) for one scenario."""
    real = _timed(lambda: run(make_plain(real=True)), real_calls)
    plain = make_plain(real=False)
    inst = Instrumentation("bench")
    if log_path:
        inst.log_to(log_path)
    wrapped = inst.wrap(make_wrapped_target(), reference=reference)
    for _ in range(3):  # first-call caches (our reference, the SDK's imports)
        run(plain)
        run(wrapped)
    costs = []
    for _ in range(calls):
        a = _timed(lambda: run(plain), 1)
        b = _timed(lambda: run(wrapped), 1)
        costs.append(b - a)
    inst.close()
    return title, real, statistics.median(costs)


def sampler_rows(calls: int, log_dir: str):
    from qiskit.circuit import Parameter
    from qiskit.circuit.library import RYGate
    from qiskit_aer.primitives import SamplerV2

    def scenario(title, pub, shots, reference, log=False, n=calls):
        recorded = SamplerV2(seed=1).run([pub], shots=shots).result()
        replay = _replay_sampler(recorded)
        return _row(title, lambda real: SamplerV2(seed=1) if real else replay(seed=1), lambda: replay(seed=1),
                    lambda s: s.run([pub], shots=shots).result(), n, max(5, n // 10), reference,
                    os.path.join(log_dir, "runs.jsonl") if log else None)

    bell = _bell()
    yield scenario("Bell, Aer, no reference", bell, 1000, None)
    yield scenario("Bell, Aer, reference=ideal", bell, 1000, "ideal")
    yield scenario("Bell, Aer, ideal + execution log", bell, 1000, "ideal", log=True)
    theta = Parameter("theta")
    ansatz = _bell(4)
    ansatz.data.insert(1, ansatz.data[0].replace(operation=RYGate(theta)))
    ansatz.name = "sweep"
    yield scenario("100-point sweep in one pub, Aer, ideal", (ansatz, np.linspace(0, np.pi, 100)[:, None]), 200,
                   "ideal", n=max(10, calls // 10))
    yield scenario("20-qubit GHZ, Aer, above the ideal limit", _bell(20), 1000, "ideal")
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime.fake_provider import FakeSherbrooke

    isa = generate_preset_pass_manager(optimization_level=1, backend=FakeSherbrooke(), seed_transpiler=1).run(bell)
    isa.name = "bell-isa"
    yield scenario("Bell on a 127-qubit ISA circuit, Aer, ideal", isa, 1000, "ideal", n=max(10, calls // 4))


def braket_rows(calls: int):
    from braket.circuits import Circuit
    from braket.devices import LocalSimulator
    from braket.tasks.local_quantum_task import LocalQuantumTask

    circuit = Circuit().h(0).cnot(0, 1)
    recorded = LocalSimulator().run(circuit, shots=1000).result()

    class ReplaySimulator(LocalSimulator):
        def run(self, task_specification, shots=0, inputs=None, *args, **kwargs):
            return LocalQuantumTask(recorded)

    yield _row("Bell, Braket LocalSimulator, ideal", lambda real: LocalSimulator() if real else ReplaySimulator(),
               ReplaySimulator, lambda d: d.run(circuit, shots=1000).result(), calls, max(5, calls // 10), "ideal")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300, help="paired calls per scenario (fewer for the big ones)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    load = os.getloadavg()[0]
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as log_dir:
        for row in (*sampler_rows(args.calls, log_dir), *braket_rows(args.calls)):
            rows.append(row)
            print(f"  done: {row[0]}", file=sys.stderr)
    print(f"load average at start {load:.1f}; {time.time() - started:.0f} s\n")
    print("| scenario | real job, median ms | instrumentation per job, median ms | share of the real job |")
    print("|---|---|---|---|")
    for title, real, cost in rows:
        print(f"| {title} | {real * 1e3:.1f} | {cost * 1e3:.2f} | {cost / real:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
