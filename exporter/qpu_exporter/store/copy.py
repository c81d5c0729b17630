"""``qpu-exporter migrate-state --from FILE --to URL``: a SQLite state into an empty PostgreSQL
database, everything at once or nothing.

The source may belong to a running exporter: it is read through a consistent snapshot (SQLite's
online backup), never opened for writing, so the running exporter is not disturbed and an older
release's file is not upgraded under it; the snapshot is upgraded to the newest schema and
copied row by row. The target must be empty (no tables at all): an existing state is never
overwritten or merged. Schema creation and copy are one transaction. Probe leases belong to live
processes of the source and are not copied.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from sqlalchemy import func, inspect, select, text

from . import schema
from .core import Store
from .engine import create, parse_target
from .errors import StateError, one_line
from .tables import COPIED, meta, probe_ledger, probe_runs

_BATCH = 5000


def _snapshot(source: Path, into: Path) -> None:
    if not source.is_file():
        raise StateError(f"--from {source}: no such state file")
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        dst = sqlite3.connect(into)
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
    except sqlite3.Error as exc:
        raise StateError(f"--from {source}: cannot read the state file ({exc})") from None


def migrate_state(source: str | Path, target_url: str, password: str | None = None) -> dict[str, int]:
    """Copy the state file ``source`` into the empty database ``target_url``; returns rows
    copied per table. Raises StateError with one line."""
    try:
        target, url_password = parse_target(target_url)
    except ValueError as exc:
        raise StateError(f"--to: {exc}") from None
    if target.kind != "postgresql":
        raise StateError("--to: want a postgresql:// URL")
    if url_password:
        raise StateError("--to: a password on the command line is refused; give it in QPU_EXPORTER_STATE_PASSWORD, "
                         "PGPASSWORD or a libpq password file")
    with tempfile.TemporaryDirectory(prefix="qpu-migrate-") as tmp:
        copy_path = Path(tmp) / "state.db"
        _snapshot(Path(source), copy_path)
        src = Store(copy_path)  # upgrades the snapshot, never the source
        engine = create(target, password)
        try:
            return _copy(src, engine, target.what)
        except StateError:
            raise
        except Exception as exc:  # noqa: BLE001 - one line, whatever the database said
            raise StateError(f"{target.what}: {one_line(exc)}") from None
        finally:
            src.close()
            engine.dispose()


def _copy(src: Store, engine, where: str) -> dict[str, int]:
    copied: dict[str, int] = {}
    with engine.connect() as conn, conn.begin():
        existing = inspect(conn).get_table_names()
        if existing:
            raise StateError(f"{where} is not empty (it has tables: {', '.join(sorted(existing)[:5])}"
                             f"{', ...' if len(existing) > 5 else ''}); migrate-state only fills an empty database")
        schema.upgrade(conn, where)
        conn.execute(meta.delete())  # the source's meta (same schema version) replaces the fresh one
        with src.engine.connect() as source:
            for table in COPIED:
                n = 0
                rows = source.execute(select(table)).mappings()
                while batch := rows.fetchmany(_BATCH):
                    conn.execute(table.insert(), [dict(r) for r in batch])
                    n += len(batch)
                copied[table.name] = n
        for table in (probe_runs, probe_ledger):  # identity columns continue after the copied ids
            top = conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), :v, false)"),
                         {"v": top + 1})
    return copied
