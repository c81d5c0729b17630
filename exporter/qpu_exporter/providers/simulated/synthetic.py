"""A synthetic fleet of any size from one real calibration snapshot, for scale tests.

``scale: {backends: N, qubits: Q}`` in a simulated provider's config makes N backends named
``synthetic_000``... of Q qubits each. Each one is the template snapshot (the provider's first
listed fake backend) tiled to Q qubits - qubit q copies template qubit q mod n, and every
template gate is repeated on each tile whose qubits all exist - then resampled: per-qubit
and per-gate log-normal factors drawn from (seed, backend name), so backends differ from one
another but keep realistic levels. Reading one snapshot and doing numpy arithmetic costs
milliseconds per backend, not one JSON parse each. The result feeds the simulated
provider's usual dynamics, so synthetic backends evolve like the others and are still
exported with provider="simulated".
"""

from __future__ import annotations

import functools
import math
import zlib

import numpy as np

from ...model import CalibrationSnapshot, GateCalibration, Measurement, QubitCalibration
from ..fake_snapshots import load_snapshot, processor_name
from ..ibm.properties import parse_properties

PREFIX = "synthetic_"
# Spread between synthetic backends (log-normal sigma of the resampling factors), about the
# backend-to-backend spread of IBM's fleet medians.
COHERENCE_SIGMA = 0.25
READOUT_SIGMA = 0.2
GATE_SIGMA = 0.25
FREQUENCY_SIGMA_HZ = 50e6


def synthetic_names(count: int) -> list[str]:
    width = max(3, len(str(count - 1)))
    return [f"{PREFIX}{i:0{width}d}" for i in range(count)]


@functools.lru_cache(maxsize=4)
def _template(name: str) -> tuple[CalibrationSnapshot, str]:
    conf, props = load_snapshot(name)
    base, _ = parse_properties(props, provider="simulated", backend=name, fetched_at=0.0)
    return base, processor_name(conf)


def synthetic_snapshot(template: CalibrationSnapshot, name: str, qubits: int, seed: int) -> CalibrationSnapshot:
    """The template tiled to ``qubits`` qubits and resampled deterministically for ``name``."""
    rng = np.random.default_rng([seed, zlib.crc32(name.encode()), 0x5CA1E])
    n0 = len(template.qubits)
    coherence = np.exp(COHERENCE_SIGMA * rng.standard_normal(qubits))
    readout = np.exp(READOUT_SIGMA * rng.standard_normal(qubits))
    detune = FREQUENCY_SIGMA_HZ * rng.standard_normal(qubits)

    out = CalibrationSnapshot("simulated", name, fetched_at=0.0, calibrated_at=None)
    for q in range(qubits):
        src = template.qubits[q % n0]
        values: dict[str, Measurement] = {}
        for quantity, m in src.values.items():
            v = m.value
            if quantity in ("t1", "t2"):
                v *= coherence[q]
            elif quantity in ("readout_error", "prob_meas0_prep1", "prob_meas1_prep0"):
                v = min(v * readout[q], 0.5)
            elif quantity == "frequency":
                v = max(v + detune[q], 1e9)
            values[quantity] = Measurement(float(v))
        if "t1" in values and "t2" in values:  # physics: T2 <= 2 T1
            t2 = min(values["t2"].value, 2 * values["t1"].value)
            values["t2"] = Measurement(t2)
        out.qubits.append(QubitCalibration(q, values, src.operational))

    tiles = math.ceil(qubits / n0)
    gate_factor = np.exp(GATE_SIGMA * rng.standard_normal(len(template.gates) * tiles))
    k = 0
    for tile in range(tiles):
        offset = tile * n0
        for g in template.gates:
            f = gate_factor[k]
            k += 1
            qs = tuple(q + offset for q in g.qubits)
            if any(q >= qubits for q in qs):
                continue
            error = None if g.error is None else Measurement(float(min(g.error.value * f, 0.75)))
            out.gates.append(GateCalibration(g.gate, qs, error, g.duration, g.operational))
    return out


def synthetic_fleet(template_name: str, count: int, qubits: int, seed: int):
    """(name, base snapshot, processor) for each synthetic backend."""
    template, processor = _template(template_name)
    for name in synthetic_names(count):
        yield name, synthetic_snapshot(template, name, qubits, seed), processor
