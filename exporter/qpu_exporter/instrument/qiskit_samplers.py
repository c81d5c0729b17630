"""qiskit SamplerV2 primitives: qiskit-ibm-runtime's (job mode, sessions, batches, and local
testing mode on a fake backend), qiskit-aer's, and any other ``BaseSamplerV2``.

- provider ``ibm`` with the backend's name when the sampler runs on an IBM Quantum backend,
  otherwise ``local`` (Aer, fake backends, qiskit's reference samplers).
- Calibration: ``backend.properties().last_update_date`` (IBM re-read from the service at most
  every ``calibration_refresh`` seconds; a fake backend reports its snapshot's date); absent
  when the backend has no properties (Aer).
- Workload tag: IBM jobs get ``<tag_key>:<workload>`` appended to the sampler's
  ``options.environment.job_tags`` for the duration of the run() call only, the user's own tags
  kept, and nothing added when a ``<tag_key>:`` tag is there already.
- One CircuitRun per pub element: a pub with parameter values of shape (n,) is n circuits (the
  bound circuits, fingerprinted each), in the order the result's BitArrays index them.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ..rb.circuits import circuit_fingerprint
from .adapter import OK, Adapter, CircuitRun, Outcome, epoch


def physical_qubits(circuit) -> list[int]:
    """The device qubits a circuit's qubits stand for: the probes' metadata["physical_qubits"]
    convention when present, else the identity (an ISA circuit is already on device qubits)."""
    declared = (circuit.metadata or {}).get("physical_qubits") if isinstance(circuit.metadata, dict) else None
    if isinstance(declared, list | tuple) and len(declared) == circuit.num_qubits and all(
            isinstance(q, int) and not isinstance(q, bool) for q in declared):
        return list(declared)
    return list(range(circuit.num_qubits))


def fingerprint(circuit) -> str:
    return circuit_fingerprint(circuit, physical_qubits(circuit))


def bit_counts(packed: np.ndarray, num_bits: int) -> dict[str, int]:
    """Counts of a BitArray's shots (rows of big-endian packed bytes), keyed as
    ``BitArray.get_counts`` keys them, but counted in numpy: get_counts formats every shot in
    Python, which was most of the wrapper's cost per job (benchmarks/instrument_overhead.py)."""
    if packed.shape[-1] <= 8:
        values = np.zeros(packed.shape[0], dtype=np.uint64)
        for column in range(packed.shape[-1]):
            values = (values << np.uint64(8)) | packed[:, column].astype(np.uint64)
        unique, tally = np.unique(values, return_counts=True)
        keys = (int(v) for v in unique)
    else:
        rows, tally = np.unique(packed, axis=0, return_counts=True)
        keys = (int.from_bytes(row.tobytes(), "big") for row in rows)
    return {format(value, f"0{num_bits}b"): int(n) for value, n in zip(keys, tally)}


def _is_iterator(value: Any) -> bool:
    try:
        return value is not None and iter(value) is value
    except TypeError:
        return False


def _is_ibm_backend(backend: Any) -> bool:
    try:
        from qiskit_ibm_runtime import IBMBackend
    except ImportError:
        return False
    return isinstance(backend, IBMBackend)


