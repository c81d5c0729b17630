"""APScheduler jobs: poll -> validate -> store -> view (-> renderer).

One job per (backend, collector), run on a bounded thread pool, so one slow or failing
backend never holds up the others. Every provider call is bounded by
``schedule.poll_timeout``: a call that does not answer in time is abandoned (Python cannot
kill a thread; it is left to finish or hang on its own), the poll fails with error kind
``timeout`` and the next one runs on schedule. At most ``MAX_ABANDONED_CALLS`` abandoned calls
per provider may still be running; beyond that a poll fails at once with ``timeout`` without
starting another call, so a provider that hangs forever cannot pile up threads. A failing collector backs off exponentially with
jitter (capped), keeps its last good data in the view, and is visible through
``qpu_exporter_collector_*``. Every poll logs exactly one line with its outcome.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
import queue
from concurrent.futures import Future
from concurrent.futures import TimeoutError as CallTimeout
from dataclasses import dataclass, field, replace

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from .aggregates import job_increments, usage_increments
from .config import Config
from .logs import get_logger
from .providers.base import Provider, ProviderError
from .quality import validate_snapshot
from .sharding import Shard, parse_shard
from .store import StorageError, Store
from .view import CollectorHealth, FleetView
from .workloads import WorkloadBook

log = get_logger("qpu_exporter.poll")

# Jobs can finish out of order and providers index them by creation time: re-ask for a
# window before the newest finish we saw. The store deduplicates by job id.
JOBS_OVERLAP_SECONDS = 600.0
MAX_BACKOFF_FACTOR = 8  # a failing collector retries at most every 8 intervals
RETENTION_SECONDS = 14 * 86400.0
MAX_ABANDONED_CALLS = 2  # per provider: hung calls still running after their poll gave up


class CallThreads:
    """Long-lived daemon threads that run provider calls for the poll threads, so a call can
    be waited for with a timeout and abandoned. Threads are kept, not started per call (a
    thread that ran qiskit's native code and exits while another builds circuits has crashed
    the process), and are daemons, so a call that never returns cannot hold up exit. There
    are as many as calls ever ran at once: the scheduler's pool plus the abandoned calls
    (bounded by MAX_ABANDONED_CALLS per provider)."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        with self._lock:
            if self._idle:
                self._idle -= 1
            else:
                self._threads += 1
                threading.Thread(target=self._run, name=f"provider-call-{self._threads}", daemon=True).start()
        self._work.put((future, fn, args))
        return future

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting poll
                    future.set_exception(exc)
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        with self._lock:
            n = self._threads
        for _ in range(n):
            self._work.put(None)


@dataclass
class _Backoff:
    failures: int = 0
    next_attempt: float = 0.0


