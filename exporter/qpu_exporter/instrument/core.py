"""Instrumentation: wraps a user's sampler or device so that every job it submits is counted,
timed, tagged with the workload, joined to the calibration it ran under and, where a reference
exists, scored by Hellinger fidelity, all in the instance's own prometheus_client registry.

Wrapping replaces ``run`` on the instance itself (and ``result`` on each job it returns), so the
object, the job and the result keep their types, arguments reach the SDK unchanged (apart from
the workload tag) and results come back untouched. Everything the instrumentation does around
the call is guarded: a failure there is logged and counted in
``qpu_client_instrumentation_errors_total{stage}`` and never reaches the user's code; the SDK's
own exceptions propagate as they are.
"""

from __future__ import annotations

import functools
import re
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from prometheus_client import CollectorRegistry

from ..logs import get_logger
from ..probes.agreement import distribution, hellinger_fidelity
from .adapter import FAILED, OK, Adapter, CircuitRun, Outcome
from .execlog import ExecutionLog, iso
from .metrics import CircuitLabels, ClientMetrics
from .reference import DEFAULT_IDEAL_MAX_QUBITS, ReferenceUnavailable, expected_distribution, ideal_distribution

log = get_logger(__name__)

REFERENCES = (None, "ideal")
# Label values and tag values: the exporter reads workload tags as IBM "KEY:VALUE" job tags and
# Braket task tags, whose allowed characters this is (a subset of both).
_WORKLOAD = re.compile(r"[A-Za-z0-9_.:/=+@-]{1,63}")
_TAG_KEY = re.compile(r"[A-Za-z0-9_./+@-]{1,63}")  # no ':' or '=': they separate key and value
_MARK = "__qpu_instrumentation__"
_CACHE = 1024  # references, previous distributions and failed fingerprints kept per instance


@dataclass
class Submission:
    adapter: Adapter
    reference: str | None
    submitted_at: float  # Unix time
    started: float  # monotonic
    calibration_time: float | None
    seed: int | None
    runs: list[CircuitRun] = field(default_factory=list)
    job_id: str | None = None
    finished: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finish(self) -> bool:
        """True for the first caller only: a job is recorded once, however often result() is called."""
        with self.lock:
            first, self.finished = not self.finished, True
            return first


def _bounded_put(cache: OrderedDict, key, value) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _CACHE:
        cache.popitem(last=False)


