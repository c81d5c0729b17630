"""State backends: SQLite file versus PostgreSQL, on the default simulated fleet.

Measures what a poll and a probe pay the store, with the same Store code on both engines:

- calibration poll: recording one backend's fresh calibration snapshot (history rows plus the
  latest snapshot) for the three default backends (127-156 qubits);
- jobs poll: recording a backend's job list as the poller asks for it (the look-back overlap
  means most jobs are known, a few are new and counted in the same transaction);
- probe reservation: one budget reservation (lock, sums over the 24 h ledger, insert), alone and
  with 4 threads racing;
- failover: two exporter processes on one PostgreSQL (same host) probe the same backends; the
  one holding a probe lease is SIGKILLed, and the clock runs until the other takes the lease and
  starts the next probe, and until that probe is recorded. (Across hosts the dead holder's lease
  is void only when it expires: docs/state.md.)

PostgreSQL is a throw-away local cluster (tests/pgcluster.py: initdb + pg_ctl, loopback TCP,
fsync off as in the tests, so the figures are the database's CPU and round trips, not a disk's).

    .venv/bin/python benchmarks/state_backends.py [--rounds 30] [--probe-interval 10]

Prints markdown tables; takes about 2-3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from pgcluster import new_cluster  # noqa: E402

from qpu_exporter.aggregates import job_increments  # noqa: E402
from qpu_exporter.providers.simulated.config import SimulatedProviderConfig  # noqa: E402
from qpu_exporter.probes.budget import WINDOW_SECONDS  # noqa: E402
from qpu_exporter.providers.fake_snapshots import DEFAULT_FLEET  # noqa: E402
from qpu_exporter.providers.simulated.provider import SimulatedProvider  # noqa: E402
from qpu_exporter.quality import validate_snapshot  # noqa: E402
from qpu_exporter.scheduler import JOBS_OVERLAP_SECONDS  # noqa: E402
from qpu_exporter.store import Store  # noqa: E402

ORIGIN = 1_800_000_000.0


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(0.95 * len(values)))]
    return f"{1000 * statistics.median(values):.1f} / {1000 * p95:.1f}"


class Clock:
    def __init__(self) -> None:
        self.t = ORIGIN

    def __call__(self) -> float:
        return self.t


def measure(store: Store, rounds: int) -> dict[str, str]:
    clock = Clock()
    sim = SimulatedProvider(SimulatedProviderConfig(kind="simulated", backends=list(DEFAULT_FLEET), speedup=60.0),
                            origin=ORIGIN, clock=clock)
    cal, jobs, rows, new_jobs = [], [], 0, 0
    cursor: dict[str, float] = {}
    for _ in range(rounds):
        clock.t += 300  # a calibration poll every 5 min at speedup 60: 5 simulated hours
        for backend in DEFAULT_FLEET:
            snap, _rejected = validate_snapshot(sim.calibration(backend))
            t0 = time.perf_counter()
            rows += store.record_calibration(snap)
            cal.append(time.perf_counter() - t0)
            since = cursor.get(backend)
            seen = sim.jobs(backend, None if since is None else since - JOBS_OVERLAP_SECONDS)
            t0 = time.perf_counter()
            new = store.record_jobs(seen, job_increments, clock())
            jobs.append(time.perf_counter() - t0)
            new_jobs += len(new)
            if seen:
                cursor[backend] = max(j.finished_at for j in seen)
    caps = (1e12, 1e12, 1e12, 1e12)

    def reserve() -> float:
        now = time.time()
        t0 = time.perf_counter()
        store.reserve_probe_budget("simulated", "fake_fez", 1000, 0.5, now, now - WINDOW_SECONDS, caps)
        return time.perf_counter() - t0

    for _ in range(200):  # a ledger with some history in the window
        reserve()
    alone = [reserve() for _ in range(200)]
    raced: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [reserve() for _ in range(50)]
        with lock:
            raced.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "calibration poll (ms, median / p95)": _ms(cal),
        "jobs poll (ms, median / p95)": _ms(jobs),
        "probe reservation (ms, median / p95)": _ms(alone),
        "reservation, 4 threads racing (ms)": _ms(raced),
        "history rows / jobs recorded": f"{rows} / {new_jobs}",
    }


FAILOVER = """
providers:
  - kind: simulated
    backends: [fake_lagos, fake_manila]
    seed: 11
    speedup: 3600
