"""Where the state lives: a SQLite file (the default) or a PostgreSQL database, and how to
open either with SQLAlchemy so that the store's code is the same on both.

SQLite keeps the released store's properties: WAL, synchronous=NORMAL (durable across process
crashes; only an OS crash can lose the last transactions), one connection per process guarded
by the store's lock, and write transactions that start with BEGIN IMMEDIATE, so a read inside
a write transaction can never be invalidated by another process (the sqlite3 module's own
BEGIN handling is switched off: SQLAlchemy documents this recipe for pysqlite).

PostgreSQL goes through psycopg 3. The password never comes from the config file: libpq reads
PGPASSWORD or its password file itself, or the store passes QPU_EXPORTER_STATE_PASSWORD as a
connection argument (never part of a URL that could be printed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
SQLITE_BUSY_SECONDS = 5.0
# libpq waits forever for an unreachable host by default; keepalives notice a dead server
# (or a partition) within about a minute instead of the kernel's two hours.
PG_CONNECT_DEFAULTS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                       "keepalives_count": 3}


@dataclass(frozen=True)
class Target:
    kind: str  # "sqlite" | "postgresql"
    path: Path | None = None
    url: URL | None = None  # without any password

    @property
    def display(self) -> str:
        """Safe to log and to show: a path, or the URL without a password."""
        if self.path is not None:
            return str(self.path)
        return self.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://", 1)

    @property
    def what(self) -> str:
        return f"state file {self.display}" if self.kind == "sqlite" else f"state database {self.display}"


def is_url(target: str | Path) -> bool:
    return isinstance(target, str) and "://" in target


def url_password(url: str) -> str | None:
    """The password a PostgreSQL URL carries (userinfo or ``?password=``), if any."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    return parsed.password or parsed.query.get("password")


def parse_target(target: str | Path) -> tuple[Target, str | None]:
    """(target, password found in the URL). Raises ValueError naming the problem."""
    if not is_url(target):
        return Target("sqlite", path=Path(target)), None
    try:
        url = make_url(str(target))
    except ArgumentError:
        raise ValueError("not a URL of the form postgresql://user@host:port/database") from None
    if url.drivername not in POSTGRES_SCHEMES:
        raise ValueError(f"unsupported scheme {url.drivername!r} (want postgresql://)")
    if not url.database:
        raise ValueError("the URL names no database (postgresql://user@host:port/DATABASE)")
    password = url.password or url.query.get("password")
    query = {k: v for k, v in url.query.items() if k != "password"}
    clean = url.set(drivername="postgresql+psycopg", password=None, query=query)
    return Target("postgresql", url=clean), password


def create(target: Target, password: str | None = None) -> Engine:
    if target.kind == "sqlite":
        return _sqlite(target.path)
    args = {k: v for k, v in PG_CONNECT_DEFAULTS.items() if k not in target.url.query}
    args["application_name"] = "qpu-exporter"
    if password:
        args["password"] = password
    # pre_ping: a pooled connection that died with a database restart is replaced before use
    # instead of failing the next write.
    return create_engine(target.url, connect_args=args, pool_size=4, max_overflow=8, pool_timeout=10,
                         pool_pre_ping=True)


def _sqlite(path: Path) -> Engine:
    engine = create_engine(
        URL.create("sqlite", database=str(path)), poolclass=StaticPool,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS},
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # the "begin" hook below issues BEGIN
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across process crashes in WAL mode (only an OS crash can lose
        # the last transactions), at a fraction of FULL's fsync cost.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # IMMEDIATE takes the write lock before the first read: a check-then-insert cannot
        # interleave with another process's write.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("qpu_write") else "BEGIN")

    return engine
