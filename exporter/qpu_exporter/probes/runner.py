"""Run probes: pick the target, design, reserve budget, execute, fit, record, publish.

One probe = one qubit set on one backend: a design from the current calibration
(rb.design), circuits (rb.circuits), one submission through ``Provider.run_circuits``
(retried on failure, each attempt paid for before it is sent), a fit (rb.fit), and one
probe record in the store with everything needed to re-run it exactly. Never two probes on
one backend at once: an in-process lock plus a lease row in the state file (so the CLI and
the exporter exclude each other too). Scheduled ticks run on daemon threads, so a probe in
flight never holds up polls or shutdown.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from ..logs import get_logger
from ..model import BackendStatus, CalibrationSnapshot
from ..providers.base import Provider, ProviderError
from ..store import Store, snapshot_from_dict, snapshot_to_dict
from .budget import ProbeBudget, clifford_seconds, estimate_usage_seconds, probe_cost_usd, readout_seconds
from .feed import COUNTERS, SKIP_REASONS, ProbeFeed, drift_samples
from .targets import ProbeTarget, basis_gates_of, check_target, targets_for

log = get_logger("qpu_exporter.probe")
# qiskit logs every transpiler pass at INFO; probes transpile small pieces often.
logging.getLogger("qiskit").setLevel(logging.WARNING)

# A crashed holder's lease expires this long after its last renewal. The lease is renewed
# before every attempt for this plus twice the provider's own wait limit (an attempt submits
# the RB circuits, then the agreement circuit), so a slow job never outlives it.
LEASE_SECONDS = 3600.0
RECORD_VERSION = 1

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class ProbeOutcome:
    target: ProbeTarget
    status: str  # ok | failed | skipped
    reason: str = ""
    epc: float = math.nan
    epc_stderr: float = math.nan
    gate_error: float | None = None
    gate_error_stderr: float | None = None
    shots: int = 0
    cost_usd: float = 0.0
    attempts: int = 0
    run_id: int | None = None
    seconds: float = 0.0
    design: dict = field(default_factory=dict)


def calibration_subset(snap: CalibrationSnapshot, qubits: tuple[int, ...]) -> CalibrationSnapshot:
    """The probed qubits' part of a snapshot: enough to rebuild the noise model and design."""
    wanted = set(qubits)
    return CalibrationSnapshot(
        snap.provider, snap.backend, snap.fetched_at, snap.calibrated_at,
        [q for q in snap.qubits if q.qubit in wanted],
        [g for g in snap.gates if set(g.qubits) <= wanted],
    )


def survival_of(counts: dict[str, int], n: int) -> tuple[float, int]:
    from ..rb.cli_fit import is_all_zeros_outcome

    total = sum(counts.values())
    zero = sum(v for k, v in counts.items() if is_all_zeros_outcome(k))
    return (zero / total if total else math.nan), total


