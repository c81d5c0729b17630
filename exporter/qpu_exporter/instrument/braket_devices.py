"""Amazon Braket devices: ``AwsDevice`` (provider ``braket``, backend = the device's name, as
the exporter labels it) and the SDK's ``LocalSimulator`` (provider ``local``).

- Calibration: the device's standardized properties' ``updatedAt`` (schema v3), else its service
  properties' ``updatedAt`` (v1/v2 standardized properties carry no time), the same time the
  exporter exports as ``qpu_backend_calibration_timestamp_seconds``; re-read with
  ``refresh_metadata()`` at most every ``calibration_refresh`` seconds. A local simulator has none.
- Workload tag: AwsDevice tasks get ``{tag_key: workload}`` merged into the ``tags`` argument of
  run(); a tag the user set under that key is kept as it is.
- Circuits: a Braket ``Circuit`` is translated gate by gate into a qiskit circuit on its qubits
  (physical indices = the Braket qubit numbers), which gives it the same canonical fingerprint as
  a qiskit circuit with the same gates and the ideal reference. Counts are re-keyed to qiskit's
  bit order: clbit i is the i-th measured qubit (Braket writes measured_qubits[0] leftmost).
  Circuits with gates outside the table below, noise, or unbound parameters, and OpenQASM
  ``Program`` inputs, are fingerprinted as ``sha256("qpu-exporter-braket-program-v1\\n" +
  OpenQASM source)`` and have no ideal reference.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..rb.circuits import circuit_fingerprint
from .adapter import FAILED, OK, PENDING, Adapter, CircuitRun, Outcome, epoch

PROGRAM_FINGERPRINT_VERSION = "qpu-exporter-braket-program-v1"
_NO_RESULT_STATES = ("FAILED", "CANCELLED")
_DIRECTIVES = frozenset({"StartVerbatimBox", "EndVerbatimBox", "Barrier"})

# Braket gate class name -> qiskit QuantumCircuit method; same matrices on the same qubit order
# (checked against Braket's own simulator in tests/test_instrument_braket.py).
_GATES = {
    "H": "h", "I": "id", "X": "x", "Y": "y", "Z": "z", "S": "s", "Si": "sdg", "T": "t", "Ti": "tdg",
    "V": "sx", "Vi": "sxdg", "Rx": "rx", "Ry": "ry", "Rz": "rz", "PhaseShift": "p", "U": "u", "PRx": "r",
    "CNot": "cx", "CY": "cy", "CZ": "cz", "CV": "csx", "Swap": "swap", "ISwap": "iswap", "ECR": "ecr",
    "CPhaseShift": "cp", "XX": "rxx", "YY": "ryy", "ZZ": "rzz", "CCNot": "ccx", "CSwap": "cswap",
}


class Untranslatable(ValueError):
    pass


def program_fingerprint(source: str) -> str:
    return hashlib.sha256(f"{PROGRAM_FINGERPRINT_VERSION}\n{source}".encode()).hexdigest()


def to_qiskit(circuit: Any):
    """(qiskit circuit on the used qubits, their Braket numbers, measured qubits in clbit order)."""
    from qiskit import QuantumCircuit

    used = sorted(int(q) for q in circuit.qubits)
    position = {q: i for i, q in enumerate(used)}
    measured: list[int] = []
    gates = []
    for inst in circuit.instructions:
        kind = type(inst.operator).__name__
        targets = [int(q) for q in inst.target]
        if kind == "Measure":
            measured.extend(q for q in targets if q not in measured)
            continue
        if kind in _DIRECTIVES:
            continue
        if kind not in _GATES and kind != "GPhase":
            raise Untranslatable(kind)
        if len(getattr(inst, "control", ()) or ()) or getattr(inst, "power", 1) != 1:
            raise Untranslatable(f"{kind} with control or power modifiers")
        params = list(getattr(inst.operator, "parameters", []) or [])
        if not all(isinstance(p, int | float) for p in params):
            raise Untranslatable(f"{kind} with an unbound parameter")
        gates.append((kind, [float(p) for p in params], targets))
    if not measured:  # Braket measures every used qubit, in ascending order
        measured = list(used)
    qc = QuantumCircuit(len(used), len(measured))
    for kind, params, targets in gates:
        if kind == "GPhase":
            qc.global_phase += params[0]
        else:
            getattr(qc, _GATES[kind])(*params, *[position[q] for q in targets])
    for clbit, qubit in enumerate(measured):
        qc.measure(position[qubit], clbit)
    return qc, used, measured


def describe(spec: Any, inputs: dict | None) -> CircuitRun:
    """The CircuitRun for one task specification."""
    from braket.circuits import Circuit

    if isinstance(spec, Circuit):
        circuit = spec
        if inputs and circuit.parameters:
            circuit = circuit.make_bound_circuit(inputs)
        try:
            qc, used, measured = to_qiskit(circuit)
            return CircuitRun(None, circuit_fingerprint(qc, used), qc, extra={"measured": measured})
        except Untranslatable:
            from braket.circuits.serialization import IRType

            source = circuit.to_ir(IRType.OPENQASM).source
    else:
        source = getattr(spec, "source", None)
        if not isinstance(source, str):
            return CircuitRun(None, None)  # annealing, AHS, program sets: counted, not scored
    if inputs:
        source += "\n// inputs " + json.dumps(inputs, sort_keys=True, default=str)
    return CircuitRun(None, program_fingerprint(source))


class BraketAdapter(Adapter):
    def __init__(self, device: Any, provider: str, tag_key: str | None, workload: str, calibration_refresh: float):
        super().__init__(device, calibration_refresh)
        self.provider = provider
        self.backend = str(device.name)
        self.tag_key, self.workload = tag_key, workload
        self.refresh_on_first_use = provider == "braket"

    def fetch_calibration_time(self, refresh: bool) -> float | None:
        if self.provider != "braket":
            return None
        if refresh:
            self.target.refresh_metadata()
        props = self.target.properties
        standardized = getattr(props, "standardized", None)
        updated = epoch(getattr(standardized, "updatedAt", None))
        return updated if updated is not None else epoch(getattr(getattr(props, "service", None), "updatedAt", None))

    def prepare(self, args: tuple, kwargs: dict):
        if self.tag_key is None:
            return args, kwargs, None
        tags = kwargs.get("tags") or {}
        if self.tag_key not in tags:
            kwargs = {**kwargs, "tags": {**tags, self.tag_key: self.workload}}
        return args, kwargs, None

    def circuits(self, args: tuple, kwargs: dict) -> list[CircuitRun]:
        spec = args[0] if args else kwargs.get("task_specification")
        return [describe(spec, kwargs.get("inputs"))]

    def outcome(self, job: Any, result: Any, runs: list[CircuitRun]) -> Outcome:
        if result is None:  # AwsQuantumTask.result() returns None for failed, cancelled or timed-out tasks
            return Outcome(FAILED if self._state(job) in _NO_RESULT_STATES else PENDING)
        counts = getattr(result, "measurement_counts", None)
        if not counts:  # shots=0 (exact results): nothing to count
            return Outcome(OK, [None])
        run = runs[0]
        measured = [int(q) for q in result.measured_qubits]
        wanted = run.extra.get("measured", measured)
        if sorted(wanted) != sorted(measured):  # not what we translated: keep the counts, drop the reference
            run.circuit, wanted = None, measured
        return Outcome(OK, [rekey(counts, measured, wanted)])

    @staticmethod
    def _state(job: Any) -> str:
        try:
            return str(job.state(use_cached_value=True))
        except TypeError:  # LocalQuantumTask.state() takes no argument
            return str(job.state())

    def finished(self, job: Any) -> bool:
        return self._state(job) in ("COMPLETED", *_NO_RESULT_STATES)

    def job_id(self, job: Any) -> str | None:
        return str(getattr(job, "id", None) or "") or None


def rekey(counts: dict[str, int], measured: list[int], clbit_qubits: list[int]) -> dict[str, int]:
    """Braket counts (character j = measured[j]) -> qiskit keys where clbit i is clbit_qubits[i]
    (clbit 0 rightmost)."""
    where = {q: j for j, q in enumerate(measured)}
    order = [where[q] for q in reversed(clbit_qubits)]
    out: dict[str, int] = {}
    for key, n in counts.items():
        new = "".join(key[j] for j in order)
        out[new] = out.get(new, 0) + int(n)
    return out
