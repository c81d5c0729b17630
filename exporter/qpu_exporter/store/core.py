"""The exporter's persistent state, on SQLite (one file, the default) or PostgreSQL (shared by
replicas and shards), with the same code on both through SQLAlchemy Core.

Calibration history, job records, counter totals, poll cursors, the last snapshot of every
backend (so a restart serves the last good data at once), probe records, the probe budget
ledger, probe leases and drift-detector state. A job is counted in the same transaction that
records it, so after a crash a job is either recorded and counted or neither: counters never go
backwards and nothing is counted twice. Counters are written as increments in SQL and read back
in the same statement, so two writers of one counter (threads, or processes) never lose one
another's increments; the in-memory view moves forward only after the commit.

Every exporter writing to a database is an *instance* (docs/state.md): job records, counters,
cursors and detector state are its own, so each replica exports complete counters; budget
ledger, leases, probe records, history, the kept workload values and meta are shared.
Check-then-write sections (budget reservation, lease, probe record, keeping a workload value)
run in one transaction that holds a lock row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
BEGIN IMMEDIATE write lock), never as a read followed by a separate write.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Literal

from sqlalchemy import Connection, and_, delete, exists, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from ..logs import get_logger
from ..model import CalibrationSnapshot, JobRecord
from . import schema
from .engine import create, parse_target
from .errors import StateError, StorageError, one_line
from .snapshots import calibration_values, snapshot_from_dict, snapshot_to_dict
from .tables import (
    SHARED, calibration, counters, cursors, drift_state, instances, job_usage_unknown, jobs, latest, locks, meta,
    probe_ledger, probe_leases, probe_runs,
)
from .tables import workloads as workloads_table

log = get_logger(__name__)

DEFAULT_INSTANCE = "default"  # a SQLite exporter's name unless configured: the file is its own
# Counters of shared things: a probe run exists once, whoever ran it. Every replica exports the
# same totals (incremented by the process that recorded the run, read by all).
SHARED_COUNTERS = frozenset({"qpu_probe_runs_total", "qpu_probe_shots_total", "qpu_probe_failures_total"})

# The kept workload values in the order kept (values kept in one transaction: by name).
_KEPT_IN_ORDER = select(workloads_table.c.name).order_by(workloads_table.c.kept_at, workloads_table.c.name)

LabelKey = tuple[tuple[str, str], ...]
CounterIncrement = tuple[str, dict[str, str], float]
CounterKey = tuple[str, LabelKey]


def _label_key(labels: dict[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


def _labels_json(key: LabelKey) -> str:
    return json.dumps(key)  # the released store's spelling: rows written by it stay the same rows


def _label_key_of(text: str) -> LabelKey:
    return tuple(tuple(p) for p in json.loads(text))


def _backend_of(key: LabelKey) -> tuple[str | None, str | None]:
    d = dict(key)
    return d.get("provider"), d.get("backend")


class Store:
    def __init__(self, target: str | Path, *, instance: str | None = None, password: str | None = None):
        """``target``: a SQLite file path, or a ``postgresql://user@host:port/db`` URL.
        ``instance``: this exporter's name among those sharing the database (default: the
        host name on PostgreSQL, ``default`` on SQLite). ``password``: for PostgreSQL when
        neither the URL nor libpq's own sources (PGPASSWORD, password file) give one."""
        try:
            self.target, url_password = parse_target(target)
        except ValueError as exc:
            raise StateError(f"state_url: {exc}") from None
        self.kind = self.target.kind
        self.path = self.target.path  # None on PostgreSQL
        self.instance = instance or (DEFAULT_INSTANCE if self.kind == "sqlite" else socket.gethostname())
        # SQLite: one connection per process, one user at a time (as the released store).
        self._serial: contextlib.AbstractContextManager = (
            threading.Lock() if self.kind == "sqlite" else contextlib.nullcontext())
        self._mem = threading.Lock()  # the in-memory counters and cursors
        self.write_failures = 0
        self._counters: dict[CounterKey, float] = {}
        self._cursors: dict[tuple[str, str, str], float] = {}
        # This instance's jobs with usage pending: (provider, backend, job_id) -> created_at.
        self._pending: dict[tuple[str, str, str], float] = {}
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(f"state file {self.path}: {exc.strerror or exc}") from None
        self.engine = create(self.target, url_password or password)
        # The dialect's INSERT (ON CONFLICT); imported for the engine in use only.
        if self.kind == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        self._insert = insert
        self._compiled: dict[str, tuple[str, list[str] | None]] = {}  # _bulk_insert's statements
        self._claim: Connection | None = None  # claim_instance's session
        self._claim_wanted = False
        try:
            self._open()
        except StateError:
            self.engine.dispose()
            raise
        except SQLAlchemyError as exc:
            self.engine.dispose()
            if self.kind == "sqlite":
                raise StateError(
                    f"state file {self.path} is unusable ({one_line(exc)}); move it aside to start with empty "
                    f"state, or restore it from a backup"
                ) from None
            raise StateError(f"{self.target.what}: {one_line(exc)}") from None

    @classmethod
    def from_config(cls, config) -> Store:
        """The store a config names (state_url, else state_path) as its ``instance``; the
        PostgreSQL password from QPU_EXPORTER_STATE_PASSWORD when the URL has none (libpq reads
        PGPASSWORD and its password file itself)."""
        return cls(config.state_target(), instance=config.instance,
                   password=os.environ.get("QPU_EXPORTER_STATE_PASSWORD") or None)

    @property
    def display(self) -> str:
        """Where the state is, safe to log (never a password)."""
        return self.target.display

    def _open(self) -> None:
        with self._serial, self.engine.connect() as conn:
            if self.kind == "sqlite":
                with conn.begin():
                    check = conn.exec_driver_sql("PRAGMA quick_check").scalar()
                if check != "ok":
                    raise StateError(f"state file {self.path} is unusable ({check}); move it aside to start "
                                     f"with empty state, or restore it from a backup")
            conn.execution_options(qpu_write=True)
            with conn.begin():
                before, after = schema.upgrade(conn, self.target.what)
                now = time.time()
                conn.execute(self._insert(instances).values(instance=self.instance, first_seen=now, last_seen=now)
                             .on_conflict_do_update(index_elements=[instances.c.instance],
                                                    set_={"last_seen": now}))
                own = conn.execute(select(counters.c.name, counters.c.labels, counters.c.value)
                                   .where(counters.c.instance == self.instance)).all()
                shared = conn.execute(select(counters.c.name, counters.c.labels, counters.c.value)
                                      .where(counters.c.instance == SHARED)).all()
                for provider, backend, name, value in conn.execute(
                        select(cursors.c.provider, cursors.c.backend, cursors.c.name, cursors.c.value)
                        .where(cursors.c.instance == self.instance)):
                    self._cursors[(provider, backend, name)] = value
                self._load_pending_usage(conn)
        for name, labels, value in own:
            self._counters[(name, _label_key_of(labels))] = value
        # Shared counters of the backends this instance has exported before (a shard does not
        # export another shard's backends); others join when the runner registers them.
        mine = {_backend_of(key) for _, key in self._counters}
        for name, labels, value in shared:
            key = _label_key_of(labels)
            if _backend_of(key) in mine:
                self._counters[(name, key)] = value
        if before is None:  # a new state: nothing to tell
            log.debug("state created", state=self.display, revision=after)
        elif before != after:
            log.info("state schema upgraded", state=self.display, from_revision=before, to_revision=after)

    @contextlib.contextmanager
    def _tx(self, write: bool = False) -> Iterator[Connection]:
        """One transaction; a database fault becomes StorageError (one line, no parameters)."""
        with self._serial:
            try:
                with self.engine.connect() as conn:
                    if write:
                        conn.execution_options(qpu_write=True)
                    with conn.begin():
                        yield conn
            except SQLAlchemyError as exc:
                raise StorageError(one_line(exc)) from exc

    def claim_instance(self) -> None:
        """Refuse a second running exporter with this instance name on the database: its job
        records and counters would be this one's. PostgreSQL: a session advisory lock held on a
        connection of its own for the life of the store (released by the server when the process
        dies, however it dies). SQLite: the file is one exporter's; nothing to claim."""
        if self.kind != "postgresql":
            return
        self._claim_wanted = True
        try:
            conn = self.engine.connect()
            got = conn.execute(select(func.pg_try_advisory_lock(func.hashtextextended(
                f"qpu-exporter instance {self.instance}", 0)))).scalar_one()
            conn.commit()  # the lock is the session's, not the transaction's
        except SQLAlchemyError as exc:
            raise StateError(f"{self.target.what}: {one_line(exc)}") from None
        if not got:
            conn.close()
            raise StateError(
                f"{self.target.what}: instance {self.instance!r} is in use by another running exporter; give "
                f"each exporter its own instance name (instance, QPU_EXPORTER_INSTANCE)")
        self._claim = conn

    def keep_instance_claim(self) -> None:
        """Take the claim again when its session ended (the database restarted); periodic."""
        if not self._claim_wanted:
            return
        if self._claim is not None:
            try:
                self._claim.exec_driver_sql("SELECT 1")
                self._claim.commit()
                return
            except SQLAlchemyError:
                self._claim.invalidate()
                self._claim.close()
                self._claim = None
        try:
            self.claim_instance()
            log.info("instance claim taken again", instance=self.instance)
        except StateError as exc:  # database still away, or another exporter took the name
            log.error("instance claim not held", instance=self.instance, error=str(exc))

    @staticmethod
    def _lock(conn: Connection, name: str) -> None:
        """Hold ``locks.name`` until commit (PostgreSQL row lock; on SQLite the BEGIN IMMEDIATE
        write lock already excludes every other writer and FOR UPDATE renders as nothing)."""
        conn.execute(select(locks.c.name).where(locks.c.name == name).with_for_update())

    def close(self) -> None:
        self._claim_wanted = False
        if self._claim is not None:
            try:  # the claim ends now, not when the server notices the session's end
                self._claim.exec_driver_sql("SELECT pg_advisory_unlock_all()")
                self._claim.commit()
            except SQLAlchemyError:
                self._claim.invalidate()
            self._claim.close()
            self._claim = None
        with self._serial:
            try:
                if self.kind == "sqlite":
                    with self.engine.connect() as conn:
                        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            except SQLAlchemyError as exc:
                log.warning("state checkpoint at close failed", state=self.display, error=one_line(exc))
            finally:
                self.engine.dispose()

    # --- meta (shared) ---------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        with self._tx() as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        return default if value is None else value

    def set_meta(self, key: str, value: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(self._insert(meta).values(key=key, value=value)
                         .on_conflict_do_update(index_elements=[meta.c.key], set_={"value": value}))

    def meta_default(self, key: str, value: str) -> str:
        """Return the stored value, storing ``value`` first when there is none."""
        with self._tx(write=True) as conn:
            conn.execute(self._insert(meta).values(key=key, value=value).on_conflict_do_nothing())
            return conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar_one()

    # --- calibration (shared) ------------------------------------------------------------------
    def record_calibration(self, snap: CalibrationSnapshot) -> int:
        """Append values not stored yet (by measurement time) and remember the snapshot as the
        backend's latest. Returns the number of new history rows."""
        default_t = snap.calibrated_at if snap.calibrated_at is not None else snap.fetched_at
        rows = [
            {"provider": snap.provider, "backend": snap.backend, "target": target, "quantity": quantity,
             "measured_at": m.measured_at if m.measured_at is not None else default_t, "value": m.value,
             "fetched_at": snap.fetched_at}
            for target, quantity, m in calibration_values(snap)
        ]
        payload = json.dumps(snapshot_to_dict(snap), separators=(",", ":"))
        with self._tx(write=True) as conn:
            added = 0
            if rows:
                # Plain executemany (RETURNING would double the cost). sqlite3 sums its row
                # count; psycopg reports none, so count this fetch's rows before and after.
                this_fetch = (select(func.count()).select_from(calibration)
                              .where(calibration.c.provider == snap.provider, calibration.c.backend == snap.backend,
                                     calibration.c.fetched_at == snap.fetched_at))
                before = 0 if self.kind == "sqlite" else conn.execute(this_fetch).scalar_one()
                done = self._bulk_insert(conn, calibration, rows)
                added = done if self.kind == "sqlite" else conn.execute(this_fetch).scalar_one() - before
            conn.execute(self._insert(latest).values(provider=snap.provider, backend=snap.backend,
                                                     kind="calibration", payload=payload)
                         .on_conflict_do_update(index_elements=[latest.c.provider, latest.c.backend, latest.c.kind],
                                                set_={"payload": payload}))
        return added

    def latest_calibration(self, provider: str, backend: str) -> CalibrationSnapshot | None:
        with self._tx() as conn:
            payload = conn.execute(select(latest.c.payload).where(
                latest.c.provider == provider, latest.c.backend == backend, latest.c.kind == "calibration")).scalar()
        return None if payload is None else snapshot_from_dict(json.loads(payload))

    def calibration_history(
        self, provider: str | None = None, backend: str | None = None, since: float | None = None
    ) -> list[tuple[str, str, str, str, float, float]]:
        """(provider, backend, target, quantity, measured_at, value), oldest first."""
        c = calibration.c
        q = select(c.provider, c.backend, c.target, c.quantity, c.measured_at, c.value)
        if provider is not None:
            q = q.where(c.provider == provider)
        if backend is not None:
            q = q.where(c.backend == backend)
        if since is not None:
            q = q.where(c.measured_at >= since)
        with self._tx() as conn:
            return [tuple(r) for r in conn.execute(q.order_by(c.measured_at))]

    # --- jobs and counters (per instance) ---------------------------------------------------------
    def record_jobs(
        self, jobs_seen: Iterable[JobRecord], increments_of, now: float, settled_increments_of=None, workloads=None,
    ) -> list[JobRecord]:
        """Insert jobs this instance has not seen before and apply their counter increments in
        the same transaction. ``increments_of(job)`` gives [(counter, labels, delta)]. A record of
        a job stored with its usage pending whose usage is now final (``usage_pending`` False)
        settles it, once: its values are stored and ``settled_increments_of(job)`` applied.
        With ``workloads`` (a workloads.WorkloadBook) each new job's workload is resolved against
        the shared kept set, stored with it and passed on as ``increments_of(job, workload,
        rejected)``; values newly kept are written in the same transaction; a settling job's
        usage goes to the workload stored with it, ``settled_increments_of(job, workload)``.
        Returns the newly recorded jobs."""
        batch = list(jobs_seen)
        with self._tx(write=True) as conn:
            # Which of these jobs this instance has recorded: a poll re-asks an overlap window,
            # so most are, and only the new rows are written (one instance is one process, and
            # SQLite's write lock is held from the start: nothing changes between the two).
            known = self._known_jobs(conn, batch)
            new, seen_again = [], []
            for j in batch:
                key = (j.provider, j.backend, j.job_id)
                if key not in known:
                    known.add(key)  # a job listed twice in one answer is new once
                    new.append(j)
                elif settled_increments_of is not None and not j.usage_pending:
                    seen_again.append(j)
            # Before any row is written: the kept set's lock is then always the first lock a
            # transaction takes, so two transactions can never wait for each other through it.
            resolved, kept = (None, None) if workloads is None else self._resolve_workloads(conn, new, workloads, now)
            if new:
                self._bulk_insert(conn, jobs, [
                    {"instance": self.instance, "provider": j.provider, "backend": j.backend, "job_id": j.job_id,
                     "status": j.status, "created_at": j.created_at, "finished_at": j.finished_at,
                     "queue_seconds": j.queue_seconds, "execution_seconds": j.execution_seconds,
                     "usage_seconds": j.usage_seconds, "cost_usd": j.cost_usd, "error_class": j.error_class,
                     "recorded_at": now, "workload": None if resolved is None else resolved[i][0],
                     "counts_as_job": j.counts_as_job}
                    for i, j in enumerate(new)])
            if resolved is None:
                increments = [inc for j in new for inc in increments_of(j)]
            else:
                increments = [inc for j, (w, why) in zip(new, resolved) for inc in increments_of(j, w, why)]
            for j in new:
                self._note_unknown_usage(conn, j)
            with self._mem:
                pending_now = set(self._pending)
            settled = set()
            for j in seen_again:
                key = (j.provider, j.backend, j.job_id)
                if key not in pending_now or key in settled:
                    continue
                workload = self._settle(conn, j)
                if workload is False:
                    continue
                settled.add(key)
                increments.extend(settled_increments_of(j) if workloads is None else settled_increments_of(j, workload))
            pending = self._stage_counters(conn, increments)
        # Only after the commit succeeded does the in-memory view move forward.
        self._apply(pending)
        if kept is not None:
            workloads.adopt(kept)
        with self._mem:
            for j in new:
                if j.usage_pending:
                    self._pending[(j.provider, j.backend, j.job_id)] = j.created_at
            for key in settled:
                self._pending.pop(key, None)
        return new

    def _resolve_workloads(self, conn: Connection, new: list[JobRecord], book, now: float):
        """([(workload, rejection reason)] per new job, the kept set after this transaction or
        None when it was not read). The kept set is shared by every exporter on the database; it
        is read and extended only when the batch brings a value the book does not know as kept,
        under the lock row ``workloads`` (check-then-write in one transaction, never a read
        followed by a separate write), so replicas together never keep more than ``max``."""
        candidates = [book.candidate(j.tags) for j in new]
        wanted = book.wanted(candidates)
        if not wanted:
            return [book.label(c) for c in candidates], None
        self._lock(conn, "workloads")
        stored = list(conn.execute(_KEPT_IN_ORDER).scalars())
        add = book.admit(stored, wanted)
        if add:
            conn.execute(self._insert(workloads_table).on_conflict_do_nothing(),
                         [{"name": name, "kept_at": now} for name in add])
        kept = stored + add
        have = set(kept)
        return [book.label(c, have) for c in candidates], kept

    def kept_workloads(self) -> list[str]:
        """Workload values kept so far by any exporter on the database, in the order kept."""
        with self._tx() as conn:
            return list(conn.execute(_KEPT_IN_ORDER).scalars())

    def workload_jobs(self, since: float | None = None) -> list[tuple[str, str, float, float | None, str, bool]]:
        """(workload, status, finished_at, cost_usd, cost state, counts as job) of this instance's
        records with a workload, oldest first (records are kept for the retention period; the
        counters hold the all-time totals). Cost state: ``known``, ``pending`` (usage not final
        yet), ``unknown`` (never knowable) or ``billed_with`` (part of another record's charge)."""
        c, u = jobs.c, job_usage_unknown.c
        q = (select(c.workload, c.status, c.finished_at, c.cost_usd, u.state, c.counts_as_job)
             .select_from(jobs.outerjoin(job_usage_unknown, and_(
                 u.instance == c.instance, u.provider == c.provider, u.backend == c.backend, u.job_id == c.job_id)))
             .where(c.instance == self.instance, c.workload.is_not(None)))
        if since is not None:
            q = q.where(c.finished_at >= since)
        with self._tx() as conn:
            rows = conn.execute(q.order_by(c.finished_at)).all()
        return [(w, status, finished, cost, "known" if cost is not None else state or "billed_with", bool(is_job))
                for w, status, finished, cost, state, is_job in rows]

    def _note_unknown_usage(self, conn: Connection, j: JobRecord) -> None:
        if j.usage_pending or (j.cost_usd is None and not j.billed_with):
            values = {"state": "pending" if j.usage_pending else "unknown", "reason": j.cost_unknown_reason,
                      "created_at": j.created_at}
            conn.execute(self._insert(job_usage_unknown).values(
                instance=self.instance, provider=j.provider, backend=j.backend, job_id=j.job_id, **values,
            ).on_conflict_do_update(index_elements=[job_usage_unknown.c.instance, job_usage_unknown.c.provider,
                                                   job_usage_unknown.c.backend, job_usage_unknown.c.job_id],
                                    set_=values))

    def _load_pending_usage(self, conn: Connection) -> None:
        u = job_usage_unknown.c
        rows = conn.execute(select(u.provider, u.backend, u.job_id, u.created_at)
                            .where(u.instance == self.instance, u.state == "pending")).all()
        with self._mem:
            self._pending = {(p, b, j): t for p, b, j, t in rows}

    def _settle(self, conn: Connection, j: JobRecord) -> str | None | Literal[False]:
        """Store the final usage of a job recorded as pending and return the workload stored
        with it (None: none); False when it was not pending (settled before, or never pending):
        a job's usage is counted at most once."""
        u = job_usage_unknown.c
        gone = conn.execute(delete(job_usage_unknown).where(
            u.instance == self.instance, u.provider == j.provider, u.backend == j.backend, u.job_id == j.job_id,
            u.state == "pending")).rowcount
        if gone != 1:
            return False
        workload = conn.execute(update(jobs).where(jobs.c.instance == self.instance, jobs.c.provider == j.provider,
                                                   jobs.c.backend == j.backend, jobs.c.job_id == j.job_id)
                                .values(usage_seconds=j.usage_seconds, cost_usd=j.cost_usd)
                                .returning(jobs.c.workload)).scalar()
        self._note_unknown_usage(conn, j)
        return workload

    def oldest_pending_usage(self, provider: str, backend: str) -> float | None:
        """Creation time of this instance's oldest job whose usage is still pending: job
        listings must reach back to it until it settles. From memory (this instance is the
        only writer of its pending state), so a poll needs no read when the database is away."""
        with self._mem:
            times = [t for (p, b, _j), t in self._pending.items() if p == provider and b == backend]
        return min(times) if times else None

    def _bulk_insert(self, conn: Connection, table, rows: list[dict]) -> int:
        """INSERT ... ON CONFLICT DO NOTHING of many rows as one driver executemany: SQLAlchemy's
        per-row parameter processing would cost more than the database does for thousands of
        calibration values. The SQL is the Core statement's, compiled once per dialect.
        Returns the driver's row count (sqlite3 sums it; psycopg gives -1)."""
        sql = self._compiled.get(table.name)
        if sql is None:
            compiled = self._insert(table).on_conflict_do_nothing().compile(dialect=conn.dialect)
            sql = self._compiled[table.name] = (str(compiled), compiled.positiontup if compiled.positional else None)
        text_, order = sql
        params = rows if order is None else [tuple(r[k] for k in order) for r in rows]
        return conn.exec_driver_sql(text_, params).rowcount

    def _known_jobs(self, conn: Connection, batch: list[JobRecord]) -> set[tuple[str, str, str]]:
        by_backend: dict[tuple[str, str], list[str]] = {}
        for j in batch:
            by_backend.setdefault((j.provider, j.backend), []).append(j.job_id)
        known = set()
        for (provider, backend), ids in by_backend.items():
            for i in range(0, len(ids), 500):
                known.update((provider, backend, job_id) for job_id in conn.execute(
                    select(jobs.c.job_id).where(jobs.c.instance == self.instance, jobs.c.provider == provider,
                                                jobs.c.backend == backend, jobs.c.job_id.in_(ids[i:i + 500]))).scalars())
        return known

    def _stage_counters(self, conn: Connection, increments: Iterable[CounterIncrement]) -> dict[CounterKey, float]:
        """Add counter increments inside the caller's transaction; returns the new totals, which
        the caller applies to the in-memory view once the commit succeeded."""
        summed: dict[CounterKey, float] = {}
        for name, labels, delta in increments:
            key = (name, _label_key(labels))
            summed[key] = summed.get(key, 0.0) + float(delta)
        if not summed:
            return {}
        deltas: dict[tuple[str, str, str], float] = {}
        keys: dict[tuple[str, str, str], CounterKey] = {}
        for (name, label_key), delta in summed.items():
            row = (SHARED if name in SHARED_COUNTERS else self.instance, name, _labels_json(label_key))
            deltas[row] = delta
            keys[row] = (name, label_key)
        stmt = self._insert(counters)
        stmt = stmt.on_conflict_do_update(
            index_elements=[counters.c.instance, counters.c.name, counters.c.labels],
            set_={"value": counters.c.value + stmt.excluded.value},
        ).returning(counters.c.instance, counters.c.name, counters.c.labels, counters.c.value)
        result = conn.execute(stmt, [{"instance": i, "name": n, "labels": lab, "value": d}
                                     for (i, n, lab), d in deltas.items()])
        return {keys[(i, n, lab)]: float(value) for i, n, lab, value in result}

    def _apply(self, totals: dict[CounterKey, float]) -> bool:
        """Move the in-memory counters forward to committed totals (never backwards: a total
        read back by an earlier transaction may arrive after a later one's)."""
        changed = False
        with self._mem:
            for key, value in totals.items():
                if value > self._counters.get(key, float("-inf")):
                    self._counters[key] = value
                    changed = True
        return changed

    def add_counters(self, increments: Iterable[CounterIncrement]) -> None:
        with self._tx(write=True) as conn:
            pending = self._stage_counters(conn, increments)
        self._apply(pending)

    def counters(self) -> dict[CounterKey, float]:
        with self._mem:
            out = dict(self._counters)
            # Kept in memory only: when writes fail, this is the one number that cannot be saved.
            out[("qpu_exporter_state_write_failures_total", ())] = float(self.write_failures)
        return out

    def refresh_shared_counters(self) -> bool:
        """Read the shared counters (probe runs, shots, failures) other processes advanced, for
        the keys this process exports. True when a value moved."""
        with self._mem:
            wanted = {key for key in self._counters if key[0] in SHARED_COUNTERS}
        if not wanted:
            return False
        with self._tx() as conn:
            rows = conn.execute(select(counters.c.name, counters.c.labels, counters.c.value)
                                .where(counters.c.instance == SHARED)).all()
        totals = {}
        for name, labels, value in rows:
            key = (name, _label_key_of(labels))
            if key in wanted:
                totals[key] = value
        return self._apply(totals)

    def note_write_failure(self) -> None:
        with self._mem:
            self.write_failures += 1

    def job_ids(self, provider: str, backend: str) -> set[str]:
        """Job ids this instance has recorded for a backend."""
        with self._tx() as conn:
            return set(conn.execute(select(jobs.c.job_id).where(
                jobs.c.instance == self.instance, jobs.c.provider == provider, jobs.c.backend == backend)).scalars())

    def job_count(self) -> int:
        with self._tx() as conn:
            return conn.execute(select(func.count()).select_from(jobs).where(jobs.c.instance == self.instance)).scalar_one()

    # --- cursors (per instance; read from memory, so a poll needs no read when the database is away)
    def cursor(self, provider: str, backend: str, name: str) -> float | None:
        with self._mem:
            return self._cursors.get((provider, backend, name))

    def set_cursor(self, provider: str, backend: str, name: str, value: float) -> None:
        with self._tx(write=True) as conn:
            conn.execute(self._insert(cursors).values(instance=self.instance, provider=provider, backend=backend,
                                                      name=name, value=value)
                         .on_conflict_do_update(index_elements=[cursors.c.instance, cursors.c.provider,
                                                                cursors.c.backend, cursors.c.name],
                                                set_={"value": value}))
        with self._mem:
            self._cursors[(provider, backend, name)] = value

    # --- probes: records, budget ledger, leases (shared) ------------------------------------------
    def reserve_probe_budget(
        self, provider: str, backend: str, shots: int, usd: float, now: float, since: float,
        caps: tuple[float | None, float | None, float | None, float | None], note: str = "",
    ) -> tuple[int | None, str]:
        """Atomically reserve (shots, usd) unless that would exceed a cap over reservations made
        after ``since`` by any process on this database. ``caps`` = (backend shots, backend usd,
        global shots, global usd), None = no cap. Returns (reservation id, "") or (None, which
        cap was hit)."""
        with self._tx(write=True) as conn:
            self._lock(conn, "probe_ledger")
            b_shots, b_usd, g_shots, g_usd = self._spent(conn, provider, backend, since)
            checks = (("shots_per_day", b_shots + shots, caps[0]), ("usd_per_day", b_usd + usd, caps[1]),
                      ("global_shots_per_day", g_shots + shots, caps[2]), ("global_usd_per_day", g_usd + usd, caps[3]))
            for name, total, cap in checks:
                if cap is not None and total > cap + 1e-9:
                    return None, name
            rid = conn.execute(probe_ledger.insert().values(
                provider=provider, backend=backend, reserved_at=now, shots=int(shots), usd=float(usd), note=note,
            ).returning(probe_ledger.c.id)).scalar_one()
            return rid, ""

    @staticmethod
    def _spent(conn: Connection, provider: str, backend: str, since: float) -> tuple[float, float, float, float]:
        c = probe_ledger.c
        totals = select(func.coalesce(func.sum(c.shots), 0), func.coalesce(func.sum(c.usd), 0.0))
        b = conn.execute(totals.where(c.provider == provider, c.backend == backend, c.reserved_at > since)).one()
        g = conn.execute(totals.where(c.reserved_at > since)).one()
        return float(b[0]), float(b[1]), float(g[0]), float(g[1])  # PostgreSQL sums BIGINT as NUMERIC

    def probe_budget_used(self, provider: str, backend: str, since: float) -> tuple[float, float, float, float]:
        """(backend shots, backend usd, global shots, global usd) reserved after ``since``."""
        with self._tx() as conn:
            return self._spent(conn, provider, backend, since)

    def acquire_probe_lease(self, provider: str, backend: str, holder: str, now: float, ttl: float,
                            holder_dead: Callable[[str], bool] = lambda holder: False) -> bool:
        """Take or renew the backend's probe lease unless another live holder has an unexpired
        one (any process on this database)."""
        c = probe_leases.c
        with self._tx(write=True) as conn:
            self._lock(conn, "probe_leases")
            row = conn.execute(select(c.holder, c.expires_at).where(c.provider == provider, c.backend == backend)).first()
            if row is not None and row.holder != holder and row.expires_at > now and not holder_dead(row.holder):
                return False
            conn.execute(self._insert(probe_leases).values(provider=provider, backend=backend, holder=holder,
                                                           expires_at=now + ttl)
                         .on_conflict_do_update(index_elements=[c.provider, c.backend],
                                                set_={"holder": holder, "expires_at": now + ttl}))
            return True

    def renew_probe_lease(self, provider: str, backend: str, holder: str, now: float, ttl: float) -> bool:
        """Extend a lease ``holder`` still holds (a heartbeat); False when it has lost it."""
        c = probe_leases.c
        with self._tx(write=True) as conn:
            done = conn.execute(update(probe_leases).where(c.provider == provider, c.backend == backend,
                                                           c.holder == holder).values(expires_at=now + ttl))
            return done.rowcount == 1

    def release_probe_lease(self, provider: str, backend: str, holder: str) -> None:
        c = probe_leases.c
        with self._tx(write=True) as conn:
            conn.execute(delete(probe_leases).where(c.provider == provider, c.backend == backend, c.holder == holder))

    def record_probe_run(
        self, provider: str, backend: str, qubits: str, interleaved: str, started_at: float, finished_at: float,
        status: str, reason: str, shots: int, cost_usd: float, calibration_at: float | None, record: dict,
        increments: Iterable[CounterIncrement] = (),
    ) -> int:
        """Store a probe attempt and apply its counter increments in the same transaction."""
        payload = json.dumps(record, separators=(",", ":"))
        with self._tx(write=True) as conn:
            # Records commit in id order, so other processes can follow them by id (probe_runs_after).
            self._lock(conn, "probe_runs")
            run_id = conn.execute(probe_runs.insert().values(
                provider=provider, backend=backend, qubits=qubits, interleaved=interleaved, started_at=started_at,
                finished_at=finished_at, status=status, reason=reason, shots=int(shots), cost_usd=float(cost_usd),
                calibration_at=calibration_at, record=payload,
            ).returning(probe_runs.c.id)).scalar_one()
            pending = self._stage_counters(conn, increments)
        self._apply(pending)
        return run_id

    @staticmethod
    def _run_dict(row) -> dict:
        out = dict(row._mapping)
        if "record" in out:
            out["record"] = json.loads(out["record"])
        return out

    def probe_run(self, run_id: int) -> dict | None:
        """One stored probe attempt: its columns plus the decoded ``record``."""
        with self._tx() as conn:
            row = conn.execute(select(probe_runs).where(probe_runs.c.id == run_id)).first()
        return None if row is None else self._run_dict(row)

    def probe_runs(self, provider: str | None = None, backend: str | None = None,
                   status: str | None = None, limit: int = 100) -> list[dict]:
        """Latest probe attempts first (without the record payload)."""
        c = probe_runs.c
        q = select(*(col for col in probe_runs.columns if col.name != "record"))
        for col, val in ((c.provider, provider), (c.backend, backend), (c.status, status)):
            if val is not None:
                q = q.where(col == val)
        with self._tx() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(c.id.desc()).limit(limit))]

    def latest_probe_results(self) -> list[dict]:
        """The newest successful probe per (provider, backend, qubits, interleaved), with record."""
        c = probe_runs.c
        newest = (select(func.max(c.id)).where(c.status == "ok")
                  .group_by(c.provider, c.backend, c.qubits, c.interleaved))
        with self._tx() as conn:
            rows = conn.execute(select(probe_runs).where(c.id.in_(newest)).order_by(c.id)).all()
        return [self._run_dict(r) for r in rows]

    def probe_runs_after(self, run_id: int, limit: int = 500) -> list[dict]:
        """Probe attempts recorded after ``run_id`` (any process), oldest first, with record."""
        with self._tx() as conn:
            rows = conn.execute(select(probe_runs).where(probe_runs.c.id > run_id)
                                .order_by(probe_runs.c.id).limit(limit)).all()
        return [self._run_dict(r) for r in rows]

    def last_probe_run_id(self) -> int:
        with self._tx() as conn:
            return conn.execute(select(func.coalesce(func.max(probe_runs.c.id), 0))).scalar_one()

    def last_probe_started(self, provider: str, backend: str) -> float | None:
        c = probe_runs.c
        with self._tx() as conn:
            return conn.execute(select(func.max(c.started_at)).where(c.provider == provider, c.backend == backend)).scalar()

    # --- drift-detector state (per instance) ---------------------------------------------------
    def save_drift_state(self, payload: str) -> None:
        now = time.time()
        with self._tx(write=True) as conn:
            conn.execute(self._insert(drift_state).values(instance=self.instance, saved_at=now, payload=payload)
                         .on_conflict_do_update(index_elements=[drift_state.c.instance],
                                                set_={"saved_at": now, "payload": payload}))

    def load_drift_state(self) -> tuple[str, bool] | None:
        """(payload, own): this instance's saved detector state, else the most recently saved
        one of another instance (a new replica starts from a warmed-up baseline), else None."""
        c = drift_state.c
        with self._tx() as conn:
            own = conn.execute(select(c.payload).where(c.instance == self.instance)).scalar()
            if own is not None:
                return own, True
            other = conn.execute(select(c.payload).order_by(c.saved_at.desc()).limit(1)).scalar()
        return None if other is None else (other, False)

    # --- housekeeping ------------------------------------------------------------------------
    def prune(self, older_than: float) -> int:
        """Drop history rows fetched before ``older_than``, and everything of instances not
        seen since then (replaced pods). Counters of live instances are kept forever."""
        now = time.time()
        with self._tx(write=True) as conn:
            conn.execute(update(instances).where(instances.c.instance == self.instance).values(last_seen=now))
            a = conn.execute(delete(calibration).where(calibration.c.fetched_at < older_than)).rowcount
            b = conn.execute(delete(jobs).where(jobs.c.recorded_at < older_than)).rowcount
            u = job_usage_unknown.c
            conn.execute(delete(job_usage_unknown).where(~exists().where(
                jobs.c.instance == u.instance, jobs.c.provider == u.provider, jobs.c.backend == u.backend,
                jobs.c.job_id == u.job_id)))
            gone = select(instances.c.instance).where(instances.c.last_seen < older_than,
                                                      instances.c.instance != self.instance)
            for table in (counters, cursors, drift_state, jobs, job_usage_unknown):
                conn.execute(delete(table).where(and_(table.c.instance.in_(gone), table.c.instance != SHARED)))
            conn.execute(delete(instances).where(instances.c.last_seen < older_than,
                                                 instances.c.instance != self.instance))
        with self._tx() as conn:  # pending jobs pruned with their records are no longer awaited
            self._load_pending_usage(conn)
        return a + b


