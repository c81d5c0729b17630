"""Versioned schema migrations (Alembic), run when a store opens, on SQLite and PostgreSQL.

The revisions live in store/migrations/versions. Revision 0001 is the schema of the released
exporter, whose state files carry no Alembic version but ``meta.schema_version = 1``: such a
file is upgraded in place from the start, and 0001 (all CREATE ... IF NOT EXISTS) changes
nothing in it. A database at a revision this release does not know was written by a newer
release and is refused. Everything runs in one transaction holding the database's write lock
(SQLite BEGIN IMMEDIATE; a PostgreSQL advisory lock), so replicas starting together migrate
once and an interrupted upgrade leaves the state as it was.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from .errors import StateError

MIGRATIONS = Path(__file__).parent / "migrations"
LEGACY_VERSION = "1"  # meta.schema_version of the released store, before Alembic
# pg_advisory_xact_lock key: any constant no other application on the database uses.
_MIGRATION_LOCK = 0x71707565_78703031  # "qpuexp01"

# Alembic narrates every step at INFO; the store logs one line per upgrade instead.
logging.getLogger("alembic").setLevel(logging.WARNING)


def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str:
    return _script().get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The Alembic revision, or the legacy marker ``legacy-1`` for a released-store file, or
    None for an empty database."""
    rev = MigrationContext.configure(conn).get_current_revision()
    if rev is not None:
        return rev
    if inspect(conn).has_table("meta"):
        row = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).first()
        if row is not None:
            return f"legacy-{row[0]}"
    return None


def upgrade(conn: Connection, where: str) -> tuple[str | None, str]:
    """Bring the schema behind ``conn`` (in a transaction the caller commits) to the newest
    revision. Returns (revision before, revision after); raises StateError for a database
    written by a newer release."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    script = _script()
    head = script.get_current_head()
    before = current_revision(conn)
    known = {r.revision for r in script.walk_revisions()}
    if before is not None and before != f"legacy-{LEGACY_VERSION}" and before not in known:
        version = before.removeprefix("legacy-")
        raise StateError(
            f"{where} was written by a newer qpu-exporter (state schema {version}; this release reads up to "
            f"{head}): run that release or a newer one, or restore a backup"
        )
    if before == head:
        return before, head
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
    return before, head