class SamplerAdapter(Adapter):
    def __init__(self, sampler: Any, tag: str, tag_key: str, calibration_refresh: float):
        super().__init__(sampler, calibration_refresh)
        self.device = self._device(sampler)
        self.provider = "ibm" if _is_ibm_backend(self.device) else "local"
        self.backend = str(getattr(self.device, "name", None) or type(sampler).__name__)
        self.refresh_on_first_use = self.provider == "ibm"
        self.tag, self.tag_prefix = tag, f"{tag_key}:"
        self._tag_lock = threading.Lock()

    @staticmethod
    def _device(sampler: Any) -> Any:
        backend = getattr(sampler, "backend", None)
        if callable(backend):  # qiskit-ibm-runtime, BackendSamplerV2
            return backend()
        if backend is not None:
            return backend
        return getattr(sampler, "_backend", None)  # qiskit-aer keeps it private

    def fetch_calibration_time(self, refresh: bool) -> float | None:
        properties = getattr(self.device, "properties", None)
        if not callable(properties):
            return None
        props = properties(refresh=True) if refresh and self.provider == "ibm" else properties()
        return epoch(getattr(props, "last_update_date", None)) if props is not None else None

    def seed(self, args: tuple, kwargs: dict) -> int | None:
        seed = getattr(self.target, "seed", None)  # qiskit-aer
        if seed is None:
            simulator = getattr(getattr(self.target, "options", None), "simulator", None)
            seed = getattr(simulator, "seed_simulator", None)  # qiskit-ibm-runtime local mode
        return int(seed) if isinstance(seed, int | np.integer) and not isinstance(seed, bool) else None

    # --- run(pubs, *, shots=None) -----------------------------------------------------------------
    def prepare(self, args: tuple, kwargs: dict):
        # A one-shot iterator of pubs is read twice (by the SDK, then by circuits()): make it a
        # list. Anything else reaches the SDK as it is, so a wrong argument fails the same way.
        if args and _is_iterator(args[0]):
            args = (list(args[0]), *args[1:])
        elif _is_iterator(kwargs.get("pubs")):
            kwargs = {**kwargs, "pubs": list(kwargs["pubs"])}
        if self.provider != "ibm":
            return args, kwargs, None
        environment = self.target.options.environment
        self._tag_lock.acquire()  # concurrent run() calls on one sampler must not see each other's tags
        try:
            user_tags = environment.job_tags
            if any(str(t).startswith(self.tag_prefix) for t in user_tags or ()):
                self._tag_lock.release()
                return args, kwargs, None
            environment.job_tags = [*(user_tags or []), self.tag]
        except BaseException:
            self._tag_lock.release()
            raise

        def restore() -> None:
            try:
                environment.job_tags = user_tags
            finally:
                self._tag_lock.release()

        return args, kwargs, restore

    def circuits(self, args: tuple, kwargs: dict) -> list[CircuitRun]:
        from qiskit.primitives.containers.sampler_pub import SamplerPub

        pubs = args[0] if args else kwargs.get("pubs", ())
        runs = []
        for pub in pubs:
            # Shots do not change the circuits; leaving them out lets the circuits of a call the
            # SDK refused for its shots still be fingerprinted (a resubmission is then a retry).
            if isinstance(pub, tuple) and len(pub) > 2:
                pub = pub[:2]
            coerced = SamplerPub.coerce(pub)
            circuit = coerced.circuit
            if coerced.shape == () and circuit.num_parameters == 0:
                runs.append(CircuitRun(circuit.name, fingerprint(circuit), circuit))
                continue
            bound = coerced.parameter_values.bind_all(circuit)
            for index in np.ndindex(coerced.shape):
                element = bound[index]
                runs.append(CircuitRun(circuit.name, fingerprint(element), element))
        return runs

    def outcome(self, job: Any, result: Any, runs: list[CircuitRun]) -> Outcome:
        counts: list[dict[str, int] | None] = []
        for pub_result in result:
            data = pub_result.data
            fields = list(data.keys()) if hasattr(data, "keys") else []
            try:
                # One register needs no joining (joining copies and re-packs every shot).
                bits = data[fields[0]] if len(fields) == 1 else pub_result.join_data()
            except (ValueError, IndexError):  # a circuit without classical bits
                counts.extend([None] * int(np.prod(data.shape, dtype=int)))
                continue
            for index in np.ndindex(data.shape):
                counts.append(bit_counts(bits.array[index], bits.num_bits))
        return Outcome(OK, counts)

    def finished(self, job: Any) -> bool:
        for name in ("in_final_state", "done"):
            check = getattr(job, name, None)
            if callable(check):
                return bool(check())
        return True

    def job_id(self, job: Any) -> str | None:
        job_id = getattr(job, "job_id", None)
        return str(job_id()) if callable(job_id) else None

