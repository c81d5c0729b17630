"""SQLite persistence: the exporter's only persistent state.

One file in WAL mode holds calibration history, job records, counter totals, poll cursors
and the last snapshot of every backend (so a restart serves the last good data at once).
A job is counted in the same transaction that records it, so after a crash a job is either
recorded and counted or neither: counters never go backwards and nothing is counted twice.
All access goes through one connection guarded by a lock; SQLite serialises writers anyway
and the volumes (a poll every few seconds at most) make that lock uncontended.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from .model import CalibrationSnapshot, GateCalibration, JobRecord, Measurement, QubitCalibration

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calibration (
    provider TEXT NOT NULL, backend TEXT NOT NULL, target TEXT NOT NULL, quantity TEXT NOT NULL,
    measured_at REAL NOT NULL, value REAL NOT NULL, fetched_at REAL NOT NULL,
    PRIMARY KEY (provider, backend, target, quantity, measured_at)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS calibration_fetched ON calibration (fetched_at);
CREATE TABLE IF NOT EXISTS jobs (
    provider TEXT NOT NULL, backend TEXT NOT NULL, job_id TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, finished_at REAL NOT NULL, queue_seconds REAL, execution_seconds REAL,
    usage_seconds REAL NOT NULL, cost_usd REAL NOT NULL, error_class TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (provider, backend, job_id)
);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL, PRIMARY KEY (name, labels)
);
CREATE TABLE IF NOT EXISTS cursors (
    provider TEXT NOT NULL, backend TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (provider, backend, name)
);
CREATE TABLE IF NOT EXISTS latest (
    provider TEXT NOT NULL, backend TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (provider, backend, kind)
);
"""

# Probes (additive tables: older state files gain them on open, no version bump).
# probe_runs: one row per probe attempt, with everything needed to re-run it exactly.
# probe_ledger: budget reservations; a reservation is spend, whatever became of the submission.
# probe_leases: at most one probe per backend at a time, across processes (exporter and CLI).
_SCHEMA += """
CREATE TABLE IF NOT EXISTS probe_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, provider TEXT NOT NULL, backend TEXT NOT NULL,
    qubits TEXT NOT NULL, interleaved TEXT NOT NULL, started_at REAL NOT NULL, finished_at REAL NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL, shots INTEGER NOT NULL, cost_usd REAL NOT NULL,
    calibration_at REAL, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS probe_runs_backend ON probe_runs (provider, backend, started_at);
CREATE TABLE IF NOT EXISTS probe_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT, provider TEXT NOT NULL, backend TEXT NOT NULL,
    reserved_at REAL NOT NULL, shots INTEGER NOT NULL, usd REAL NOT NULL, note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS probe_ledger_time ON probe_ledger (reserved_at);
CREATE TABLE IF NOT EXISTS probe_leases (
    provider TEXT NOT NULL, backend TEXT NOT NULL, holder TEXT NOT NULL, expires_at REAL NOT NULL,
    PRIMARY KEY (provider, backend)
);
"""

# --- jobs whose usage or cost is not a known number (#13) -------------------------------------
# Schema 1's jobs.usage_seconds and jobs.cost_usd are NOT NULL: for a job listed here they
# hold 0 and mean nothing. state 'pending': the provider reports final usage later, so the job
# is counted as a job now and its usage and cost when a later record of it is final (then the
# row goes); 'unknown': never knowable (reason). When the jobs table allows NULL, these
# columns become NULL and this table keeps only the pending state.
_SCHEMA += """
CREATE TABLE IF NOT EXISTS job_usage_unknown (
    provider TEXT NOT NULL, backend TEXT NOT NULL, job_id TEXT NOT NULL, state TEXT NOT NULL,
    reason TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (provider, backend, job_id)
);
"""

LabelKey = tuple[tuple[str, str], ...]
CounterIncrement = tuple[str, dict[str, str], float]


class StateError(Exception):
    """The state file cannot be used; the message says why and how to recover."""


