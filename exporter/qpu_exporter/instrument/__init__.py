"""Instrumentation for users' own qiskit and Braket runs (docs/instrument.md).

    from qpu_exporter.instrument import Instrumentation
    inst = Instrumentation(workload="vqe-h2")
    sampler = inst.wrap(SamplerV2(mode=backend), reference="ideal")
    sampler.run([circuit], shots=4000).result()
    inst.push("http://127.0.0.1:9091", job="vqe-h2")
"""

from .core import REFERENCES, Instrumentation
from .reference import DEFAULT_IDEAL_MAX_QUBITS

__all__ = ["DEFAULT_IDEAL_MAX_QUBITS", "REFERENCES", "Instrumentation"]