class Instrumentation:
    """Metrics, tags and an execution log for the runs of one workload.

    ``workload`` becomes the ``workload`` label and the job tag ``<tag_key>:<workload>`` (IBM) or
    ``{tag_key: workload}`` (Braket). ``fidelity_objective`` (0..1) is exported for the
    QPUWorkloadFidelityBelowObjective alert. Circuits up to ``ideal_max_qubits`` active qubits get
    an ideal reference with ``wrap(..., reference="ideal")``. At most ``max_circuits`` distinct
    circuit label values (names cut to ``circuit_name_length`` characters); the backend's
    calibration is re-read at most every ``calibration_refresh`` seconds.
    """

    def __init__(self, workload: str, *, tag_key: str = "team", fidelity_objective: float | None = None,
                 ideal_max_qubits: int = DEFAULT_IDEAL_MAX_QUBITS, max_circuits: int = 50,
                 circuit_name_length: int = 64, calibration_refresh: float = 300.0,
                 registry: CollectorRegistry | None = None):
        if not isinstance(workload, str) or not _WORKLOAD.fullmatch(workload):
            raise ValueError(f"workload {workload!r}: 1 to 63 characters of letters, digits and _.:/=+@-")
        if not isinstance(tag_key, str) or not _TAG_KEY.fullmatch(tag_key):
            raise ValueError(f"tag_key {tag_key!r}: 1 to 63 characters of letters, digits and _./+@-")
        if fidelity_objective is not None and not (isinstance(fidelity_objective, int | float)
                                                   and 0 < fidelity_objective <= 1):
            raise ValueError(f"fidelity_objective {fidelity_objective!r}: must be in (0, 1]")
        for name, value in (("ideal_max_qubits", ideal_max_qubits), ("max_circuits", max_circuits),
                            ("circuit_name_length", circuit_name_length)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} {value!r}: must be a positive integer")
        if not isinstance(calibration_refresh, int | float) or calibration_refresh < 0:
            raise ValueError(f"calibration_refresh {calibration_refresh!r}: must be >= 0 seconds")
        self.workload = workload
        self.tag_key = tag_key
        self.ideal_max_qubits = ideal_max_qubits
        self.calibration_refresh = float(calibration_refresh)
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = ClientMetrics(self.registry)
        self.labels = CircuitLabels(max_circuits, circuit_name_length)
        if fidelity_objective is not None:
            self.metrics.objective.labels(workload).set(float(fidelity_objective))
        self._lock = threading.Lock()
        self._references: OrderedDict[str, dict[str, float] | None] = OrderedDict()
        self._previous: OrderedDict[tuple[str, str, str], dict[str, float]] = OrderedDict()
        self._failed: OrderedDict[str, None] = OrderedDict()
        self._warned: set[str] = set()
        self._log: ExecutionLog | None = None
        self._servers: list = []

    # --- public API ----------------------------------------------------------------------------
    @property
    def tag(self) -> str:
        """The IBM job tag this workload's jobs carry."""
        return f"{self.tag_key}:{self.workload}"

    def wrap(self, target: Any, *, reference: str | None = None) -> Any:
        """Instrument ``target.run`` (a qiskit SamplerV2 or a Braket AwsDevice / LocalSimulator)
        and return the same object. ``reference="ideal"`` scores circuits against their exact
        ideal distribution; ``metadata["expected"]`` on a circuit is used whenever present."""
        from .adapters import adapter_for

        if reference not in REFERENCES:
            raise ValueError(f"reference {reference!r}: must be None or 'ideal'")
        current = getattr(target, "run", None)
        if getattr(current, _MARK, None) is not None:
            raise ValueError(f"{type(target).__name__} is already instrumented; unwrap() it first")
        adapter = adapter_for(target, self)
        original = current

        @functools.wraps(original)
        def run(*args, **kwargs):
            return self._run(adapter, original, reference, args, kwargs)

        setattr(run, _MARK, self)
        target.run = run
        return target

    def unwrap(self, target: Any) -> Any:
        """Undo wrap(): ``target.run`` is the SDK's again."""
        if getattr(getattr(target, "run", None), _MARK, None) is not self:
            raise ValueError(f"{type(target).__name__} is not instrumented by this Instrumentation")
        del target.run
        return target

    def push(self, gateway: str, job: str | None = None, *, grouping_key: dict[str, str] | None = None,
             timeout: float = 10.0) -> bool:
        """Replace this process's group on a Prometheus Pushgateway (HTTP PUT) with the current
        metrics. ``job`` defaults to the workload, ``grouping_key`` to ``{"instance": <host name>}``
        so that runs on different hosts do not overwrite each other. Returns False (logged,
        counted) on failure."""
        from prometheus_client import push_to_gateway

        if grouping_key is None:
            grouping_key = {"instance": socket.gethostname()}
        try:
            push_to_gateway(gateway, job=job or self.workload, registry=self.registry,
                            grouping_key=grouping_key, timeout=timeout)
            return True
        except Exception as exc:  # noqa: BLE001 - the user's program goes on
            self._error("push", exc)
            return False

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve the metrics on http://addr:port/metrics in a daemon thread; returns the port
        (pass 0 for a free one)."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._servers.append(server)
        return server.server_port

    def log_to(self, path) -> None:
        """Append a JSON line per circuit execution to ``path`` (see execlog.py)."""
        new = ExecutionLog(path)
        old, self._log = self._log, new
        if old is not None:
            old.close()

    def close(self) -> None:
        """Stop servers started by serve() and close the execution log."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers.clear()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- around run() ------------------------------------------------------------------------
    def _run(self, adapter: Adapter, original: Callable, reference: str | None, args: tuple, kwargs: dict):
        sub = self._guard("submit", self._begin, adapter, reference, args, kwargs)
        call_args, call_kwargs, restore = args, kwargs, None
        if sub is not None:
            prepared = self._guard("submit", adapter.prepare, args, kwargs)
            if prepared is not None:
                call_args, call_kwargs, restore = prepared
        try:
            job = original(*call_args, **call_kwargs)
        except Exception:
            if sub is not None:
                self._guard("submit", self._submit_failed, sub, call_args, call_kwargs)
            raise
        finally:
            if restore is not None:
                self._guard("submit", restore)
        if sub is not None:
            self._guard("submit", self._submitted, sub, job, call_args, call_kwargs)
        return job

    def _begin(self, adapter: Adapter, reference: str | None, args: tuple, kwargs: dict) -> Submission:
        calibration = self._guard("calibration", adapter.calibration_time)
        return Submission(adapter, reference, time.time(), time.monotonic(), calibration,
                          self._guard("submit", adapter.seed, args, kwargs))

    def _describe(self, sub: Submission, args: tuple, kwargs: dict) -> None:
        sub.runs = sub.adapter.circuits(args, kwargs)
        for run in sub.runs:
            run.label = self.labels.value(run.name, run.fingerprint)

    def _submitted(self, sub: Submission, job: Any, args: tuple, kwargs: dict) -> None:
        adapter = sub.adapter
        labels = (self.workload, adapter.provider, adapter.backend)
        if sub.calibration_time is not None and sub.submitted_at >= sub.calibration_time:
            self.metrics.calibration_age.labels(*labels).set(sub.submitted_at - sub.calibration_time)
        else:  # unknown now: no stale number from an earlier job
            try:
                self.metrics.calibration_age.remove(*labels)
            except KeyError:
                pass
        sub.job_id = self._guard("submit", adapter.job_id, job)
        original_result = job.result

        @functools.wraps(original_result)
        def result(*a, **kw):
            try:
                value = original_result(*a, **kw)
            except Exception:
                if self._guard("result", adapter.finished, job):
                    self._guard("result", self._record, sub, Outcome(FAILED))
                raise
            outcome = self._guard("result", adapter.outcome, job, value, sub.runs)
            if outcome is not None:
                self._guard("result", self._record, sub, outcome)
            return value

        job.result = result  # first: the job is recorded even if describing its circuits fails
        self._describe(sub, args, kwargs)
        self._count_retry(sub)

    def _submit_failed(self, sub: Submission, args: tuple, kwargs: dict) -> None:
        try:
            self._describe(sub, args, kwargs)
        except Exception:  # noqa: BLE001 - the arguments the SDK rejected may not parse here either
            sub.runs = []
        self._count_retry(sub)
        self._record(sub, Outcome(FAILED))

    def _count_retry(self, sub: Submission) -> None:
        fingerprints = {r.fingerprint for r in sub.runs if r.fingerprint}
        with self._lock:
            retried = [f for f in fingerprints if f in self._failed]
            for f in retried:
                del self._failed[f]
        if retried:
            self.metrics.retries.labels(self.workload, sub.adapter.provider, sub.adapter.backend).inc()

    # --- when the result is in ---------------------------------------------------------------
    def _record(self, sub: Submission, outcome: Outcome) -> None:
        if outcome.status not in (OK, FAILED) or not sub.finish():
            return  # still running (a timed-out wait), or recorded already
        adapter = sub.adapter
        labels = (self.workload, adapter.provider, adapter.backend)
        now = time.time()
        duration = time.monotonic() - sub.started
        self.metrics.last_execution.labels(*labels).set(now)
        self.metrics.executions.labels(*labels, outcome.status).inc()
        if outcome.status == FAILED:
            with self._lock:
                for run in sub.runs:
                    if run.fingerprint:
                        _bounded_put(self._failed, run.fingerprint, None)
            for run in sub.runs or [CircuitRun(None, None)]:
                self._write_log(sub, run, now, duration, FAILED, None, None, None)
            return
        self.metrics.duration.labels(*labels).observe(duration)
        if len(outcome.counts) != len(sub.runs):
            raise RuntimeError(f"{len(outcome.counts)} results for {len(sub.runs)} circuits")
        shots = 0
        for run, counts in zip(sub.runs, outcome.counts):
            if counts is None:
                self._write_log(sub, run, now, duration, OK, None, None, None)
                continue
            shots += sum(counts.values())
            observed = distribution(counts)
            reference, kind = self._reference(sub, run)
            fidelity = run_to_run = None
            if reference is not None:
                fidelity = hellinger_fidelity(observed, reference)
                self.metrics.fidelity.labels(*labels, run.label).set(fidelity)
            if run.fingerprint and observed:
                key = (adapter.provider, adapter.backend, run.fingerprint)
                with self._lock:
                    previous = self._previous.get(key)
                    _bounded_put(self._previous, key, observed)
                if previous is not None:
                    run_to_run = hellinger_fidelity(observed, previous)
                    self.metrics.run_to_run.labels(*labels, run.label).set(run_to_run)
            self._write_log(sub, run, now, duration, OK, counts, (kind, fidelity), run_to_run)
        self.metrics.shots.labels(*labels).inc(shots)

    def _reference(self, sub: Submission, run: CircuitRun) -> tuple[dict[str, float] | None, str | None]:
        """(distribution, "expected" | "ideal") or (None, None). A malformed metadata["expected"]
        is the user's error: counted and warned about; a circuit beyond the ideal limit is not."""
        if run.circuit is None:
            return None, None
        try:
            expected = expected_distribution(run.circuit)
        except ReferenceUnavailable as exc:
            self._error("reference", exc, detail=str(exc))
            return None, None
        if expected is not None:
            return expected, "expected"
        if sub.reference != "ideal" or not run.fingerprint:
            return None, None
        with self._lock:
            if run.fingerprint in self._references:
                cached = self._references[run.fingerprint]
                return (cached, "ideal") if cached is not None else (None, None)
        try:
            ideal = ideal_distribution(run.circuit, self.ideal_max_qubits)
        except ReferenceUnavailable as exc:
            log.debug("no ideal reference for circuit", workload=self.workload, circuit=run.label, reason=str(exc))
            ideal = None
        with self._lock:
            _bounded_put(self._references, run.fingerprint, ideal)
        return (ideal, "ideal") if ideal is not None else (None, None)

    def _write_log(self, sub: Submission, run: CircuitRun, now: float, duration: float, status: str,
                   counts: dict | None, scored: tuple | None, run_to_run: float | None) -> None:
        execution_log = self._log
        if execution_log is None:
            return
        kind, fidelity = scored or (None, None)
        record = {
            "ts": iso(now), "workload": self.workload, "provider": sub.adapter.provider,
            "backend": sub.adapter.backend, "job_id": sub.job_id, "status": status, "circuit": run.label or None,
            "name": run.name, "fingerprint": run.fingerprint, "submitted_at": iso(sub.submitted_at),
            "duration_seconds": round(duration, 6), "calibration_time": iso(sub.calibration_time),
            "seed": sub.seed, "shots": sum(counts.values()) if counts is not None else None,
            "bit_order": "qiskit", "counts": counts, "reference": kind, "hellinger_fidelity": fidelity,
            "run_to_run_hellinger_fidelity": run_to_run,
        }
        try:
            execution_log.write(record)
        except Exception as exc:  # noqa: BLE001
            self._error("log", exc)

    # --- failures of our own -----------------------------------------------------------------
    def _guard(self, stage: str, fn: Callable, *args):
        """fn(*args), or None after counting and logging its failure."""
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - never the user's problem
            self._error(stage, exc)
            return None

    def _error(self, stage: str, exc: BaseException, detail: str | None = None) -> None:
        self.metrics.errors.labels(self.workload, stage).inc()
        # The first failure of a stage is a warning, repeats are debug: one bad circuit in a
        # loop must not flood the user's log. Only the error class unless the text is ours
        # (``detail``): SDK messages can quote credentials or input.
        with self._lock:
            first = stage not in self._warned
            self._warned.add(stage)
        fields = {"workload": self.workload, "stage": stage, "error": type(exc).__name__}
        if detail:
            fields["detail"] = detail
        (log.warning if first else log.debug)("instrumentation failed; the run is not affected", **fields)
