"""The state schema at the newest migration, as SQLAlchemy Core tables.

The migrations (store/migrations/versions) create and change the tables; these objects only
build the queries, on SQLite and PostgreSQL alike. tests/test_store.py checks that the
migrated database has exactly these columns and keys, so the two cannot drift apart.

Shared by every exporter on one database: calibration history, latest snapshots, probe
records, the probe budget ledger, probe leases, the kept workload values, meta. Per exporter
instance (the ``instance`` column, see docs/state.md): job records (and their pending usage and
workload), counters, poll cursors and drift-detector state, so each replica keeps complete
counters of its own. Counters that describe shared things (a probe
run exists once, whoever ran it) live under the instance ``SHARED`` and every replica exports
the same value.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Double, Integer, MetaData, PrimaryKeyConstraint, Table, Text

SHARED = ""  # the instance of counters every replica exports alike

metadata = MetaData()


def _real(name: str, nullable: bool = False) -> Column:
    return Column(name, Double, nullable=nullable)


def _text(name: str, nullable: bool = False) -> Column:
    return Column(name, Text, nullable=nullable)


meta = Table("meta", metadata, Column("key", Text, primary_key=True), _text("value"))

calibration = Table(
    "calibration", metadata,
    _text("provider"), _text("backend"), _text("target"), _text("quantity"),
    _real("measured_at"), _real("value"), _real("fetched_at"),
    PrimaryKeyConstraint("provider", "backend", "target", "quantity", "measured_at"),
)

jobs = Table(
    "jobs", metadata,
    _text("instance"), _text("provider"), _text("backend"), _text("job_id"), _text("status"),
    _real("created_at"), _real("finished_at"), _real("queue_seconds", True), _real("execution_seconds", True),
    # Unknown until the provider reports it (usage pending, no price): NULL, never 0.
    _real("usage_seconds", True), _real("cost_usd", True),
    _text("error_class"), _real("recorded_at"), _text("workload", True),
    # False for a billing record that is not a job (an IBM session's charge).
    Column("counts_as_job", Boolean, nullable=False),
    PrimaryKeyConstraint("instance", "provider", "backend", "job_id"),
)

# Jobs whose usage or cost is not a known number. state 'pending': the provider reports final
# usage later; the job is counted now and its usage and cost once a later record of it is
# final (then the row goes). 'unknown': never knowable (reason). jobs.usage_seconds and
# jobs.cost_usd are NULL meanwhile.
job_usage_unknown = Table(
    "job_usage_unknown", metadata,
    _text("instance"), _text("provider"), _text("backend"), _text("job_id"), _text("state"), _text("reason"),
    _real("created_at"),
    PrimaryKeyConstraint("instance", "provider", "backend", "job_id"),
)

counters = Table(
    "counters", metadata,
    _text("instance"), _text("name"), _text("labels"), _real("value"),
    PrimaryKeyConstraint("instance", "name", "labels"),
)

cursors = Table(
    "cursors", metadata,
    _text("instance"), _text("provider"), _text("backend"), _text("name"), _real("value"),
    PrimaryKeyConstraint("instance", "provider", "backend", "name"),
)

latest = Table(
    "latest", metadata,
    _text("provider"), _text("backend"), _text("kind"), _text("payload"),
    PrimaryKeyConstraint("provider", "backend", "kind"),
)

probe_runs = Table(
    "probe_runs", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    _text("provider"), _text("backend"), _text("qubits"), _text("interleaved"),
    _real("started_at"), _real("finished_at"), _text("status"), _text("reason"),
    Column("shots", BigInteger, nullable=False), _real("cost_usd"), _real("calibration_at", True), _text("record"),
)

probe_ledger = Table(
    "probe_ledger", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    _text("provider"), _text("backend"), _real("reserved_at"), Column("shots", BigInteger, nullable=False),
    _real("usd"), _text("note"),
)

probe_leases = Table(
    "probe_leases", metadata,
    _text("provider"), _text("backend"), _text("holder"), _real("expires_at"),
    PrimaryKeyConstraint("provider", "backend"),
)

drift_state = Table(
    "drift_state", metadata,
    Column("instance", Text, primary_key=True), _real("saved_at"), _text("payload"),
)

instances = Table(
    "instances", metadata,
    Column("instance", Text, primary_key=True), _real("first_seen"), _real("last_seen"),
)

# One row per critical section. A transaction that must not interleave with another process's
# takes its row FOR UPDATE on PostgreSQL; on SQLite every write transaction is BEGIN IMMEDIATE,
# which already excludes all other writers.
locks = Table("locks", metadata, Column("name", Text, primary_key=True))
LOCK_NAMES = ("probe_ledger", "probe_leases", "probe_runs", "workloads")

# Tag values kept as `workload` labels (docs/workloads.md), shared by every exporter on the
# database so replicas label a value alike; a value once kept stays kept. Written in the
# transaction that counts the first job under it, holding the lock row "workloads".
workloads = Table("workloads", metadata, Column("name", Text, primary_key=True), _real("kept_at"))

# In copy order for migrate-state (no foreign keys; leases are not copied: they belong to live
# processes of the source).
COPIED = (meta, calibration, latest, jobs, job_usage_unknown, counters, cursors, probe_runs, probe_ledger, drift_state,
          instances, workloads)
