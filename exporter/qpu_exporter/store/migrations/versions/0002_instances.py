"""Exporter instances: several exporters (replicas, shards) on one database.

Job records, counters and poll cursors gain an ``instance`` column: each exporter de-duplicates
and counts the jobs it sees itself, so every replica exports complete counters and one that dies
takes nothing with it. The released exporter's rows become instance ``default`` (the name a
SQLite exporter runs as unless told otherwise), except the probe counters, which describe shared
probe records and move to the shared instance ``''``. Detector state moves from meta to a
per-instance table; so does the pending-usage state of jobs (``job_usage_unknown``, which
exporters built between the two releases added to the released schema: their zeros for usage and
cost not known become NULL again); ``locks`` holds the rows that serialise budget reservations, leases and probe
records across processes. Job usage and cost become nullable (unknown is not 0), and jobs gain
a ``workload`` column.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DEFAULT_INSTANCE = "default"
SHARED_COUNTERS = ("qpu_probe_runs_total", "qpu_probe_shots_total", "qpu_probe_failures_total")
LOCK_NAMES = ("probe_ledger", "probe_leases", "probe_runs")

_JOBS = """
CREATE TABLE jobs_v2 (
    instance TEXT NOT NULL, provider TEXT NOT NULL, backend TEXT NOT NULL, job_id TEXT NOT NULL,
    status TEXT NOT NULL, created_at REAL NOT NULL, finished_at REAL NOT NULL, queue_seconds REAL,
    execution_seconds REAL, usage_seconds REAL, cost_usd REAL, error_class TEXT NOT NULL,
    recorded_at REAL NOT NULL, workload TEXT,
    PRIMARY KEY (instance, provider, backend, job_id)
)"""
_COUNTERS = """
CREATE TABLE counters_v2 (
    instance TEXT NOT NULL, name TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (instance, name, labels)
)"""
_CURSORS = """
CREATE TABLE cursors_v2 (
    instance TEXT NOT NULL, provider TEXT NOT NULL, backend TEXT NOT NULL, name TEXT NOT NULL,
    value REAL NOT NULL, PRIMARY KEY (instance, provider, backend, name)
)"""
_USAGE = """
CREATE TABLE job_usage_unknown_v2 (
    instance TEXT NOT NULL, provider TEXT NOT NULL, backend TEXT NOT NULL, job_id TEXT NOT NULL,
    state TEXT NOT NULL, reason TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (instance, provider, backend, job_id)
)"""
_NEW = """
CREATE TABLE drift_state (instance TEXT NOT NULL PRIMARY KEY, saved_at REAL NOT NULL, payload TEXT NOT NULL);
CREATE TABLE instances (instance TEXT NOT NULL PRIMARY KEY, first_seen REAL NOT NULL, last_seen REAL NOT NULL);
CREATE TABLE locks (name TEXT NOT NULL PRIMARY KEY)
"""
_JOB_COLUMNS = ("provider, backend, job_id, status, created_at, finished_at, queue_seconds, execution_seconds, "
                "usage_seconds, cost_usd, error_class, recorded_at")


def _ddl(text: str) -> list[str]:
    if op.get_bind().dialect.name == "postgresql":
        text = text.replace(" REAL", " DOUBLE PRECISION")
    return [s.strip() for s in text.split(";") if s.strip()]


def _rebuild(table: str, create: str, columns: str, select: str) -> None:
    """SQLite cannot change a primary key in place: new table, copy, swap (in the migration's
    transaction, so an interrupted upgrade leaves the old table as it was)."""
    for statement in _ddl(create):
        op.execute(statement)
    op.execute(f"INSERT INTO {table}_v2 ({columns}) SELECT {select} FROM {table}")
    op.execute(f"DROP TABLE {table}")
    op.execute(f"ALTER TABLE {table}_v2 RENAME TO {table}")


def upgrade() -> None:
    default = f"'{DEFAULT_INSTANCE}'"
    _rebuild("jobs", _JOBS, f"instance, {_JOB_COLUMNS}", f"{default}, {_JOB_COLUMNS}")
    op.execute("CREATE INDEX jobs_finished ON jobs (finished_at)")
    op.execute("CREATE INDEX jobs_recorded ON jobs (recorded_at)")
    bind = op.get_bind()
    usage_columns = "provider, backend, job_id, state, reason, created_at"
    if sa.inspect(bind).has_table("job_usage_unknown"):
        _rebuild("job_usage_unknown", _USAGE, f"instance, {usage_columns}", f"{default}, {usage_columns}")
        # The jobs those rows list hold 0 for what was not known (the released columns were NOT
        # NULL): pending usage and cost, or an unknown cost.
        listed = ("SELECT 1 FROM job_usage_unknown u WHERE u.instance = jobs.instance AND u.provider = jobs.provider "
                  "AND u.backend = jobs.backend AND u.job_id = jobs.job_id AND u.state = '{}'")
        op.execute(f"UPDATE jobs SET usage_seconds = NULL, cost_usd = NULL WHERE EXISTS ({listed.format('pending')})")
        op.execute(f"UPDATE jobs SET cost_usd = NULL WHERE EXISTS ({listed.format('unknown')})")
    else:
        for statement in _ddl(_USAGE.replace("job_usage_unknown_v2", "job_usage_unknown")):
            op.execute(statement)
    shared = ", ".join(f"'{name}'" for name in SHARED_COUNTERS)
    _rebuild("counters", _COUNTERS, "instance, name, labels, value",
             f"CASE WHEN name IN ({shared}) THEN '' ELSE {default} END, name, labels, value")
    _rebuild("cursors", _CURSORS, "instance, provider, backend, name, value",
             f"{default}, provider, backend, name, value")
    for statement in _ddl(_NEW):
        op.execute(statement)
    bind.execute(sa.text("INSERT INTO drift_state (instance, saved_at, payload) "
                         "SELECT :instance, :now, value FROM meta WHERE key = 'drift_monitor_state'"),
                 {"instance": DEFAULT_INSTANCE, "now": time.time()})
    op.execute("DELETE FROM meta WHERE key = 'drift_monitor_state'")
    for name in LOCK_NAMES:
        bind.execute(sa.text("INSERT INTO locks (name) VALUES (:name)"), {"name": name})
    # The released exporter refuses any other schema_version with one line: it will not
    # misread a state file it can no longer understand.
    op.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")


def downgrade() -> None:
    raise NotImplementedError("state migrations go forward only; restore a backup to go back")
