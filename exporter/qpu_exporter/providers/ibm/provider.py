"""IBM Quantum (kind: ibm) through qiskit-ibm-runtime.

The SDK authenticates (IAM API key -> bearer token, refreshed as needed), resolves the
instance CRN to its regional endpoint and retries transport errors; we use its
authenticated ``RuntimeClient`` (``service._active_api_client``) to read the raw JSON of
each endpoint rather than the SDK's object layer, because:

* ``IBMBackend.properties()`` shifts non-UTC timestamps by their offset (qiskit-ibm-runtime
  0.51); the raw ``/properties`` payload goes to ``parse_properties``, which
  keeps offsets and per-metric dates;
* ``RuntimeJobV2.status()`` makes one ``GET /jobs/{id}`` per job; the list endpoint
  already carries each job's state (and its tags, read for workloads: docs/workloads.md),
  so one paged ``GET /jobs`` serves hundreds of jobs.

``RuntimeClient`` is private API; if a future SDK drops a method we use, polls fail with
``unavailable`` and a message naming it (pin-tested against 0.51).

Probe circuits (``run_circuits``) go through the SDK's object layer instead: each circuit
is re-addressed onto its ``metadata["physical_qubits"]`` in a circuit as wide as the
device (an ISA circuit: no transpiler pass runs, so barriers and every gate stay as the
RB generator wrote them), submitted as one ``SamplerV2`` job in job mode (POST /jobs,
tagged ``qpu-exporter-probe`` and with a tag unique to the attempt), polled (GET
/jobs/{id}) until final or ``probe_timeout`` (then cancelled: nobody would read it), and
decoded from GET /jobs/{id}/results. A submission that fails after it may have reached IBM
(a read timeout, a 5xx) is followed by one lookup of the attempt's tag, and any job IBM
created anyway is cancelled: the runner is about to retry, and an orphan would spend QPU
time nobody reads.

Requests per poll (N backends, M jobs finished since the last poll, P = 100 per page):
status 1 per backend; calibration 1 per backend; jobs 1 + ceil(M/P) per backend plus one
``/jobs/{id}/metrics`` per *newly* finished job and per job whose usage is still pending
(capped by ``max_job_metrics_per_poll``; final records are cached, never re-read), plus one
``/sessions/{id}`` per session seen until it is closed; discovery once: 1 + N
(configurations), plus the SDK's start-up (IAM token, Global Search, Global Catalog,
/backends).

Usage and cost (``billing.py``): job and batch mode bill each job's quantum time, session
mode the session's active wall-clock time (one billing record per session); usage still
``pending`` is re-read until final, for at most ``usage_settle_timeout``; the plan in
``billing`` gives the price, and a price it does not give is counted as unknown.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ...logs import get_logger
from ...model import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_FAILED,
    BackendInfo,
    BackendStatus,
    CalibrationSnapshot,
    JobRecord,
    bounded_tags,
    durations_from_timestamps,
    parse_timestamp,
)
from ..base import Provider, ProviderError
from ..fake_snapshots import processor_name
from ..http import classify_exception, provider_error, redact
from ..listing import ListingWindow
from . import billing
from .config import IbmProviderConfig
from .errors import _FINAL_STATES, RAN_TOO_LONG_CODE, _reason_code, error_class
from .properties import parse_properties

log = get_logger("qpu_exporter.providers.ibm")

TOKEN_ENV = "QISKIT_IBM_TOKEN"
PROBE_JOB_TAG = "qpu-exporter-probe"  # on every probe job, so it can be told apart in job lists
ATTEMPT_TAG_PREFIX = "qpu-exporter-attempt-"  # plus a random id: finds a job whose POST failed
JOBS_PAGE_SIZE = 100
RECORD_CACHE_SIZE = 20000  # finished jobs remembered, so overlapping windows cost no metrics calls

_KEY_VALUE_TAG = re.compile(r"([^:=]*)[:=](.*)", re.DOTALL)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def job_tags(tags: Any) -> tuple[tuple[str, str], ...]:
    """A job's tags (the list's ``tags``, free strings) as (key, value) pairs: "key:value" or
    "key=value", split at the first ':' or '='; a tag without either is not a key/value tag."""
    pairs = []
    for tag in tags if isinstance(tags, list) else ():
        m = _KEY_VALUE_TAG.match(tag) if isinstance(tag, str) else None
        if m:
            pairs.append((m.group(1).strip(), m.group(2)))
    return bounded_tags(pairs)


def read_token(config: IbmProviderConfig, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if config.token_file is not None:
        try:
            token = Path(config.token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise provider_error("auth", f"cannot read IBM token file {config.token_file}: {exc.strerror or 'error'}") from None
        if token:
            return token
        raise provider_error("auth", f"IBM token file {config.token_file} is empty")
    token = (env.get(TOKEN_ENV) or "").strip()
    if not token:
        raise provider_error("auth", f"no IBM token: set {TOKEN_ENV} or token_file")
    return token


def isa_circuit(circuit: Any, width: int) -> Any:
    """``circuit`` re-addressed onto its ``metadata["physical_qubits"]`` in a circuit of
    ``width`` qubits (the device's), instruction by instruction: no transpiler pass, so
    nothing is merged, cancelled or re-synthesised, and barriers stay. The gates must
    already be the device's (the SDK's ISA check rejects anything else)."""
    from qiskit import QuantumCircuit, QuantumRegister
    from qiskit.circuit import CircuitInstruction

    physical = [int(q) for q in (circuit.metadata or {}).get("physical_qubits", ())]
    if len(physical) != circuit.num_qubits or len(set(physical)) != len(physical):
        raise provider_error("invalid_input", f"circuit {circuit.name!r}: metadata['physical_qubits'] must name "
                                              f"{circuit.num_qubits} distinct qubit(s), got {physical}")
    if any(not 0 <= q < width for q in physical):
        raise provider_error("invalid_input", f"circuit {circuit.name!r}: qubits {physical} outside the device's {width}")
    out = QuantumCircuit(QuantumRegister(width, "q"), *circuit.cregs, name=circuit.name,
                         global_phase=circuit.global_phase, metadata=dict(circuit.metadata or {}))
    registered = set(out.clbits)
    loose = [b for b in circuit.clbits if b not in registered]
    if loose:
        out.add_bits(loose)
    where = {q: out.qubits[physical[i]] for i, q in enumerate(circuit.qubits)}
    for inst in circuit.data:
        out._append(CircuitInstruction(inst.operation, tuple(where[q] for q in inst.qubits), inst.clbits))
    return out


def counts_from_result(result: Any, expected: int, shots: int, operation: str) -> list[dict[str, int]]:
    """Counts per pub (all classical registers joined, qiskit bit order) from a decoded
    SamplerV2 ``PrimitiveResult``; anything else, or a pub without ``shots`` samples, is
    malformed: the fit must never see a partial or foreign result."""
    from qiskit.primitives.containers import PrimitiveResult

    if not isinstance(result, PrimitiveResult):
        raise provider_error("malformed", f"{operation}: not a sampler result")
    if len(result) != expected:
        raise provider_error("malformed", f"{operation}: {len(result)} results for {expected} circuits")
    out = []
    for i, pub in enumerate(result):
        try:
            counts = {str(k): int(v) for k, v in pub.join_data().get_counts().items()}
        except (AttributeError, TypeError, ValueError):
            raise provider_error("malformed", f"{operation}: result {i} holds no measured bits") from None
        if sum(counts.values()) != shots:
            raise provider_error("malformed", f"{operation}: result {i} has {sum(counts.values())} shots, expected {shots}")
        out.append(counts)
    return out


class IbmProvider(Provider):
    kind = "ibm"

    def __init__(
        self,
        config: IbmProviderConfig,
        *,
        clock: Callable[[], float] = time.time,
        environ: dict[str, str] | None = None,
    ):
        self.config = config
        self.clock = clock
        self._environ = environ
        self._token: str | None = None
        self._service: Any = None
        self._lock = threading.Lock()
        self._infos: list[BackendInfo] | None = None
        self._jobs_state: dict[str, ListingWindow] = {}
        self._records: OrderedDict[str, JobRecord] = OrderedDict()
        self._sessions: dict[str, dict] = {}  # session id -> details, once closed (final)
        self._session_modes: dict[str, bool] = {}  # session id -> session mode (else batch)
        self._sdk_backends: dict[str, Any] = {}  # name -> IBMBackend (probe submissions)

    def probe_wait_seconds(self) -> float:
        return self.config.probe_timeout

    # --- connection ---------------------------------------------------------------------------
    def _client(self) -> Any:
        """The SDK's authenticated RuntimeClient; the service is built on first use so a bad
        token is a failed poll, not a crash at start-up."""
        with self._lock:
            if self._service is None:
                self._token = read_token(self.config, self._environ)
                self._service = self._connect(self._token)
            client = getattr(self._service, "_active_api_client", None)
        if client is None:
            raise provider_error("unavailable", "qiskit-ibm-runtime has no _active_api_client (unsupported version)")
        return client

    def _connect(self, token: str) -> Any:
        from qiskit_ibm_runtime import QiskitRuntimeService

        box: dict[str, Any] = {}

        def build() -> None:
            try:
                box["service"] = QiskitRuntimeService(
                    channel=self.config.channel, token=token, instance=self.config.instance, url=self.config.url,
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                box["error"] = exc

        # Start-up talks to IAM, Global Search and Global Catalog through clients whose
        # timeouts we cannot set: bound the whole thing instead.
        worker = threading.Thread(target=build, name="ibm-connect", daemon=True)
        worker.start()
        deadline = self.config.connect_timeout + 3 * self.config.request_timeout
        worker.join(deadline)
        if worker.is_alive():
            raise provider_error("timeout", f"connecting to IBM Quantum took longer than {deadline:g} s")
        if "error" in box:
            raise self._fault(box["error"], "connect")
        service = box["service"]
        for client in list(getattr(service, "_api_clients", {}).values()) + [getattr(service, "_active_api_client", None)]:
            if client is not None:
                self._tune(client)
        return service

    def _tune(self, client: Any) -> None:
        """Bound every call: the SDK's default read timeout is None (wait forever) and it
        retries 5xx five times; the scheduler's backoff is the better place for patience."""
        session = getattr(client, "_session", None)
        if session is None:
            return
        session._timeout = (self.config.connect_timeout, self.config.request_timeout)
        if not getattr(session, "_qpu_exporter_bounded", False):
            # POST /jobs passes its own 900 s read timeout, overriding the session's: cap
            # explicit timeouts too, so a probe submission cannot hang past request_timeout.
            request, bound = session.request, session._timeout

            def bounded_request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
                if kwargs.get("timeout") is not None:
                    kwargs["timeout"] = bound
                return request(method, url, *args, **kwargs)

            session.request = bounded_request
            session._qpu_exporter_bounded = True
        try:
            from requests.adapters import HTTPAdapter
            from urllib3.util.retry import Retry

            retry = Retry(
                total=self.config.retries, connect=self.config.retries, read=0, backoff_factor=0.5,
                status_forcelist=(500, 502, 504, 520, 521, 522, 524), allowed_methods=frozenset({"GET"}),
                respect_retry_after_header=False, raise_on_status=False,
            )
            adapter = HTTPAdapter(max_retries=retry)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        except ImportError:  # pragma: no cover - both ship with requests
            pass
        tm = getattr(getattr(session, "auth", None), "tm", None)
        if tm is not None and hasattr(tm, "set_http_config"):
            tm.set_http_config({"timeout": self.config.request_timeout})

    def _fault(self, exc: BaseException, operation: str) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        name = type(exc).__name__
        if name == "IBMInputValueError" and "instance" in str(exc):
            err = provider_error("auth", f"{operation}: the token has no access to the configured instance")
        elif name in ("IBMNotAuthorizedError", "InvalidAccountError", "IBMAccountError"):
            err = classify_exception(exc, operation)
            if err.kind in ("unavailable", "malformed"):
                err = provider_error("auth", f"{operation}: IBM rejected the credentials")
        else:
            err = classify_exception(exc, operation)
        err.args = (redact(str(err), [self._token]),)
        return err

    def _call(self, operation: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """One SDK RuntimeClient call with every fault mapped to a ProviderError."""
        client = self._client()
        fn = getattr(client, method, None)
        if fn is None:
            raise provider_error("unavailable", f"{operation}: qiskit-ibm-runtime has no RuntimeClient.{method}")
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every vendor fault becomes a ProviderError
            raise self._fault(exc, operation) from None

    # --- Provider interface ----------------------------------------------------------------------
    def backends(self) -> list[BackendInfo]:
        if self._infos is not None:
            return list(self._infos)
        listed = self._call("list backends", "list_backends")
        if not isinstance(listed, list):
            raise provider_error("malformed", "list backends: expected a list of devices")
        names = [str(d["name"]) for d in listed if isinstance(d, dict) and d.get("name")]
        if self.config.backends is not None:
            missing = sorted(set(self.config.backends) - set(names))
            if missing:
                log.warning("configured IBM backends not visible to the instance", backends=",".join(missing))
            names = [n for n in self.config.backends if n in names]
        infos = []
        for name in names:
            conf = self._call(f"configuration of {name}", "backend_configuration", name)
            try:
                num_qubits = int(conf.get("n_qubits") or conf.get("num_qubits") or 0)
            except (AttributeError, TypeError, ValueError):
                raise provider_error("malformed", f"configuration of {name}: no qubit count") from None
            infos.append(BackendInfo(self.kind, name, num_qubits, processor_name(conf)))
        self._infos = infos
        return list(infos)

    def status(self, backend: str) -> BackendStatus:
        raw = self._call(f"status of {backend}", "backend_status", backend)
        try:
            return BackendStatus(
                operational=bool(raw["operational"]),
                pending_jobs=max(0, int(raw.get("pending_jobs") or 0)),
                status_message=str(raw.get("status_msg") or "")[:200],
                fetched_at=self.clock(),
            )
        except (KeyError, TypeError, ValueError):
            raise provider_error("malformed", f"status of {backend}: unexpected payload") from None

    def calibration(self, backend: str) -> CalibrationSnapshot:
        payload = self._call(f"properties of {backend}", "backend_properties", backend)
        if not isinstance(payload, dict) or not payload:
            raise provider_error("unavailable", f"properties of {backend}: the backend publishes no properties")
        snap, dropped = parse_properties(payload, provider=self.kind, backend=backend, fetched_at=self.clock())
        if dropped:
            log.warning("calibration values with unknown units dropped", backend=backend, count=dropped)
            snap.rejected["unknown_unit"] = dropped  # counted in qpu_data_quality_rejections_total
        return snap

    def jobs(self, backend: str, since: float | None) -> list[JobRecord]:
        now = self.clock()
        state = self._jobs_state.setdefault(backend, ListingWindow())
        oldest_pending = self._oldest_pending_created(backend)
        floor = state.floor(now, since, self.config.jobs_lookback)

        records: list[JobRecord] = []
        budget = self.config.max_job_metrics_per_poll
        deferred_floor: float | None = None
        sessions: dict[str, list[JobRecord]] = {}  # session-mode jobs listed, by session
        for entry in self._final_jobs(backend, floor):
            job_id = str(entry.get("id") or "")
            if not job_id:
                raise provider_error("malformed", f"jobs of {backend}: a job without an id")
            record = self._records.get(job_id)
            if record is None:
                metrics = None
                if self.config.max_job_metrics_per_poll > 0:
                    if budget <= 0:
                        # Not returned incomplete: picked up by the next poll (floor kept below it).
                        created = parse_timestamp(entry.get("created"))
                        if created is not None:
                            deferred_floor = created if deferred_floor is None else min(deferred_floor, created)
                        continue
                    budget -= 1
                    metrics = self._call(f"metrics of job {job_id}", "job_metadata", job_id)
                record = self._record(backend, entry, metrics if isinstance(metrics, dict) else None, now)
                if record is None:
                    continue
                if not record.usage_pending:  # a pending one is read again next poll
                    self._remember(record)
            if record.billed_with:
                sessions.setdefault(record.billed_with.removeprefix("session:"), []).append(record)
            records.append(record)
        records += [self._session_charge(backend, sid, jobs, now) for sid, jobs in sessions.items()]
        state.listed(oldest_pending, deferred_floor)
        return records

    def oldest_unfinished(self, backend: str) -> float | None:
        state = self._jobs_state.get(backend)
        return None if state is None else state.oldest_unfinished

    def probe_cost_usd(self, backend, usage_seconds, shots_per_circuit):
        """Probes run in job mode: their quantum time at the plan's rate (None: unknown)."""
        return billing.probe_cost(usage_seconds, self.config.billing)

    # --- instance usage ----------------------------------------------------------------------------
    def instance_usage(self) -> dict:
        """The instance's QPU-time allowance: ``consumed_seconds``, ``limit_seconds``
        (None when the plan has no limit), ``remaining_seconds``, ``limit_reached``,
        ``period_start``/``period_end`` (Unix seconds or None). One GET /instances/usage."""
        raw = self._call("instance usage", "cloud_usage")
        if not isinstance(raw, dict):
            raise provider_error("malformed", "instance usage: expected an object")
        consumed = _number(raw.get("usage_consumed_seconds"))
        limit = _number(raw.get("usage_limit_seconds"))
        if limit is None:
            limit = _number(raw.get("usage_allocation_seconds"))
        remaining = _number(raw.get("usage_remaining_seconds"))
        if remaining is None and limit is not None and consumed is not None:
            remaining = max(0.0, limit - consumed)
        # The period as the API serves it (and qiskit-ibm-runtime's fake client): an object
        # usage_period {start_time, end_time}.
        period = raw.get("usage_period") if isinstance(raw.get("usage_period"), dict) else {}
        try:
            start, end = parse_timestamp(period.get("start_time")), parse_timestamp(period.get("end_time"))
        except (TypeError, ValueError):
            raise provider_error("malformed", "instance usage: unreadable usage_period") from None
        return {
            "consumed_seconds": consumed,  # None when not reported: absent, never 0
            "limit_seconds": limit,
            "remaining_seconds": remaining,
            "limit_reached": bool(raw.get("usage_limit_reached", False)),
            "period_start": start,
            "period_end": end,
        }

    # --- probe execution -----------------------------------------------------------------------
    def run_circuits(self, backend, circuits, shots, seed, calibration=None):
        """Run probe circuits as one SamplerV2 job (job mode) on the device qubits named by
        each circuit's ``metadata["physical_qubits"]``; counts per circuit in input order,
        qiskit bit order. Blocks until the job is final, at most ``probe_timeout`` (then the
        job is cancelled and this raises ``timeout``). ``seed`` and ``calibration`` do not
        apply to hardware. Failed/cancelled jobs raise ``job_failed``/``job_cancelled``."""
        if not circuits:
            return []
        self._client()  # connects (and authenticates) on first use
        device = self._sdk_backend(backend)
        try:
            width = int(device.num_qubits)  # builds the target: GET /properties on first use
        except Exception as exc:  # noqa: BLE001
            raise self._fault(exc, f"target of {backend}") from None
        isa = [isa_circuit(c, width) for c in circuits]
        job = self._submit(backend, device, isa, shots)
        job_id = str(job.job_id())
        # The wait for a submitted job; connecting and submitting are bounded by the
        # request timeouts.
        self._await_final(job, job_id, backend, time.monotonic() + self.config.probe_timeout)
        try:
            result = job.result()
        except Exception as exc:  # noqa: BLE001
            raise self._fault(exc, f"result of probe job {job_id}") from None
        return counts_from_result(result, len(circuits), shots, f"result of probe job {job_id}")

    def _sdk_backend(self, backend: str) -> Any:
        """The SDK's IBMBackend (its target validates our circuits before they are sent)."""
        device = self._sdk_backends.get(backend)
        if device is None:
            try:
                device = self._service.backend(backend)
            except Exception as exc:  # noqa: BLE001
                if type(exc).__name__ == "QiskitBackendNotFoundError":
                    raise provider_error("unavailable", f"no IBM backend named {backend!r} for this instance") from None
                raise self._fault(exc, f"backend {backend}") from None
            self._sdk_backends[backend] = device
        return device

    def _submit(self, backend: str, device: Any, isa: list, shots: int) -> Any:
        from qiskit_ibm_runtime import SamplerV2

        operation = f"submit probe job to {backend}"
        attempt_tag = ATTEMPT_TAG_PREFIX + uuid.uuid4().hex[:16]
        try:
            # Default options: no dynamical decoupling, no twirling: RB must see the raw gates.
            sampler = SamplerV2(mode=device, options={"environment": {"job_tags": [PROBE_JOB_TAG, attempt_tag]}})
            return sampler.run(isa, shots=int(shots))
        except Exception as exc:  # noqa: BLE001
            # ISA and faulty-qubit checks run in the SDK before anything is sent: our input
            # is wrong, so a retry cannot help. Their text names gates and qubits only.
            if isinstance(exc, ValueError) and not (type(exc).__name__ == "IBMInputValueError" and "instance" in str(exc)):
                first = " ".join(str(exc).split(". ")[0].split())[:200]
                raise provider_error("invalid_input", redact(f"{operation}: {first}", [self._token])) from None
            err = self._fault(exc, operation)
        if err.kind != "auth":  # the request may have reached IBM and created the job
            self._cancel_lost_jobs(backend, attempt_tag)
        raise err

    def _cancel_lost_jobs(self, backend: str, attempt_tag: str) -> None:
        """Cancel queued or running jobs of a submission whose response was lost (best effort)."""
        try:
            page = self._call(f"jobs tagged {attempt_tag}", "jobs_get", limit=10, backend_name=backend,
                              pending=True, job_tags=[attempt_tag])
            jobs = page.get("jobs") if isinstance(page, dict) else None
            if not isinstance(jobs, list):
                raise provider_error("malformed", f"jobs tagged {attempt_tag}: no job list")
        except ProviderError as err:
            log.warning("could not check for a probe job left by a failed submission", backend=backend,
                        tag=attempt_tag, error_kind=err.kind)
            return
        # IBM filters by tag; where a listed job shows its tags they are checked too, so a
        # server that ignored the filter can never make us cancel somebody else's job.
        ours = [j for j in jobs if isinstance(j, dict) and j.get("id")
                and (not isinstance(j.get("tags"), list) or attempt_tag in j["tags"])]
        for job_id in [str(j["id"]) for j in ours]:
            try:
                self._call(f"cancel probe job {job_id}", "job_cancel", job_id)
                log.warning("cancelled a probe job whose submission failed", backend=backend, job=job_id)
            except ProviderError as err:
                log.warning("could not cancel a probe job whose submission failed", backend=backend, job=job_id,
                            error_kind=err.kind)

    def _await_final(self, job: Any, job_id: str, backend: str, deadline: float) -> None:
        timeout = max(0.0, deadline - time.monotonic())
        try:
            job.wait_for_final_state(timeout=timeout, poll_interval=self.config.probe_poll_interval)
        except Exception as exc:  # noqa: BLE001
            if type(exc).__name__ != "RuntimeJobTimeoutError":
                raise self._fault(exc, f"state of probe job {job_id}") from None
            self._cancel(job, job_id, backend)
            raise provider_error(
                "timeout", f"probe job {job_id} on {backend} not finished within probe_timeout "
                f"{self.config.probe_timeout:g} s; cancelled",
            ) from None
        status = str(getattr(job.status(), "name", job.status())).upper()  # final: cached, no request
        if status in ("ERROR", "FAILED"):
            code = _reason_code({"reason_code": getattr(job, "_reason_code", None)})
            # The class and numeric code only: IBM's reason text can quote the submitted program.
            raise provider_error(
                "job_failed", f"probe job {job_id} on {backend} failed: {error_class(JOB_FAILED, code)}"
                + ("" if code is None else f" (reason code {code})"),
            )
        if status in ("CANCELLED", "CANCELED"):
            raise provider_error("job_cancelled", f"probe job {job_id} on {backend} was cancelled")

    def _cancel(self, job: Any, job_id: str, backend: str) -> None:
        try:
            job.cancel()
        except Exception as exc:  # noqa: BLE001 - best effort; the timeout is what we report
            log.warning("could not cancel timed-out probe job", backend=backend, job=job_id,
                        error_kind=self._fault(exc, "cancel").kind)

    def close(self) -> None:
        service, self._service = self._service, None
        for client in list(getattr(service, "_api_clients", {}).values()) if service is not None else []:
            session = getattr(client, "_session", None)
            if session is not None:
                session.close()

    # --- jobs helpers ----------------------------------------------------------------------------------
    def _oldest_pending_created(self, backend: str) -> float | None:
        """Creation time of the oldest queued/running job (one request: ascending, limit 1)."""
        page = self._call(
            f"pending jobs of {backend}", "jobs_get", limit=1, backend_name=backend, pending=True, descending=False,
        )
        jobs = page.get("jobs") if isinstance(page, dict) else None
        if not isinstance(jobs, list):
            raise provider_error("malformed", f"pending jobs of {backend}: no job list")
        return parse_timestamp(jobs[0].get("created")) if jobs and isinstance(jobs[0], dict) else None

    def _final_jobs(self, backend: str, floor: float) -> list[dict]:
        after = datetime.fromtimestamp(floor, tz=timezone.utc)
        out: list[dict] = []
        offset = 0
        for _ in range(self.config.max_job_pages):
            page = self._call(
                f"jobs of {backend}", "jobs_get", limit=JOBS_PAGE_SIZE, skip=offset, backend_name=backend,
                pending=False, created_after=after, descending=False,
            )
            jobs = page.get("jobs") if isinstance(page, dict) else None
            if not isinstance(jobs, list):
                raise provider_error("malformed", f"jobs of {backend}: no job list")
            out.extend(j for j in jobs if isinstance(j, dict))
            offset += len(jobs)
            count = page.get("count")
            if not jobs or (isinstance(count, int) and offset >= count) or len(jobs) < JOBS_PAGE_SIZE:
                return out
        log.warning("job listing truncated at max_job_pages", backend=backend, pages=self.config.max_job_pages)
        return out

    def _record(self, backend: str, entry: dict, metrics: dict | None, now: float) -> JobRecord | None:
        state = entry.get("state") if isinstance(entry.get("state"), dict) else {}
        raw_status = str(state.get("status") or entry.get("status") or "").strip().upper()
        status = _FINAL_STATES.get(raw_status)
        if status is None:
            return None
        code = _reason_code(state)
        if status == JOB_CANCELLED and code == RAN_TOO_LONG_CODE:
            status = JOB_FAILED
        stamps = (metrics or {}).get("timestamps") or {}
        try:
            created = parse_timestamp(stamps.get("created")) or parse_timestamp(entry.get("created"))
            running = parse_timestamp(stamps.get("running"))
            finished = parse_timestamp(stamps.get("finished")) or parse_timestamp(entry.get("ended"))
        except (TypeError, ValueError):
            raise provider_error("malformed", f"jobs of {backend}: unreadable timestamp") from None
        if created is None:
            raise provider_error("malformed", f"jobs of {backend}: a job without a creation time")
        if finished is None:
            finished = now  # no end time published: we saw it final by now (upper bound)
        queue, execution = durations_from_timestamps(created, running, finished)
        job = JobRecord(
            provider=self.kind, backend=backend, job_id=str(entry["id"]), status=status,
            created_at=created, finished_at=finished, queue_seconds=queue, execution_seconds=execution,
            usage_seconds=None, cost_usd=None, error_class=error_class(status, code),
            tags=job_tags(entry.get("tags")),
        )
        sid = billing.session_id_of(entry)
        if sid is not None and self._session_mode(sid):
            # Session mode bills the session's active time, once: see _session_charge.
            return replace(job, billed_with=f"session:{sid}")
        # Job and batch mode bill the job's own quantum time.
        usage, final = billing.job_usage(metrics)
        expired = now - finished > self.config.usage_settle_timeout
        charge = billing.charge(usage, final, self.config.billing, expired=expired, read=metrics is not None)
        return replace(job, usage_seconds=charge.usage_seconds, cost_usd=charge.cost_usd,
                       cost_unknown_reason=charge.reason, usage_pending=charge.pending)

    def _session_mode(self, session_id: str) -> bool:
        """Whether a session id is a session-mode session (else a batch); asked once each."""
        mode = self._session_modes.get(session_id)
        if mode is None:
            mode = self._session_modes[session_id] = billing.is_session_mode(self._session_details(session_id))
        return mode

    def _session_details(self, session_id: str) -> dict:
        """GET /sessions/{id} (mode, state, elapsed_time); kept once the session is closed."""
        cached = self._sessions.get(session_id)
        if cached is not None:
            return cached
        details = self._call(f"session {session_id}", "session_details", session_id)
        if not isinstance(details, dict):
            raise provider_error("malformed", f"session {session_id}: expected an object")
        if billing.session_usage(details)[1]:
            self._sessions[session_id] = details
        return details

    def _session_charge(self, backend: str, session_id: str, jobs: list[JobRecord], now: float) -> JobRecord:
        """A session-mode session as one billing record (not a job): its active wall-clock
        time at the plan's rate once it is closed; pending until then, for at most
        usage_settle_timeout after its newest listed job finished. Created at its oldest
        listed job, so the listing floor keeps reaching its jobs while it is pending."""
        details = self._session_details(session_id)
        usage, final = billing.session_usage(details)
        expired = now - max(j.finished_at for j in jobs) > self.config.usage_settle_timeout
        charge = billing.charge(usage, final, self.config.billing, expired=expired)
        try:
            closed = parse_timestamp(details.get("closed_at"))
        except (TypeError, ValueError):
            closed = None
        return JobRecord(
            provider=self.kind, backend=backend, job_id=f"session:{session_id}", status=JOB_DONE,
            created_at=min(j.created_at for j in jobs), finished_at=closed or max(j.finished_at for j in jobs),
            queue_seconds=None, execution_seconds=None, usage_seconds=charge.usage_seconds, cost_usd=charge.cost_usd,
            cost_unknown_reason=charge.reason, usage_pending=charge.pending, counts_as_job=False,
            # A session has no tags of its own (GET /sessions/{id} returns none, see IBM's Qiskit
            # Runtime REST API reference, Sessions): its charge counts under workload "untagged".
        )

    def _remember(self, record: JobRecord) -> None:
        self._records[record.job_id] = record
        while len(self._records) > RECORD_CACHE_SIZE:
            self._records.popitem(last=False)
