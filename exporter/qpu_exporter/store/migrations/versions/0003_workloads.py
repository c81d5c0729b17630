"""Workloads: the tag values kept as ``workload`` labels (docs/workloads.md).

One table shared by every exporter on the database, so replicas label a tag value alike and
``max by (workload)`` over them gives one exporter's answer; a value once kept stays kept. A
value is kept in the transaction that counts the first job under it, holding the new lock row
``workloads`` (PostgreSQL ``SELECT ... FOR UPDATE``; SQLite's write lock), so two exporters never
together keep more than ``workloads.max`` values. The jobs table's ``workload`` column came with
0002; it gains ``counts_as_job``, false for a billing record that is not a job (an IBM session's
charge: it moves usage and cost, not job counts), so per-workload job figures read from the
records (``qpu-exporter report``) count jobs only. Records written before are jobs.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    real, boolean, true = ("DOUBLE PRECISION", "BOOLEAN", "TRUE") if postgres else ("REAL", "INTEGER", "1")
    op.execute(f"CREATE TABLE workloads (name TEXT NOT NULL PRIMARY KEY, kept_at {real} NOT NULL)")
    op.get_bind().execute(sa.text("INSERT INTO locks (name) VALUES ('workloads')"))
    op.execute(f"ALTER TABLE jobs ADD COLUMN counts_as_job {boolean} NOT NULL DEFAULT {true}")


def downgrade() -> None:
    raise NotImplementedError("state migrations go forward only; restore a backup to go back")
