"""Exporters sharing one PostgreSQL (docs/state.md), as real processes on the simulated fleet.

A replica pair probes each backend once per tick between them, never both at once, never past
the cap, and carries on alone when one is SIGKILLed; both export the same probe series, and
``max by`` over the pair is exactly what the shared probe records say; the shipped job and cost
rules, evaluated by real Prometheus servers over the pair and over a single exporter watching the
same simulated fleet, agree. Three shards hold one global cap together and never count a backend twice.
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from conftest import StateTarget, parse_samples, sample, wait_until
from qpu_exporter.sharding import shard_of

RULES = sorted(str(p) for p in (Path(__file__).resolve().parents[1] / "alerts" / "rules").glob("*.yml"))
PAIR_CAP = 900  # shots per backend and day: three two-qubit probes of 288 shots
# Small fast probes, every 2 s from the start.
PROBES = """
state_path: STATE_PATH
schedule: {calibration_interval: 1s, jobs_interval: 1s, probe_interval: 2s}
probes:
  start_delay: 0s
  max_concurrent: 2
  shots_per_probe: 300
  min_shots: 20
  max_circuits: 12
  agreement_shots: 0"""
PAIR = """
providers:
  - kind: simulated
    backends: [fake_lagos, fake_manila]
    seed: 11
    speedup: 3600
    incidents:
      - {backend: fake_manila, kind: job_failures, at: 0s, duration: 30d}
""" + PROBES + """
  max_length: 200
  targets: [{backend: fake_lagos, qubits: [0, 1]}, {backend: fake_manila, qubits: [0, 1]}]
  budget: {shots_per_day: %d, usd_per_day: 100000}
