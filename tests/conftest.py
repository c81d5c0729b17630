"""Shared fixtures: free ports, a real exporter process, a real Prometheus, a real Pushgateway,
a real PostgreSQL.

Waiting is always polling with a timeout, never a fixed sleep. In CI (CI=true) a missing
Prometheus binary is a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPORTER = [sys.executable, "-m", "qpu_exporter.cli"]


# Ports for the processes tests start come from a range of their own per pytest-xdist worker,
# below Linux's ephemeral range (32768-60999), and each is handed out once per session: a port
# from bind(0) is free now, but the kernel may hand it to the next bind(0) too (another worker,
# or the next process started before the first one bound it), and the second process then
# dies with "Address already in use".
_PORTS_PER_WORKER = 2000
_worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
_next_port = 20000 + _PORTS_PER_WORKER * (int(_worker[2:]) if _worker[2:].isdigit() else 0)
_last_port = _next_port + _PORTS_PER_WORKER


def free_port() -> int:
    global _next_port
    while _next_port < _last_port:
        port, _next_port = _next_port, _next_port + 1
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use by something else on this machine
            return port
    raise RuntimeError(f"no free port left in this worker's range (up to {_last_port})")


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1):
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


def http_get(url: str, timeout: float = 5.0, headers: dict | None = None) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required in CI (apt-get install prometheus prometheus-alertmanager prometheus-pushgateway)")
    pytest.skip(f"{name} not installed")


@dataclass
class ExporterProcess:
    proc: subprocess.Popen
    port: int
    log_path: Path
    state_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kw):
        return http_get(self.url + path, **kw)

    def metrics(self) -> str:
        code, body, _ = self.get("/metrics")
        assert code == 200
        return body.decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 5.0) -> float:
        """SIGTERM and wait; returns how long the process took to exit."""
        if self.proc.poll() is not None:
            return 0.0
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"exporter did not stop within {timeout}s of SIGTERM")
        return time.monotonic() - started


@pytest.fixture
def start_exporter(tmp_path) -> Iterator[Callable[..., ExporterProcess]]:
    """Start ``qpu-exporter serve`` with a config text; waits for /-/ready."""
    started: list[ExporterProcess] = []

    def start(config_text: str | None = None, *, state_path: Path | None = None, ready: bool = True,
              extra_args: list[str] | None = None, env: dict | None = None) -> ExporterProcess:
        state = state_path or tmp_path / "state.db"
        args = [*EXPORTER, "serve"]
        if config_text is not None:
            cfg = tmp_path / f"config-{len(started)}.yaml"
            cfg.write_text(config_text.replace("STATE_PATH", str(state)))
            args += ["--config", str(cfg)]
        port = free_port()
        args += ["--web.listen-address", f"127.0.0.1:{port}", *(extra_args or [])]
        log_path = tmp_path / f"exporter-{len(started)}.log"
        full_env = {**os.environ, "QPU_EXPORTER_STATE_PATH": str(state), **(env or {})}
        proc = subprocess.Popen(args, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=full_env, cwd=tmp_path)
        ep = ExporterProcess(proc, port, log_path, state)
        started.append(ep)
        if ready:
            def is_ready():
                if proc.poll() is not None:
                    raise AssertionError(f"exporter exited with {proc.returncode}: {ep.log()[-2000:]}")
                return ep.get("/-/ready", timeout=2)[0] == 200
            wait_until(is_ready, 90, "exporter /-/ready", interval=0.2)
        return ep

    yield start
    for ep in started:
        with contextlib.suppress(Exception):
            ep.stop()


@dataclass
class PrometheusProcess:
    proc: subprocess.Popen
    port: int

    def query(self, promql: str) -> list[dict]:
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        code, body, _ = http_get(url)
        data = json.loads(body)
        assert code == 200 and data["status"] == "success", f"query {promql!r} failed: {body[:300]!r}"
        return data["data"]["result"]


def terminate_all(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process we started, SIGKILL after 10 s."""
    for p in procs:
        p.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=10)
        if p.poll() is None:
            p.kill()