@dataclass
class Poller:
    """Runs the polls; the scheduler only decides when."""

    providers: list[Provider]
    store: Store
    view: FleetView
    clock: Callable[[], float] = time.time
    on_calibration: list[Callable] = field(default_factory=list)  # hooks, e.g. drift monitor
    intervals: dict[str, float] = field(default_factory=dict)  # collector -> poll interval
    shard: Shard | None = None  # poll only the backends of this shard (sharding.py)
    workloads: WorkloadBook | None = None  # resolves each new job's workload (config workloads:)
    timeout: float | None = None  # schedule.poll_timeout: bound of every provider call
    _abandoned: dict[str, int] = field(default_factory=dict)  # provider kind -> hung calls
    _calls: CallThreads = field(default_factory=lambda: CallThreads())
    _backoff: dict[tuple[str, str, str], _Backoff] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _rng: random.Random = field(default_factory=random.Random)

    # --- discovery ------------------------------------------------------------------------
    def discover(self, provider: Provider) -> list[str]:
        started = self.clock()
        key = (provider.kind, "", "discovery")
        try:
            infos = self._call(provider, provider.backends)
        except Exception as exc:  # noqa: BLE001 - any provider fault is a failed poll
            self._failed(key, started, exc)
            self.view.set_provider_failed(provider.kind, _safe_message(exc))
            return []
        if self.shard is not None:
            infos = [i for i in infos if self.shard.owns(i.provider, i.backend)]
        for info in infos:
            self.view.set_backend(info)
            try:
                cached = self.store.latest_calibration(info.provider, info.backend)
            except StorageError:
                cached = None  # the database is away: the first poll fills the view instead
            if cached is not None:  # serve the last good data at once after a restart
                self.view.set_calibration((info.provider, info.backend), cached)
        # A reload may have removed backends: stop serving what the provider no longer lists.
        self.view.retain_backends(provider.kind, {i.backend for i in infos})
        self._succeeded(key, started, {"backends": len(infos)})
        self.view.set_provider_failed(provider.kind, None)
        return [i.backend for i in infos]

    def _call(self, provider: Provider, fn, *args):
        """``fn(*args)`` bounded by ``timeout``; ProviderError('timeout') when it does not
        answer in time (the call is abandoned) or when too many earlier calls still hang."""
        if not self.timeout:
            return fn(*args)
        kind = provider.kind
        with self._lock:
            hung = self._abandoned.get(kind, 0)
            if hung >= MAX_ABANDONED_CALLS:
                raise ProviderError("timeout", f"{hung} earlier calls to the {kind} provider still have not "
                                    "answered; not starting another")
        future = self._calls.submit(fn, *args)
        try:
            return future.result(timeout=self.timeout)
        except CallTimeout:
            pass
        with self._lock:
            self._abandoned[kind] = self._abandoned.get(kind, 0) + 1

        def released(_future) -> None:
            with self._lock:
                self._abandoned[kind] -= 1

        future.add_done_callback(released)
        raise ProviderError("timeout", f"no answer within {self.timeout:g}s (schedule.poll_timeout); call abandoned")

    def close(self) -> None:
        """Let the call threads go once idle; hung ones stay hung (they are daemons)."""
        self._calls.close()

    # --- collectors -------------------------------------------------------------------------
    def poll_status(self, provider: Provider, backend: str) -> None:
        self._run(provider, backend, "status", self._status)

    def poll_calibration(self, provider: Provider, backend: str) -> None:
        self._run(provider, backend, "calibration", self._calibration)

    def poll_jobs(self, provider: Provider, backend: str) -> None:
        self._run(provider, backend, "jobs", self._jobs)

    def poll_usage(self, provider: Provider) -> None:
        """The account-level allowance (IBM instance usage); backend label empty."""
        self._run(provider, "", "usage", self._usage)

    def _usage(self, provider: Provider, _backend: str) -> dict:
        usage = self._call(provider, provider.instance_usage)
        if usage is None:
            return {"usage": None}
        self.view.set_usage(provider.kind, usage)
        return {"consumed_seconds": usage.get("consumed_seconds")}

    def _status(self, provider: Provider, backend: str) -> dict:
        st = self._call(provider, provider.status, backend)
        st = replace(st, window_open=self._call(provider, provider.availability_window_open, backend))
        self.view.set_status((provider.kind, backend), st)
        return {"operational": st.operational, "pending_jobs": st.pending_jobs}

    def _calibration(self, provider: Provider, backend: str) -> dict:
        raw = self._call(provider, provider.calibration, backend)
        snap, rejected = validate_snapshot(raw)
        # Memory first: a full or read-only disk must not stop the exporter serving fresh data.
        self.view.set_calibration((provider.kind, backend), snap)
        for hook in self.on_calibration:
            hook(snap)
        added = self._persist("calibration", self.store.record_calibration, snap)
        if rejected:
            self._persist("counters", self.store.add_counters, [
                ("qpu_data_quality_rejections_total", {"provider": provider.kind, "backend": backend, "check": c}, n)
                for c, n in rejected.items()
            ])
        return {"new_values": added, "rejected": sum(rejected.values())}

    def _jobs(self, provider: Provider, backend: str) -> dict:
        cursor = self.store.cursor(provider.kind, backend, "jobs")
        since = None if cursor is None else cursor - JOBS_OVERLAP_SECONDS
        if since is not None:
            # Reach back to jobs still waiting for final usage and to the oldest job the last
            # poll saw unfinished (persisted, so it holds across restarts).
            floors = (self.store.oldest_pending_usage(provider.kind, backend),
                      self.store.cursor(provider.kind, backend, "jobs_unfinished"))
            since = min([since, *(f for f in floors if f is not None)])
        jobs = self._call(provider, provider.jobs, backend, since)
        new = self._persist("jobs", self.store.record_jobs, jobs, job_increments, self.clock(), usage_increments,
                            self.workloads)
        if new is None:
            # Not recorded, so not counted, and the cursor stays: the next poll asks again.
            return {"jobs_seen": len(jobs), "state_write_failed": True}
        if jobs:
            newest = max(j.finished_at for j in jobs)
            if cursor is None or newest > cursor:
                self.store.set_cursor(provider.kind, backend, "jobs", newest)
        unfinished = provider.oldest_unfinished(backend)
        self.store.set_cursor(provider.kind, backend, "jobs_unfinished",
                              self.clock() if unfinished is None else unfinished)
        if new:
            self.view.touch()
        return {"jobs_seen": len(jobs), "jobs_new": len(new)}

    def _persist(self, what: str, fn, *args):
        """Run a store write; on a storage fault (disk full, read-only, I/O error) count it,
        log it and return None instead of failing the poll."""
        try:
            return fn(*args)
        except StorageError as exc:
            self.store.note_write_failure()
            self.view.touch()
            log.error("state write failed; serving from memory", what=what, error=str(exc))
            return None

    # --- bookkeeping ----------------------------------------------------------------------------
    def _run(self, provider: Provider, backend: str, collector: str, fn) -> None:
        key = (provider.kind, backend, collector)
        now = self.clock()
        with self._lock:
            bo = self._backoff.get(key)
            if bo is not None and now < bo.next_attempt:
                return
        started = self.clock()
        try:
            detail = fn(provider, backend)
        except Exception as exc:  # noqa: BLE001 - a poll must never take the exporter down
            self._failed(key, started, exc)
            return
        self._succeeded(key, started, detail)

    def _succeeded(self, key, started: float, detail: dict) -> None:
        now = self.clock()
        with self._lock:
            self._backoff.pop(key, None)
        self.view.set_health(key, CollectorHealth(True, now, now - started, now))
        log.info("poll succeeded", provider=key[0], backend=key[1], collector=key[2],
                 duration_seconds=round(now - started, 3), **detail)

    def _failed(self, key, started: float, exc: Exception) -> None:
        now = self.clock()
        kind = exc.kind if isinstance(exc, ProviderError) else "internal"
        message = _safe_message(exc)
        prev = self.view.copy().health.get(key)
        last_success = prev.last_success if prev else None
        self.view.set_health(key, CollectorHealth(False, last_success, now - started, now, kind, message))
        with self._lock:
            bo = self._backoff.setdefault(key, _Backoff())
            bo.failures += 1
            base = self.intervals.get(key[2], 60.0)
            factor = min(2 ** (bo.failures - 1), MAX_BACKOFF_FACTOR)
            # Full jitter on the extra wait, so many backends failing together spread out;
            # a provider's Retry-After is a floor, never shortened by the jitter.
            wait = base * (factor - 1) * self._rng.random()
            retry_after = getattr(exc, "retry_after", None)
            if retry_after:
                wait = max(wait, float(retry_after))
            bo.next_attempt = now + wait
        try:
            self.store.add_counters(
                [("qpu_exporter_collector_errors_total",
                  {"provider": key[0], "backend": key[1], "collector": key[2], "kind": kind}, 1.0)]
            )
        except Exception:  # noqa: BLE001 - counting an error must not raise another
            log.exception("could not persist error counter")
        log.warning("poll failed", provider=key[0], backend=key[1], collector=key[2],
                    duration_seconds=round(now - started, 3), error_kind=kind, error=message)