""" % PAIR_CAP
PROBE_SERIES = ("qpu_probe_runs_total", "qpu_probe_shots_total", "qpu_probe_failures_total",
                "qpu_probe_last_success_timestamp_seconds", "qpu_probe_epc_ratio")


def _engine(state):
    return create_engine(state.target.replace("postgresql://", "postgresql+psycopg://"),
                         connect_args={"password": state.password})


def _probe_records(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT backend, started_at, finished_at, shots, status FROM probe_runs ORDER BY backend, started_at"))]


def _ledger(engine) -> dict[str, float]:
    with engine.connect() as conn:
        return {b: float(s) for b, s in conn.execute(text("SELECT backend, sum(shots) FROM probe_ledger GROUP BY backend"))}


def _assert_no_overlap(records: list[tuple]) -> None:
    """Probes of one backend (by whichever process) never ran at the same time."""
    for (b1, _s1, f1, *_), (b2, s2, *_rest) in zip(records, records[1:]):
        if b1 == b2:
            assert f1 <= s2, f"two probes of {b1} overlapped: one finished at {f1}, the next started at {s2}"


def _probe_view(ex) -> dict:
    return {(n, tuple(sorted(lab.items()))): v for n, lab, v in parse_samples(ex.metrics()) if n in PROBE_SERIES}


def _seed_origin(state, origin: float) -> None:
    """The simulated fleet's history starts at the origin stored in the state: the same origin
    for the single exporter and the pair makes them watch the same fleet."""
    store = state.store()
    store.set_meta("simulation_origin", repr(origin))
    store.close()


def _query_at(prom, promql: str, at: float) -> dict[tuple, float]:
    import json
    import urllib.parse

    from conftest import http_get

    url = f"http://127.0.0.1:{prom.port}/api/v1/query?" + urllib.parse.urlencode({"query": promql, "time": at})
    code, body, _ = http_get(url)
    data = json.loads(body)
    assert code == 200 and data["status"] == "success", body[:300]
    return {tuple(sorted(r["metric"].items())): float(r["value"][1]) for r in data["data"]["result"]}


def _truth(records: list[tuple]) -> dict[str, dict[str, float]]:
    """qpu_probe_* totals per backend as the shared records have them."""
    out: dict[str, dict[str, float]] = {}
    for backend, _s, _f, shots, status in records:
        t = out.setdefault(backend, {"qpu_probe_runs_total": 0.0, "qpu_probe_shots_total": 0.0,
                                     "qpu_probe_failures_total": 0.0})
        t["qpu_probe_runs_total"] += 1
        t["qpu_probe_shots_total"] += shots
        t["qpu_probe_failures_total"] += status != "ok"
    return out


def test_a_replica_pair_probes_once_within_the_cap_fails_over_and_answers_like_one_exporter(
        tmp_path, start_exporter, start_prometheus, pg_state):
    single = StateTarget(str(tmp_path / "single.db"))
    origin = time.time()
    _seed_origin(single, origin)
    _seed_origin(pg_state, origin)
    # The single exporter does not probe: its probe answers are a single exporter's as ever
    # (its own records); it is here for the job and cost rules over the same fleet.
    s = start_exporter(PAIR.replace("probes:\n", "probes:\n  enabled: false\n"), state_path=Path(single.target),
                       ready=False)
    pair = {name: start_exporter(PAIR, ready=False, env={**pg_state.env(), "QPU_EXPORTER_INSTANCE": name})
            for name in ("replica-a", "replica-b")}
    for ex in (s, *pair.values()):
        wait_until(lambda ex=ex: ex.get("/-/ready", timeout=2)[0] == 200, 120, "exporter ready", interval=0.3)
    p_single = start_prometheus([f"127.0.0.1:{s.port}"], rule_files=RULES)
    p_pair = start_prometheus([f"127.0.0.1:{ex.port}" for ex in pair.values()], rule_files=RULES)
    engine = _engine(pg_state)

    # Both backends probed by the pair; both replicas then export the same probe series.
    wait_until(lambda: {r[0] for r in _probe_records(engine)} == {"fake_lagos", "fake_manila"}, 150,
               "a probe of each backend by the pair", interval=0.5)
    wait_until(lambda: _probe_view(pair["replica-a"]) == _probe_view(pair["replica-b"]), 30,
               "both replicas exporting the same probe series", interval=0.5)

    # SIGKILL the replica holding a probe lease (mid-probe), else the one that probed last.
    with engine.connect() as conn:
        holders = [h for (h,) in conn.execute(text("SELECT holder FROM probe_leases"))]
    pids = {name: str(ex.proc.pid) for name, ex in pair.items()}
    busy = [n for n, pid in pids.items() if any(h.split(":")[1] == pid for h in holders)]
    victim = busy[0] if busy else max(pair, key=lambda n: pair[n].log().rfind("probe succeeded"))
    survivor = next(n for n in pair if n != victim)
    before = len(_probe_records(engine))
    pair[victim].proc.send_signal(signal.SIGKILL)
    pair[victim].proc.wait(timeout=10)
    mark = len(pair[survivor].log())

    def capped(ex) -> bool:
        text_ = ex.metrics()
        return all((sample(text_, "qpu_probe_skipped_total", backend=b, reason="budget") or 0) >= 1
                   for b in ("fake_lagos", "fake_manila"))

    # The survivor takes the dead replica's lease and probes on, until the cap stops it.
    wait_until(lambda: "probe succeeded" in pair[survivor].log()[mark:], 150, "the survivor probing", interval=0.5)
    wait_until(lambda: capped(pair[survivor]), 120, "the pair reaching its cap", interval=0.5)
    records = _probe_records(engine)
    assert len(records) > before
    # The database password (from the environment) is nowhere: logs, landing page, the state.
    for ex in pair.values():
        assert pg_state.password not in ex.log()
    assert pg_state.password not in pair[survivor].get("/")[1].decode()
    with engine.connect() as conn:
        tables = [t for (t,) in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))]
        for table in tables:
            assert not conn.execute(text(f"SELECT 1 FROM {table} t WHERE t::text LIKE :pw"),
                                    {"pw": f"%{pg_state.password}%"}).first(), table
    _assert_no_overlap(records)
    ledger = _ledger(engine)
    assert set(ledger) == {"fake_lagos", "fake_manila"} and all(v <= PAIR_CAP for v in ledger.values()), ledger

    # The shipped rules over the pair (one replica dead, its series stale) and over the single
    # exporter: probe counters are what the shared records say, job and cost rules agree.
    truth = _truth(records)

    def answers(prom, want: dict) -> bool:
        at = time.time()
        for name in ("qpu_probe_runs_total", "qpu_probe_shots_total", "qpu_probe_failures_total"):
            got = _query_at(prom, f"max by (provider, backend) ({name})", at)
            if {dict(k)["backend"]: v for k, v in got.items()} != {b: t[name] for b, t in want.items()}:
                return False
        return True

    # (Polled: the survivor follows the last records within seconds, then it is scraped.)
    wait_until(lambda: answers(p_pair, truth), 40, "max by over the pair = the shared records", interval=0.5)
    # The two Prometheus servers scrape at different instants, so their 5-minute windows can
    # differ by a job at either edge: a ratio over N jobs may move by 1/N on top of the 20 %.
    at = time.time()
    jobs_in_window: dict[str, float] = {}  # the fewer of the two servers' counts: the larger 1/N
    for prom in (p_single, p_pair):
        for k, v in _query_at(prom, "provider_backend:qpu_jobs:rate5m", at).items():
            b = dict(k)["backend"]
            jobs_in_window[b] = min(jobs_in_window.get(b, math.inf), v * 300)
    for rule in ("provider_backend:qpu_jobs:rate5m", "provider_backend:qpu_jobs_failed:ratio_rate5m",
                 "fleet:qpu_cost_usd:increase1d"):
        one, two = _query_at(p_single, rule, at), _query_at(p_pair, rule, at)
        assert one.keys() == two.keys() and one, rule
        for key in one:
            edge = 1 / max(jobs_in_window.get(dict(key).get("backend"), 1), 1) if "ratio" in rule else 0
            edge *= 1.01  # float rounding of rate() and the division
            assert abs(one[key] - two[key]) <= 0.2 * max(abs(one[key]), 1e-9) + edge, (rule, key, one[key], two[key])
    engine.dispose()


SHARDS = """
providers:
  - kind: simulated
    backends: [fake_manila, fake_perth, fake_nairobi, fake_casablanca, fake_lagos, fake_jakarta]
    seed: 3
    speedup: 3600
