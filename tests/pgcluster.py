"""A throw-away PostgreSQL cluster (the Debian postgresql package's initdb and pg_ctl) on a free
loopback port, for the tests (conftest.py fixtures) and benchmarks/state_backends.py.

Password authentication (SCRAM) is on, so the exporter's password sources are exercised for
real. initdb refuses to run as root: as root, the server runs as the ``postgres`` system user
with its directory handed over to it.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

USER = "qpu"


def bindir() -> Path | None:
    """The newest /usr/lib/postgresql/*/bin with initdb, or the directory of initdb on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    bin: Path
    root: Path
    port: int = 0
    password: str = field(default_factory=lambda: secrets.token_hex(12))
    _run_as: dict = field(default_factory=dict)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", *, password: bool = False) -> str:
        secret = f":{self.password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / args[0]), *args[1:]], capture_output=True, text=True, check=check,
                              timeout=120, **self._run_as)

    def init(self) -> Cluster:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._run_as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "cwd": self.root}
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._run_as:
            os.chown(pwfile, self._run_as["user"], self._run_as["group"])
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=scram-sha-256", f"--pwfile={pwfile}",
                  "-E", "UTF8", "--no-sync", "--locale=C")
        pwfile.unlink()
        return self

    def start(self) -> Cluster:
        self.port = self.port or _free_port()
        # fsync off: the tests kill exporters, never the machine.
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                f"-c full_page_writes=off -c max_connections=300")
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL (without the password)."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(password=True), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def new_cluster() -> Cluster:
    """Initialised and started; call remove() when done."""
    found = bindir()
    if found is None:
        raise FileNotFoundError("initdb")
    # Not under pytest's basetemp: its parent is private to root, and the server runs as postgres.
    cluster = Cluster(found, Path(tempfile.mkdtemp(prefix="qpu-pg-")))
    try:
        return cluster.init().start()
    except BaseException:
        shutil.rmtree(cluster.root, ignore_errors=True)
        raise