schedule: {calibration_interval: 5s, jobs_interval: 5s, probe_interval: %ss}
probes:
  start_delay: 0s
  max_concurrent: 2
  shots_per_probe: 300
  min_shots: 20
  max_circuits: 12
  max_length: 200
  agreement_shots: 0
  targets: [{backend: fake_lagos, qubits: [0, 1]}, {backend: fake_manila, qubits: [0, 1]}]
  budget: {shots_per_day: 10000000, usd_per_day: 10000000}
"""


def _wait(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out waiting for {what}")


def failover(cluster, interval: float, trials: int) -> list[tuple[float, float]]:
    """(seconds until the survivor holds a lease, seconds until its probe is recorded) per kill."""
    import psycopg

    url = cluster.create_database()
    Store(url, password=cluster.password, instance="setup").close()  # the schema, before anyone polls it
    tmp = Path(tempfile.mkdtemp(prefix="qpu-failover-"))
    (tmp / "config.yaml").write_text(FAILOVER % interval)
    env = {**os.environ, "QPU_EXPORTER_STATE_PATH": "", "QPU_EXPORTER_STATE_URL": url,
           "QPU_EXPORTER_STATE_PASSWORD": cluster.password}
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str) -> None:
        log = (tmp / f"{name}.log").open("ab")
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "qpu_exporter.cli", "serve", "--config", str(tmp / "config.yaml"),
             "--web.listen-address", "127.0.0.1:0"], env={**env, "QPU_EXPORTER_INSTANCE": name},
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp)

    def rows(sql: str) -> list[tuple]:
        with psycopg.connect(cluster.url(url.rsplit("/", 1)[1], password=True)) as conn:
            return conn.execute(sql).fetchall()

    def holders() -> dict[str, str]:
        by_pid = {str(p.pid): n for n, p in procs.items() if p.poll() is None}
        return {by_pid.get(h.split(":")[1], "?"): h for (h,) in rows("SELECT holder FROM probe_leases")}

    out = []
    try:
        start("replica-a")
        start("replica-b")
        for _ in range(trials):
            # A replica in the middle of a probe (it holds the backend's lease) dies; the clock
            # runs until the survivor holds a lease (its next tick: the dead holder's lease is
            # void, its pid being gone) and until the survivor's probe is recorded (a replica
            # that never probed first spends seconds importing qiskit's transpiler plugins).
            held = _wait(lambda: {n: h for n, h in holders().items() if n in procs}, 600, "a probe lease", 0.01)
            victim = next(iter(held))
            survivor = next(n for n in procs if n != victim)
            last_run = rows("SELECT coalesce(max(id), 0) FROM probe_runs")[0][0]
            procs[victim].send_signal(signal.SIGKILL)
            killed = time.monotonic()
            procs[victim].wait()
            _wait(lambda: survivor in holders(), 4 * interval + 120, "the survivor's lease", 0.01)
            took = time.monotonic() - killed
            _wait(lambda: rows(f"SELECT count(*) FROM probe_runs WHERE id > {last_run}")[0][0] > 0,
                  4 * interval + 300, "the survivor's probe record", 0.05)
            out.append((took, time.monotonic() - killed))
            start(victim)  # back; the next trial kills whichever replica holds a lease then
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30, help="poll rounds per engine (3 backends each)")
    ap.add_argument("--probe-interval", type=float, default=10.0, help="probe_interval of the failover replicas")
    ap.add_argument("--trials", type=int, default=3, help="failovers measured")
    args = ap.parse_args()
    cluster = new_cluster()
    try:
        results = {}
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = Store(Path(tmp) / "state.db")
            results["SQLite (WAL, synchronous=NORMAL)"] = measure(sqlite, args.rounds)
            sqlite.close()
        pg = Store(cluster.create_database(), password=cluster.password, instance="bench")
        results["PostgreSQL 15 (loopback TCP)"] = measure(pg, args.rounds)
        pg.close()
        names = list(results)
        print(f"\n| store operation, default fleet ({args.rounds} rounds x 3 backends) | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for row in results[names[0]]:
            print(f"| {row} | " + " | ".join(results[n][row] for n in names) + " |")
        trials = failover(cluster, args.probe_interval, args.trials)
        print(f"\n| failover (two replicas, probe_interval {args.probe_interval:g} s, SIGKILL of the lease holder) "
              f"| seconds |")
        print("|---|---|")
        for i, (lease, recorded) in enumerate(trials, 1):
            print(f"| trial {i}: survivor holds the lease / its probe recorded | {lease:.1f} / {recorded:.1f} |")
        print(f"| median until the survivor holds the lease | {statistics.median(t for t, _ in trials):.1f} |")
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
    finally:
        cluster.remove()


if __name__ == "__main__":
    main()