class ProbeRunner:
    def __init__(
        self,
        providers: list[Provider],
        store: Store,
        probes_config,
        *,
        clock: Callable[[], float] = time.time,
        status_of: Callable[[Provider, str], BackendStatus | None] | None = None,
        calibration_of: Callable[[Provider, str], CalibrationSnapshot] | None = None,
        feed: ProbeFeed | None = None,
        on_probe_value: Callable[[str, str, str, float, float], None] | None = None,
        on_change: Callable[[], None] | None = None,
        new_seed: Callable[[], int] = lambda: secrets.randbits(62),  # recorded; tests fix it
        count: bool = True,
    ):
        self._new_seed = new_seed
        self.providers = {p.kind: p for p in providers}
        self.store = store
        self.cfg = probes_config
        self.clock = clock
        self.budget = ProbeBudget(store, probes_config.budget, clock)
        self.status_of = status_of or (lambda p, b: p.status(b))
        self.calibration_of = calibration_of or (lambda p, b: p.calibration(b))
        self.feed = feed or ProbeFeed()
        self.on_probe_value = on_probe_value
        self.on_change = on_change or (lambda: None)
        # The CLI shares the ledger and records but does not count: the probe counters count
        # the exporters' probes (the records of CLI probes are still published by them).
        self.count = count
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._intervals: dict[tuple[str, str], float] = {}  # scheduled probe interval per backend
        self._locks_guard = threading.Lock()
        # Long-lived worker threads, never one thread per probe: a thread that used qiskit's
        # native circuit code and exits while another thread builds circuits crashed the
        # process (segfault in QuantumCircuit.__init__, qiskit 2.6), so probe threads live as
        # long as the runner.
        self._pool = ThreadPoolExecutor(max_workers=probes_config.max_concurrent, thread_name_prefix="probe")
        self._pending: set[Future] = set()
        self._pending_guard = threading.Lock()
        self._stop = threading.Event()

    # --- bookkeeping -----------------------------------------------------------------------
    def _lock_of(self, provider: str, backend: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((provider, backend), threading.Lock())

    def _labels(self, provider: str, backend: str) -> dict[str, str]:
        return {"provider": provider, "backend": backend}

    def register_backend(self, provider: str, backend: str) -> None:
        """Known backends export zero counters, last success 0 and their budget from the start."""
        self.feed.add_backend((provider, backend))
        if self.count:
            labels = self._labels(provider, backend)
            self.store.add_counters(
                [(name, labels, 0.0) for name in COUNTERS]
                + [("qpu_probe_skipped_total", {**labels, "reason": r}, 0.0) for r in SKIP_REASONS]
            )
        self.refresh_budget(provider, backend)

    def refresh_budget(self, provider: str | None = None, backend: str | None = None) -> None:
        """Recompute qpu_budget_remaining_ratio (the rolling window moves on its own)."""
        keys = [(provider, backend)] if provider else list(self.feed.last_success)
        for p, b in keys:
            self.feed.set_remaining((p, b), self.budget.remaining_ratio(p, b))
        self.on_change()

    def skipped(self, provider: str, backend: str, reason: str, **detail) -> None:
        log.info("probe skipped", provider=provider, backend=backend, reason=reason, **detail)
        if self.count:
            self.store.add_counters([("qpu_probe_skipped_total", {**self._labels(provider, backend), "reason": reason}, 1.0)])
        self.on_change()

    # --- scheduling --------------------------------------------------------------------------
    def first_run_at(self, provider: Provider, backend: str, interval: float) -> float:
        """When a backend's first probe tick is due (Unix seconds). A restart does not re-probe
        early: the next probe comes one interval after the last one started, so a crash loop
        cannot spend the budget faster than the schedule."""
        self.register_backend(provider.kind, backend)
        self._intervals[(provider.kind, backend)] = interval
        last = self.store.last_probe_started(provider.kind, backend)
        soon = self.clock() + self.cfg.start_delay
        return soon if last is None else max(soon, last + interval)

    def trigger(self, provider: Provider, backend: str) -> None:
        """Scheduler entry point: returns at once; the probe runs on a daemon thread."""
        if self._stop.is_set():
            return
        if self._lock_of(provider.kind, backend).locked():
            self.skipped(provider.kind, backend, "busy")
            return
        with self._pending_guard:
            future = self._pool.submit(self._tick, provider, backend)
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future) -> None:
        with self._pending_guard:
            self._pending.discard(future)

    def _tick(self, provider: Provider, backend: str) -> None:
        try:
            if not self._stop.is_set():
                interval = self._intervals.get((provider.kind, backend))
                # Replicas on one database tick for the same backend; the first one probes.
                served = None if interval is None else self.clock() - interval / 2
                self.probe_backend(provider, backend, self.cfg.targets_per_tick, served_since=served)
        except Exception:  # noqa: BLE001 - a probe bug must not kill the scheduler
            log.exception("probe tick crashed", provider=provider.kind, backend=backend)

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._pending_guard:
            running = list(self._pending)
        wait(running, timeout=timeout)

    def next_targets(self, snap: CalibrationSnapshot, n: int) -> list[ProbeTarget]:
        """The next n targets round robin (the position is persisted in the state file)."""
        targets = targets_for(self.cfg, snap)
        if not targets:
            return []
        key = f"probe_rotation:{snap.provider}:{snap.backend}"
        pos = int(self.store.meta(key, "0") or 0)
        chosen = [targets[(pos + i) % len(targets)] for i in range(min(n, len(targets)))]
        self.store.set_meta(key, str((pos + len(chosen)) % len(targets)))
        return chosen

    # --- probing -----------------------------------------------------------------------------
    def probe_backend(self, provider: Provider, backend: str, n_targets: int = 1,
                      targets: list[ProbeTarget] | None = None, progress: Progress | None = None,
                      served_since: float | None = None) -> list[ProbeOutcome]:
        """Probe ``targets`` (default: the next n_targets in rotation) holding the backend.
        ``served_since`` marks a scheduled tick: it does nothing, and counts no skip, when
        another process (a replica on the same database, a CLI probe) holds the backend or
        started a probe of it after ``served_since``: that process serves the tick."""
        kind = provider.kind
        lock = self._lock_of(kind, backend)
        if not lock.acquire(blocking=False):
            self.skipped(kind, backend, "busy")
            return []
        try:
            if not self._hold_lease(provider, backend):
                if served_since is not None:  # a scheduled tick: the other process serves it
                    log.debug("probe tick served by another process", provider=kind, backend=backend)
                    return []
                self.skipped(kind, backend, "busy", detail="another_process")
                return []
            try:
                last = self.store.last_probe_started(kind, backend) if served_since is not None else None
                if last is not None and last > served_since:
                    log.debug("probe tick already served", provider=kind, backend=backend, started_at=last)
                    return []
                status = self.status_of(provider, backend)
                if status is not None and not status.operational:
                    self.skipped(kind, backend, "backend_down", status=status.status_message)
                    return []
                snap = self.calibration_of(provider, backend)
                if targets is None:
                    targets = self.next_targets(snap, n_targets)
                return [self.run_target(provider, t, snap, progress) for t in targets if not self._stop.is_set()]
            finally:
                self.store.release_probe_lease(kind, backend, self.holder)
        finally:
            lock.release()

    def _hold_lease(self, provider: Provider, backend: str) -> bool:
        """Take or renew the backend's probe lease; False when another live process holds it."""
        ttl = LEASE_SECONDS + 2 * provider.probe_wait_seconds()
        return self.store.acquire_probe_lease(provider.kind, backend, self.holder, self.clock(), ttl,
                                              holder_dead=lease_holder_dead)

    def run_target(self, provider: Provider, target: ProbeTarget, snap: CalibrationSnapshot,
                   progress: Progress | None = None) -> ProbeOutcome:
        """One probe. The caller holds the backend (probe_backend)."""
        from ..rb.calibration import expected_epc, expected_gate_error
        from ..rb.design import design_rb

        started = self.clock()
        t0 = time.monotonic()
        kind, backend = target.provider, target.backend
        problem = check_target(target, snap)
        if problem:
            return self._finish(target, started, t0, "failed", f"bad target: {problem}", {}, 0, 0.0, 0, snap)
        basis = basis_gates_of(snap)
        n = len(target.qubits)
        prior = expected_epc(snap, target.qubits, basis)
        gate_prior = expected_gate_error(snap, target.interleaved, target.qubits) if target.interleaved else None
        design = design_rb(
            n, prior, target_rel_precision=self.cfg.target_rel_precision, shot_budget=self.cfg.shots_per_probe,
            seed=self._new_seed(), min_shots=self.cfg.min_shots, max_circuits=self.cfg.max_circuits,
            max_length=self.cfg.max_length, interleaved_gate=target.interleaved,
            expected_gate_error=gate_prior if gate_prior and 0 < gate_prior < 0.5 else None,
        ).to_dict()
        agreement_shots = self.cfg.agreement_shots if n == 2 else 0
        record = {
            "version": RECORD_VERSION, "target": {"provider": kind, "backend": backend, "qubits": list(target.qubits),
                                                  "interleaved": target.interleaved},
            "design": design, "basis_gates": list(basis), "run_seed": self._new_seed(),
            "calibration_at": snap.calibrated_at, "calibration_fetched_at": snap.fetched_at,
            "calibration": snapshot_to_dict(calibration_subset(snap, target.qubits)),
            "agreement_shots": agreement_shots,
        }
        return self._execute(provider, target, snap, record, started, t0, progress)

    def _execute(self, provider: Provider, target: ProbeTarget, snap: CalibrationSnapshot, record: dict,
                 started: float, t0: float, progress: Progress | None) -> ProbeOutcome:
        kind, backend = target.provider, target.backend
        design = record["design"]
        basis = record["basis_gates"]
        from ..rb.circuits import mean_gates_per_clifford

        cliff_s = clifford_seconds(snap, target.qubits, basis, mean_gates_per_clifford(len(target.qubits), basis))
        agreement_shots = record["agreement_shots"]
        usage = estimate_usage_seconds(design, cliff_s, readout_seconds(snap, target.qubits), agreement_shots)
        per_circuit = [design["shots"]] * design["num_circuits"] + ([agreement_shots] if agreement_shots else [])
        shots = sum(per_circuit)
        usd = probe_cost_usd(provider, backend, usage, per_circuit)
        if usd is None:  # an unknown price: the USD caps could not hold, so nothing is spent
            self.skipped(kind, backend, "unpriced", qubits=target.qubits_label, shots=shots)
            return ProbeOutcome(target, "skipped", "unpriced: the provider cannot price this probe", design=design)
        record.update(estimated_usage_seconds=usage, shots=shots, cost_usd=usd)

        # Pay before generating anything: an exhausted budget costs no CPU.
        rid, cap = self.budget.reserve(kind, backend, shots, usd, f"probe {target.qubits_label} attempt 1")
        if rid is None:
            self.skipped(kind, backend, "budget", cap=cap, qubits=target.qubits_label, shots=shots, usd=round(usd, 2))
            self.refresh_budget(kind, backend)
            return ProbeOutcome(target, "skipped", f"budget: {cap} reached", shots=0, design=design)

        circuits = self._circuits(record, target, progress)
        record["sequences"] = [c.metadata() for c in circuits["rb"]]
        attempts, spent_shots, spent_usd = 1, shots, usd
        while True:
            if not self._hold_lease(provider, backend):  # only if a renewal came too late
                record["attempts"] = attempts
                return self._finish(target, started, t0, "failed", "another process took the backend's probe lease",
                                    record, spent_shots, spent_usd, attempts, snap)
            try:
                if progress:
                    progress("run", 0, 1)
                counts = provider.run_circuits(backend, [c.circuit for c in circuits["rb"]], design["shots"],
                                               record["run_seed"], snap)
                agreement = (provider.run_circuits(backend, [circuits["agreement"]], agreement_shots,
                                                   record["run_seed"] + 1, snap)[0] if agreement_shots else None)
                if progress:
                    progress("run", 1, 1)
                break
            except Exception as exc:  # noqa: BLE001 - any provider fault is a failed attempt
                kind_err = exc.kind if isinstance(exc, ProviderError) else "internal"
                log.warning("probe submission failed", provider=kind, backend=backend, qubits=target.qubits_label,
                            attempt=attempts, error_kind=kind_err, error=" ".join(str(exc).split())[:300])
                if attempts > self.cfg.retries or self._stop.is_set() or kind_err == "unsupported":
                    record["attempts"] = attempts
                    return self._finish(target, started, t0, "failed", f"submission failed ({kind_err}): {exc}",
                                        record, spent_shots, spent_usd, attempts, snap)
                rid, cap = self.budget.reserve(kind, backend, shots, usd, f"probe {target.qubits_label} attempt {attempts + 1}")
                if rid is None:
                    record["attempts"] = attempts
                    self.skipped(kind, backend, "budget", cap=cap, retry=True)
                    return self._finish(target, started, t0, "failed", f"submission failed and budget ({cap}) left no retry",
                                        record, spent_shots, spent_usd, attempts, snap)
                attempts += 1
                spent_shots += shots
                spent_usd += usd
        record["attempts"] = attempts
        for seq, c in zip(record["sequences"], counts):
            seq["counts"] = c
        if agreement is not None:
            record["agreement"] = {"fingerprint": _fingerprint(circuits["agreement"]), "counts": agreement,
                                   "shots": agreement_shots}
        result, reason = fit_record(record)
        if result is None:
            return self._finish(target, started, t0, "failed", f"fit failed: {reason}", record, spent_shots, spent_usd,
                                attempts, snap)
        record["result"] = result
        return self._finish(target, started, t0, "ok", "", record, spent_shots, spent_usd, attempts, snap)

    def _circuits(self, record: dict, target: ProbeTarget, progress: Progress | None) -> dict:
        from ..rb.circuits import rb_circuits

        from .agreement import bell_circuit

        design, basis = record["design"], record["basis_gates"]
        out = []
        total = sum(design["samples_per_length"]) * (2 if design["interleaved_gate"] else 1)
        for length, k in zip(design["lengths"], design["samples_per_length"]):
            # One length at a time (same circuits as one call: generation is a pure function of
            # seed, length and sample) so the CLI can show progress.
            out += rb_circuits(target.qubits, [length], [k], basis, design["seed"], design["interleaved_gate"])
            if progress:
                progress("generate", len(out), total)
        for c in out:
            c.circuit.metadata = {"physical_qubits": list(target.qubits), "fingerprint": c.fingerprint}
        agreement = bell_circuit(basis, target.qubits) if record["agreement_shots"] else None
        return {"rb": out, "agreement": agreement}

    def _finish(self, target: ProbeTarget, started: float, t0: float, status: str, reason: str, record: dict,
                shots: int, usd: float, attempts: int, snap: CalibrationSnapshot) -> ProbeOutcome:
        kind, backend = target.provider, target.backend
        finished = self.clock()
        labels = self._labels(kind, backend)
        inc = [("qpu_probe_runs_total", labels, 1.0), ("qpu_probe_shots_total", labels, float(shots))]
        if status != "ok":
            inc.append(("qpu_probe_failures_total", labels, 1.0))
        record = {**record, "status": status, "reason": reason}
        run_id = self.store.record_probe_run(
            kind, backend, target.qubits_label, target.interleaved or "", started, finished, status, reason, shots, usd,
            snap.calibrated_at, record, inc if self.count else (),
        )
        seconds = time.monotonic() - t0
        result = record.get("result") or {}
        out = ProbeOutcome(target, status, reason, result.get("epc", math.nan), result.get("epc_stderr", math.nan),
                           shots=shots, cost_usd=usd, attempts=attempts, run_id=run_id, seconds=seconds,
                           design=record.get("design", {}))
        if status == "ok":
            inter = result.get("interleaved")
            if inter:
                out.gate_error, out.gate_error_stderr = inter["gate_error"], inter["gate_error_stderr"]
            self.feed.on_result(kind, backend, target.qubits_label, finished, result,
                                (record.get("agreement") or {}).get("counts"))
            if self.on_probe_value:
                for series, value in drift_samples(target.qubits_label, result):
                    self.on_probe_value(kind, backend, series, value, finished)
            log.info("probe succeeded", provider=kind, backend=backend, qubits=target.qubits_label,
                     epc=float(f"{out.epc:.3g}"), epc_stderr=float(f"{out.epc_stderr:.2g}"), shots=shots,
                     usd=round(usd, 2), attempts=attempts, duration_seconds=round(seconds, 2), run_id=run_id)
        else:
            log.warning("probe failed", provider=kind, backend=backend, qubits=target.qubits_label,
                        reason=reason[:300], shots=shots, attempts=attempts, run_id=run_id)
        self.refresh_budget(kind, backend)
        return out

    # --- exact re-run --------------------------------------------------------------------------
    def rerun(self, run_id: int) -> dict:
        """Re-execute a stored probe with its design, seeds and calibration (no budget, no
        counters: a reproduction, not a probe). Returns fingerprints and counts."""
        row = self.store.probe_run(run_id)
        if row is None:
            raise KeyError(f"no probe run {run_id}")
        rec = row["record"]
        t = rec["target"]
        target = ProbeTarget(t["provider"], t["backend"], tuple(t["qubits"]), t["interleaved"])
        circuits = self._circuits(rec, target, None)
        snap = snapshot_from_dict(rec["calibration"])
        provider = self.providers[target.provider]
        counts = provider.run_circuits(target.backend, [c.circuit for c in circuits["rb"]], rec["design"]["shots"],
                                       rec["run_seed"], snap)
        return {"fingerprints": [c.fingerprint for c in circuits["rb"]], "counts": counts}