@pytest.fixture
def start_prometheus(tmp_path) -> Iterator[Callable[..., PrometheusProcess]]:
    """Start the real Prometheus scraping the given targets every second."""
    binary = require_binary("prometheus")
    procs: list[subprocess.Popen] = []

    def start(targets: list[str], rule_files: list[str] | None = None, alertmanager: str | None = None,
              scrape_interval: str = "1s", extra_args: list[str] | None = None,
              job_extra: dict | None = None) -> PrometheusProcess:
        port = free_port()
        d = tmp_path / f"prom-{len(procs)}"
        d.mkdir()
        cfg = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "qpu-exporter", "static_configs": [{"targets": targets}], **(job_extra or {})}],
        }
        if rule_files:
            cfg["rule_files"] = rule_files
        if alertmanager:
            cfg["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        (d / "prometheus.yml").write_text(json.dumps(cfg))
        proc = subprocess.Popen(
            [binary, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", *(extra_args or [])],
            stdout=(d / "log").open("wb"), stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/-/ready", timeout=2)[0] == 200, 60, "prometheus ready")
        return PrometheusProcess(proc, port)

    yield start
    terminate_all(procs)


@dataclass
class PushgatewayProcess:
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def start_pushgateway(tmp_path) -> Iterator[Callable[[], PushgatewayProcess]]:
    """Start the real Prometheus Pushgateway (Debian prometheus-pushgateway), in memory only."""
    binary = require_binary("prometheus-pushgateway")
    procs: list[subprocess.Popen] = []

    def start() -> PushgatewayProcess:
        port = free_port()
        log = tmp_path / f"pushgateway-{len(procs)}.log"
        # An empty persistence file keeps metrics in memory (the default writes under /var/lib).
        proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
                                stdout=log.open("wb"), stderr=subprocess.STDOUT)
        procs.append(proc)
        wait_until(lambda: http_get(f"http://127.0.0.1:{port}/-/ready", timeout=2)[0] == 200, 30, "pushgateway ready")
        return PushgatewayProcess(proc, port)

    yield start
    terminate_all(procs)


def run_cli(*args: str, input: str | None = None, timeout: float = 120, env: dict | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EXPORTER, *args], input=input, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, cwd=cwd,
    )


def parse_samples(text: str) -> list[tuple[str, dict, float]]:
    """Parse exposition text with client_python's parser: (sample name, labels, value)."""
    from prometheus_client.parser import text_string_to_metric_families

    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text) for s in fam.samples]


def sample(text: str, name: str, **labels) -> float | None:
    for n, lab, value in parse_samples(text):
        if n == name and all(lab.get(k) == v for k, v in labels.items()):
            return value
    return None


# --- PostgreSQL ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres():
    """One throw-away PostgreSQL cluster for the session (pgcluster.py), stopped at the end.
    In CI a missing server is a failure, not a skip."""
    from pgcluster import bindir, new_cluster

    if bindir() is None:
        require_binary("initdb")
    cluster = new_cluster()
    yield cluster
    cluster.remove()


@dataclass
class StateTarget:
    """Where a test's state lives: a SQLite file or a fresh PostgreSQL database."""

    target: str
    password: str | None = None

    @property
    def kind(self) -> str:
        return "postgresql" if "://" in self.target else "sqlite"

    def store(self, **kw):
        from qpu_exporter.store import Store

        return Store(self.target, password=self.password, **kw)

    def env(self) -> dict[str, str]:
        """An exporter process's environment for this state (password from the environment)."""
        if self.kind == "sqlite":
            return {"QPU_EXPORTER_STATE_PATH": self.target}
        return {"QPU_EXPORTER_STATE_PATH": "", "QPU_EXPORTER_STATE_URL": self.target,
                "QPU_EXPORTER_STATE_PASSWORD": self.password or ""}


@pytest.fixture
def pg_state(postgres) -> StateTarget:
    """A new empty database of the session cluster, for this test alone."""
    return StateTarget(postgres.create_database(), postgres.password)


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request, tmp_path) -> StateTarget:
    """The same test on both engines."""
    if request.param == "sqlite":
        return StateTarget(str(tmp_path / "state.db"))
    return request.getfixturevalue("pg_state")
