"""Versioned schema migrations (Alembic), run when a store opens, on SQLite and PostgreSQL.

The revisions live in store/migrations/versions. Revision 0001 is the schema of the released
exporter, whose state files carry no Alembic version but ``meta.schema_version = 1``: such a
file is upgraded in place from the start, and 0001 (all CREATE ... IF NOT EXISTS) changes
nothing in it. A database at a revision this release does not know was written by a newer
release and is refused. Everything runs in one transaction holding the database's write lock
(SQLite BEGIN IMMEDIATE; a PostgreSQL advisory lock), so replicas starting together migrate
once and an interrupted upgrade leaves the state as it was.

A state already at the newest revision (every start but the first of a release) is recognised
with one query, without importing Alembic: the exporter is serving sooner after a restart.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import Connection, inspect, text

from .errors import StateError

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD = "0003"  # the newest revision in migrations/versions (tests/test_store.py checks it)
LEGACY_VERSION = "1"  # meta.schema_version of the released store, before Alembic
# pg_advisory_xact_lock key: any constant no other application on the database uses.
_MIGRATION_LOCK = 0x71707565_78703031  # "qpuexp01"


def current_revision(conn: Connection) -> str | None:
    """The Alembic revision, or ``legacy-1`` for a state file of the released store, or None
    for an empty database."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        rev = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        if rev is not None:
            return rev
    if "meta" in tables:
        row = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).first()
        if row is not None:
            return f"legacy-{row[0]}"
    return None


def upgrade(conn: Connection, where: str) -> tuple[str | None, str]:
    """Bring the schema behind ``conn`` (in a transaction the caller commits) to the newest
    revision. Returns (revision before, revision after); raises StateError for a database
    written by a newer release."""
    if current_revision(conn) == HEAD:
        return HEAD, HEAD
    if conn.dialect.name == "postgresql":  # another replica may be migrating right now
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    before = current_revision(conn)
    if before == HEAD:
        return before, HEAD
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    # Alembic narrates every step at INFO; the store logs one line per upgrade instead.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    known = {r.revision for r in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}
    if before is not None and before != f"legacy-{LEGACY_VERSION}" and before not in known:
        version = before.removeprefix("legacy-")
        raise StateError(
            f"{where} was written by a newer qpu-exporter (state schema {version}; this release reads up to "
            f"{HEAD}): run that release or a newer one, or restore a backup"
        )
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
    return before, HEAD


def head_of_scripts() -> str:
    """The head revision as Alembic reads it from migrations/versions (for the test of HEAD)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS)).get_current_head()