def _safe_message(exc: Exception) -> str:
    """One line, bounded. Provider errors are written never to carry credentials."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


class Scheduler:
    """Wires Poller methods to APScheduler interval jobs."""

    def __init__(self, poller: Poller, config: Config, probes=None):
        """``probes`` (a probes.runner.ProbeRunner, or None) is ticked every probe_interval per
        backend, starting at its ``first_run_at``; ``trigger`` returns at once."""
        self.poller = poller
        self.config = config
        self.probes = probes
        sch = config.schedule
        if config.shard is not None:
            poller.shard = parse_shard(config.shard)
        poller.intervals = {
            "status": sch.jobs_interval,
            "jobs": sch.jobs_interval,
            "calibration": sch.calibration_interval,
            "discovery": sch.calibration_interval,
            "usage": sch.calibration_interval,
        }
        self._sched = BackgroundScheduler(
            # Probes get their own executor: a probe tick never waits for, or holds up, a poll.
            executors={"default": ThreadPoolExecutor(max_workers=sch.max_concurrent_polls),
                       "probes": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone="UTC",
        )

    def _schedule_probe(self, provider: Provider, name: str) -> None:
        from datetime import datetime, timezone

        interval = self.config.schedule.probe_interval
        first = self.probes.first_run_at(provider, name, interval)
        self._sched.add_job(
            self.probes.trigger, "interval", seconds=interval, args=[provider, name],
            id=f"probe:{provider.kind}:{name}", replace_existing=True, executor="probes",
            next_run_time=datetime.fromtimestamp(first, timezone.utc),
        )

    def start(self) -> None:
        self._sched.start()
        for provider in self.poller.providers:
            self._sched.add_job(
                self._discover_and_schedule, args=[provider], id=f"discover:{provider.kind}",
                next_run_time=_now_dt(),
            )
        self.every(3600.0, lambda: self.poller.store.prune(time.time() - RETENTION_SECONDS), "prune")

    def every(self, seconds: float, fn, job_id: str) -> None:
        self._sched.add_job(fn, "interval", seconds=seconds, id=job_id, replace_existing=True)

    def _discover_and_schedule(self, provider: Provider) -> None:
        names = self.poller.discover(provider)
        if not names:
            # Retry discovery at the calibration interval until the provider answers.
            self._sched.add_job(
                self._discover_and_schedule, "date", args=[provider], id=f"discover:{provider.kind}",
                run_date=_now_dt(self.config.schedule.calibration_interval), replace_existing=True,
            )
            return
        sch = self.config.schedule
        plan = [
            ("status", self.poller.poll_status, sch.jobs_interval),
            ("calibration", self.poller.poll_calibration, sch.calibration_interval),
            ("jobs", self.poller.poll_jobs, sch.jobs_interval),
        ]
        if type(provider).instance_usage is not Provider.instance_usage:
            self._sched.add_job(
                self.poller.poll_usage, "interval", seconds=sch.calibration_interval, args=[provider],
                id=f"usage:{provider.kind}", replace_existing=True, next_run_time=_now_dt(),
            )
        for name in names:
            if self.probes is not None:
                self._schedule_probe(provider, name)
            for collector, fn, interval in plan:
                self._sched.add_job(
                    fn, "interval", seconds=interval, args=[provider, name],
                    id=f"{collector}:{provider.kind}:{name}", replace_existing=True, next_run_time=_now_dt(),
                )

    def shutdown(self, wait: bool = False) -> None:
        self._sched.shutdown(wait=wait)


def _now_dt(offset: float = 0.0):
    from datetime import datetime, timedelta, timezone

    return datetime.now(timezone.utc) + timedelta(seconds=offset)