def _fingerprint(circuit) -> str:
    from ..rb.circuits import circuit_fingerprint

    return circuit_fingerprint(circuit, circuit.metadata["physical_qubits"])


def fit_record(record: dict) -> tuple[dict | None, str]:
    """Fit a probe record's counts: (result section, "") or (None, reason)."""
    from ..rb.fit import fit_interleaved_rb, fit_rb

    seqs = record["sequences"]
    n = record["design"]["num_qubits"]
    lengths, surv, shots, flags = [], [], [], []
    for s in seqs:
        y, total = survival_of(s["counts"], n)
        lengths.append(s["length"])
        surv.append(y)
        shots.append(total)
        flags.append(bool(s["interleaved"]))
    gate = record["design"].get("interleaved_gate")
    if gate:
        r = fit_interleaved_rb(lengths, surv, shots, flags, n)
        if not r.ok:
            return None, r.reason
        std = r.standard
        inter = {"gate": gate, **r.to_dict()}
        inter.pop("ok"), inter.pop("reason")
    else:
        std = fit_rb(lengths, surv, shots, n)
        if not std.ok:
            return None, std.reason
        inter = None
    out = {k: v for k, v in std.to_dict().items() if k not in ("ok", "reason")}
    if not (math.isfinite(out["epc"]) and math.isfinite(out["epc_stderr"])):
        return None, "fit returned a non-finite EPC"
    if inter:
        out["interleaved"] = inter
    return out, ""


def lease_holder_dead(holder: str) -> bool:
    """A lease left by a process of this host that no longer runs (killed, crashed) is void:
    without this a SIGKILL would block probes until the lease expired an hour later."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