def _label_key(labels: dict[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable across process crashes in WAL mode (only an OS crash can lose
            # the last transactions), at a fraction of FULL's fsync cost.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            check = self._db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(check)
            self._db.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"state file {self.path} is unusable ({exc}); move it aside to start with empty "
                f"state, or restore it from a backup"
            ) from None
        except OSError as exc:
            raise StateError(f"state file {self.path}: {exc.strerror or exc}") from None
        self.write_failures = 0
        self._counters: dict[tuple[str, LabelKey], float] = {}
        for name, labels, value in self._db.execute("SELECT name, labels, value FROM counters"):
            self._counters[(name, tuple(tuple(p) for p in json.loads(labels)))] = value

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"schema version {row[0]}, this exporter reads {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                self._db.close()

    # --- meta --------------------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return default if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def meta_default(self, key: str, value: str) -> str:
        """Return the stored value, storing ``value`` first when there is none."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
            return self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0]

    # --- calibration ---------------------------------------------------------------------------
    def record_calibration(self, snap: CalibrationSnapshot) -> int:
        """Append values not stored yet (by measurement time) and remember the snapshot as the
        backend's latest. Returns the number of new history rows."""
        default_t = snap.calibrated_at if snap.calibrated_at is not None else snap.fetched_at
        rows = []
        for target, quantity, m in _calibration_values(snap):
            t = m.measured_at if m.measured_at is not None else default_t
            rows.append((snap.provider, snap.backend, target, quantity, t, m.value, snap.fetched_at))
        payload = json.dumps(snapshot_to_dict(snap), separators=(",", ":"))
        with self._lock, self._db:
            self._db.execute("BEGIN")
            before = self._db.total_changes
            self._db.executemany("INSERT OR IGNORE INTO calibration VALUES (?,?,?,?,?,?,?)", rows)
            added = self._db.total_changes - before
            self._db.execute(
                "INSERT OR REPLACE INTO latest VALUES (?, ?, 'calibration', ?)",
                (snap.provider, snap.backend, payload),
            )
        return added

    def latest_calibration(self, provider: str, backend: str) -> CalibrationSnapshot | None:
        with self._lock:
            row = self._db.execute(
                "SELECT payload FROM latest WHERE provider=? AND backend=? AND kind='calibration'",
                (provider, backend),
            ).fetchone()
        return None if row is None else snapshot_from_dict(json.loads(row[0]))

    def calibration_history(
        self, provider: str | None = None, backend: str | None = None, since: float | None = None
    ) -> Iterable[tuple[str, str, str, str, float, float]]:
        """(provider, backend, target, quantity, measured_at, value), oldest first."""
        sql = "SELECT provider, backend, target, quantity, measured_at, value FROM calibration WHERE 1=1"
        args: list = []
        for col, val in (("provider", provider), ("backend", backend)):
            if val is not None:
                sql += f" AND {col}=?"
                args.append(val)
        if since is not None:
            sql += " AND measured_at>=?"
            args.append(since)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY measured_at", args).fetchall()
        return rows

    # --- jobs and counters ----------------------------------------------------------------------
    def record_jobs(
        self, jobs: Iterable[JobRecord], increments_of, now: float, settled_increments_of=None,
    ) -> list[JobRecord]:
        """Insert jobs not seen before and apply their counter increments in the same
        transaction. ``increments_of(job)`` gives [(counter, labels, delta)]. A record of a
        job stored with its usage pending whose usage is now final (``usage_pending`` False)
        settles it, once: its values are stored and ``settled_increments_of(job)`` applied.
        Returns the newly recorded jobs."""
        new: list[JobRecord] = []
        with self._lock, self._db:
            self._db.execute("BEGIN")
            increments: list[CounterIncrement] = []
            for j in jobs:
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (j.provider, j.backend, j.job_id, j.status, j.created_at, j.finished_at,
                     j.queue_seconds, j.execution_seconds, j.usage_seconds or 0.0, j.cost_usd or 0.0,
                     j.error_class, now),
                )
                if cur.rowcount != 1:
                    if settled_increments_of is not None and not j.usage_pending and self._settle(j):
                        increments.extend(settled_increments_of(j))
                    continue
                self._note_unknown_usage(j)
                new.append(j)
                increments.extend(increments_of(j))
            pending = self._stage_counters(increments)
        # Only after the commit succeeded does the in-memory view move forward.
        self._counters.update(pending)
        return new

    def _note_unknown_usage(self, j: JobRecord) -> None:
        if j.usage_pending or (j.cost_usd is None and not j.billed_with):
            self._db.execute(
                "INSERT OR REPLACE INTO job_usage_unknown VALUES (?,?,?,?,?,?)",
                (j.provider, j.backend, j.job_id, "pending" if j.usage_pending else "unknown",
                 j.cost_unknown_reason, j.created_at),
            )

    def _settle(self, j: JobRecord) -> bool:
        """Store the final usage of a job recorded as pending; False when it was not pending
        (settled before, or never pending): a job's usage is counted at most once."""
        cur = self._db.execute(
            "DELETE FROM job_usage_unknown WHERE provider=? AND backend=? AND job_id=? AND state='pending'",
            (j.provider, j.backend, j.job_id),
        )
        if cur.rowcount != 1:
            return False
        self._db.execute(
            "UPDATE jobs SET usage_seconds=?, cost_usd=? WHERE provider=? AND backend=? AND job_id=?",
            (j.usage_seconds or 0.0, j.cost_usd or 0.0, j.provider, j.backend, j.job_id),
        )
        self._note_unknown_usage(j)
        return True

    def oldest_pending_usage(self, provider: str, backend: str) -> float | None:
        """Creation time of the oldest job whose usage is still pending: job listings must
        reach back to it until it settles."""
        with self._lock:
            row = self._db.execute(
                "SELECT min(created_at) FROM job_usage_unknown WHERE provider=? AND backend=? AND state='pending'",
                (provider, backend),
            ).fetchone()
        return None if row is None else row[0]

    def _stage_counters(self, increments: Iterable[CounterIncrement]) -> dict[tuple[str, LabelKey], float]:
        """Write counter increments inside the caller's transaction and return the new
        totals; the caller applies them to the in-memory view only once the commit succeeded."""
        pending: dict[tuple[str, LabelKey], float] = {}
        for name, labels, delta in increments:
            key = (name, _label_key(labels))
            pending[key] = pending.get(key, self._counters.get(key, 0.0)) + delta
        self._db.executemany(
            "INSERT OR REPLACE INTO counters VALUES (?, ?, ?)",
            [(name, json.dumps(labels), value) for (name, labels), value in pending.items()],
        )
        return pending

    def add_counters(self, increments: Iterable[CounterIncrement]) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN")
            pending = self._stage_counters(increments)
        self._counters.update(pending)

    def counters(self) -> dict[tuple[str, LabelKey], float]:
        with self._lock:
            out = dict(self._counters)
        # Kept in memory only: when writes fail, this is the one number that cannot be saved.
        out[("qpu_exporter_state_write_failures_total", ())] = float(self.write_failures)
        return out

    def note_write_failure(self) -> None:
        with self._lock:
            self.write_failures += 1

    def job_ids(self, provider: str, backend: str) -> set[str]:
        with self._lock:
            rows = self._db.execute("SELECT job_id FROM jobs WHERE provider=? AND backend=?", (provider, backend))
            return {r[0] for r in rows}

    def job_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM jobs").fetchone()[0]

    # --- cursors ---------------------------------------------------------------------------
    def cursor(self, provider: str, backend: str, name: str) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM cursors WHERE provider=? AND backend=? AND name=?", (provider, backend, name)
            ).fetchone()
        return None if row is None else row[0]

    def set_cursor(self, provider: str, backend: str, name: str, value: float) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?, ?, ?)", (provider, backend, name, value))

    # --- probes: records, budget ledger, leases ----------------------------------------------
    # BEGIN IMMEDIATE takes SQLite's write lock before reading, so a check-then-insert cannot
    # interleave with another process's (the CLI's) on the same file; the Python lock does the
    # same for this process's threads.
    def reserve_probe_budget(
        self, provider: str, backend: str, shots: int, usd: float, now: float, since: float,
        caps: tuple[float | None, float | None, float | None, float | None], note: str = "",
    ) -> tuple[int | None, str]:
        """Atomically reserve (shots, usd) unless that would exceed a cap over reservations made
        after ``since``. ``caps`` = (backend shots, backend usd, global shots, global usd), None =
        no cap. Returns (reservation id, "") or (None, which cap was hit)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            b_shots, b_usd = self._db.execute(
                "SELECT coalesce(sum(shots), 0), coalesce(sum(usd), 0) FROM probe_ledger "
                "WHERE provider=? AND backend=? AND reserved_at>?", (provider, backend, since),
            ).fetchone()
            g_shots, g_usd = self._db.execute(
                "SELECT coalesce(sum(shots), 0), coalesce(sum(usd), 0) FROM probe_ledger WHERE reserved_at>?",
                (since,),
            ).fetchone()
            checks = (("shots_per_day", b_shots + shots, caps[0]), ("usd_per_day", b_usd + usd, caps[1]),
                      ("global_shots_per_day", g_shots + shots, caps[2]), ("global_usd_per_day", g_usd + usd, caps[3]))
            for name, total, cap in checks:
                if cap is not None and total > cap + 1e-9:
                    return None, name
            cur = self._db.execute(
                "INSERT INTO probe_ledger (provider, backend, reserved_at, shots, usd, note) VALUES (?,?,?,?,?,?)",
                (provider, backend, now, int(shots), float(usd), note),
            )
            return cur.lastrowid, ""

    def probe_budget_used(self, provider: str, backend: str, since: float) -> tuple[float, float, float, float]:
        """(backend shots, backend usd, global shots, global usd) reserved after ``since``."""
        with self._lock:
            b = self._db.execute(
                "SELECT coalesce(sum(shots), 0), coalesce(sum(usd), 0) FROM probe_ledger "
                "WHERE provider=? AND backend=? AND reserved_at>?", (provider, backend, since),
            ).fetchone()
            g = self._db.execute(
                "SELECT coalesce(sum(shots), 0), coalesce(sum(usd), 0) FROM probe_ledger WHERE reserved_at>?", (since,)
            ).fetchone()
        return float(b[0]), float(b[1]), float(g[0]), float(g[1])

    def acquire_probe_lease(self, provider: str, backend: str, holder: str, now: float, ttl: float,
                            holder_dead=lambda holder: False) -> bool:
        """Take the backend's probe lease unless another live holder has an unexpired one."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT holder, expires_at FROM probe_leases WHERE provider=? AND backend=?", (provider, backend)
            ).fetchone()
            if row is not None and row[0] != holder and row[1] > now and not holder_dead(row[0]):
                return False
            self._db.execute("INSERT OR REPLACE INTO probe_leases VALUES (?,?,?,?)", (provider, backend, holder, now + ttl))
            return True

    def release_probe_lease(self, provider: str, backend: str, holder: str) -> None:
        with self._lock:
            self._db.execute(
                "DELETE FROM probe_leases WHERE provider=? AND backend=? AND holder=?", (provider, backend, holder)
            )

    def record_probe_run(
        self, provider: str, backend: str, qubits: str, interleaved: str, started_at: float, finished_at: float,
        status: str, reason: str, shots: int, cost_usd: float, calibration_at: float | None, record: dict,
        increments: Iterable[CounterIncrement] = (),
    ) -> int:
        """Store a probe attempt and apply its counter increments in the same transaction."""
        payload = json.dumps(record, separators=(",", ":"))
        with self._lock, self._db:
            self._db.execute("BEGIN")
            cur = self._db.execute(
                "INSERT INTO probe_runs (provider, backend, qubits, interleaved, started_at, finished_at, status, "
                "reason, shots, cost_usd, calibration_at, record) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (provider, backend, qubits, interleaved, started_at, finished_at, status, reason, int(shots),
                 float(cost_usd), calibration_at, payload),
            )
            pending = self._stage_counters(increments)
            run_id = cur.lastrowid
        self._counters.update(pending)
        return run_id

    def probe_run(self, run_id: int) -> dict | None:
        """One stored probe attempt: its columns plus the decoded ``record``."""
        with self._lock:
            cur = self._db.execute("SELECT * FROM probe_runs WHERE id=?", (run_id,))
            row = cur.fetchone()
            cols = [c[0] for c in cur.description]
        if row is None:
            return None
        out = dict(zip(cols, row))
        out["record"] = json.loads(out["record"])
        return out

    def probe_runs(self, provider: str | None = None, backend: str | None = None,
                   status: str | None = None, limit: int = 100) -> list[dict]:
        """Latest probe attempts first (without the record payload)."""
        sql = ("SELECT id, provider, backend, qubits, interleaved, started_at, finished_at, status, reason, shots, "
               "cost_usd, calibration_at FROM probe_runs WHERE 1=1")
        args: list = []
        for col, val in (("provider", provider), ("backend", backend), ("status", status)):
            if val is not None:
                sql += f" AND {col}=?"
                args.append(val)
        with self._lock:
            cur = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit))
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

    def latest_probe_results(self) -> list[dict]:
        """The newest successful probe per (provider, backend, qubits, interleaved), with record."""
        with self._lock:
            rows = self._db.execute(
                "SELECT p.id FROM probe_runs p JOIN (SELECT max(id) AS id FROM probe_runs WHERE status='ok' "
                "GROUP BY provider, backend, qubits, interleaved) m ON p.id = m.id ORDER BY p.id"
            ).fetchall()
        return [r for (run_id,) in rows if (r := self.probe_run(run_id)) is not None]

    def last_probe_started(self, provider: str, backend: str) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT max(started_at) FROM probe_runs WHERE provider=? AND backend=?", (provider, backend)
            ).fetchone()
        return None if row is None else row[0]

    # --- housekeeping ------------------------------------------------------------------------
    def prune(self, older_than: float) -> int:
        """Drop history rows fetched before ``older_than``; counters are kept forever."""
        with self._lock, self._db:
            self._db.execute("BEGIN")
            a = self._db.execute("DELETE FROM calibration WHERE fetched_at < ?", (older_than,)).rowcount
            b = self._db.execute("DELETE FROM jobs WHERE recorded_at < ?", (older_than,)).rowcount
            self._db.execute(
                "DELETE FROM job_usage_unknown WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.provider="
                "job_usage_unknown.provider AND jobs.backend=job_usage_unknown.backend AND jobs.job_id=job_usage_unknown.job_id)"
            )
        return a + b


def _calibration_values(snap: CalibrationSnapshot) -> Iterable[tuple[str, str, Measurement]]:
    for q in snap.qubits:
        for quantity, m in q.values.items():
            yield f"q{q.qubit}", quantity, m
    for g in snap.gates:
        target = f"{g.gate}:{g.qubits_label}"
        if g.error is not None:
            yield target, "gate_error", g.error
        if g.duration is not None:
            yield target, "gate_duration", g.duration


def snapshot_to_dict(snap: CalibrationSnapshot) -> dict:
    return asdict(snap)


def snapshot_from_dict(d: dict) -> CalibrationSnapshot:
    def m(x):
        return None if x is None else Measurement(**x)

    return CalibrationSnapshot(
        provider=d["provider"],
        backend=d["backend"],
        fetched_at=d["fetched_at"],
        calibrated_at=d["calibrated_at"],
        qubits=[
            QubitCalibration(q["qubit"], {k: Measurement(**v) for k, v in q["values"].items()}, q["operational"])
            for q in d["qubits"]
        ],
        gates=[
            GateCalibration(g["gate"], tuple(g["qubits"]), m(g["error"]), m(g["duration"]), g["operational"])
            for g in d["gates"]
        ],
    )