""" + PROBES + """
  max_length: 40
  auto_qubits: 1
  auto_pairs: 0
  budget: {shots_per_day: 100000, usd_per_day: 100000, global_shots_per_day: 900}
"""


def test_three_shards_hold_one_global_cap_and_never_count_a_backend_twice(start_exporter, pg_state):
    backends = ["fake_manila", "fake_perth", "fake_nairobi", "fake_casablanca", "fake_lagos", "fake_jakarta"]
    owner = {b: shard_of("simulated", b, 3) for b in backends}
    assert sorted(set(owner.values())) == [0, 1, 2], "every shard owns a backend"
    shards = [start_exporter(SHARDS, ready=False, extra_args=["--shard", f"{i}/3"],
                             env={**pg_state.env(), "QPU_EXPORTER_INSTANCE": f"shard-{i}"}) for i in range(3)]
    for ex in shards:
        wait_until(lambda ex=ex: ex.get("/-/ready", timeout=2)[0] == 200, 120, "shard ready", interval=0.3)

    def refused(ex, i: int) -> bool:  # every backend of the shard was refused budget at least once
        text_ = ex.metrics()
        return all((sample(text_, "qpu_probe_skipped_total", backend=b, reason="budget") or 0) >= 1
                   for b in backends if owner[b] == i)

    for i, ex in enumerate(shards):
        wait_until(lambda ex=ex, i=i: refused(ex, i), 180, f"shard {i} refused by the global cap", interval=0.5)
    engine = _engine(pg_state)
    with engine.connect() as conn:
        granted = conn.execute(text("SELECT count(*), coalesce(sum(shots), 0) FROM probe_ledger")).one()
    assert granted[0] == 3 and granted[1] == 900, granted  # exactly the cap, across three processes
    engine.dispose()

    # Each backend is counted by its owner only; no shard shows another's backends.
    seen: dict[str, set[str]] = {}
    for i, ex in enumerate(shards):
        mine = {lab["backend"] for n, lab, _v in parse_samples(ex.metrics())
                if n.startswith(("qpu_jobs_total", "qpu_probe_", "qpu_drift_")) and lab.get("backend")}
        assert mine == {b for b in backends if owner[b] == i}, (i, mine)
        for b in mine:
            seen.setdefault(b, set()).add(i)
    assert sorted(seen) == sorted(backends) and all(len(v) == 1 for v in seen.values())
