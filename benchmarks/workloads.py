"""Cost of the per-workload series: series added, exposition size, rebuild time and scrape
latency, without and with a `workloads:` block, on the same jobs.

Two fleets: the no-config demo (the three default fake backends, teams chem/finance/ml plus the
untagged tenth) and 30 synthetic 127-qubit backends with 50 kept workloads plus untagged and
other (every workload on every backend: the worst case `max: 50` allows). The exporter's own
parts are used in-process: a store filled through record_jobs (with and without a
WorkloadBook), the calibration of every backend in the view, the exposition families, the
renderer and the HTTP server; scrapes are sequential keep-alive GETs of /metrics.

    .venv/bin/python benchmarks/workloads.py [--scrapes 200]

Prints a markdown table; about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from qpu_exporter.aggregates import job_increments
from qpu_exporter.exposition import Renderer, families, workload_config_families
from qpu_exporter.config import Config
from qpu_exporter.model import JOB_DONE, JOB_FAILED, BackendInfo, BackendStatus, JobRecord
from qpu_exporter.providers.fake_snapshots import DEFAULT_FLEET
from qpu_exporter.providers.simulated.provider import SimulatedProvider
from qpu_exporter.providers.simulated.synthetic import synthetic_fleet
from qpu_exporter.server import ExporterHTTPServer
from qpu_exporter.store import Store
from qpu_exporter import textformat
from qpu_exporter.view import FleetView
from qpu_exporter.workloads import WorkloadBook


def _fleet(kind: str) -> tuple[FleetView, list[str], list[str]]:
    """(view with every backend's calibration, backend names, workload tag values)."""
    view = FleetView()
    if kind == "demo":
        cfg = Config.model_validate({"providers": [{"kind": "simulated", "backends": list(DEFAULT_FLEET)}]}).providers[0]
        sim = SimulatedProvider(cfg, origin=time.time())
        for info in sim.backends():
            view.set_backend(info)
            view.set_calibration((info.provider, info.backend), sim.calibration(info.backend))
        names, teams = [i.backend for i in sim.backends()], ["chem", "finance", "ml"]
    else:
        names = []
        for name, snap, processor in synthetic_fleet("fake_sherbrooke", 30, 127, seed=1):
            view.set_backend(BackendInfo("simulated", name, len(snap.qubits), processor))
            snap.provider, snap.backend = "simulated", name
            view.set_calibration(("simulated", name), snap)
            names.append(name)
        teams = [f"team-{i:02d}" for i in range(60)]  # 50 kept, the rest overflow to other
    for name in names:
        view.set_status(("simulated", name), BackendStatus(True, 10, "active", time.time()))
    return view, names, teams


def _jobs(names: list[str], teams: list[str], per_pair: int) -> list[JobRecord]:
    rng = random.Random(1)
    out, i = [], 0
    for backend in names:
        for team in [*teams, None]:
            for _ in range(per_pair):
                i += 1
                failed = rng.random() < 0.03
                out.append(JobRecord("simulated", backend, f"j{i}", JOB_FAILED if failed else JOB_DONE, 1e9, 1e9 + 60,
                                     rng.lognormvariate(5, 1), 15.0, 12.0, 20.0,
                                     "execution_error" if failed else "", tags=(("team", team),) if team else ()))
    return out


def _measure(view: FleetView, store: Store, workloads_cfg, book, names: list[str], teams: list[str],
             scrapes: int) -> dict:
    extra = [] if workloads_cfg is None else workload_config_families(workloads_cfg)
    calibration_cache: dict = {}
    histogram_cache: dict = {}

    def build(snapshot):
        return families(snapshot, store.counters(), version="b", revision="b", daily_budget_usd=1.0, extra=extra,
                        calibration_cache=calibration_cache, workloads=workloads_cfg is not None,
                        histogram_cache=histogram_cache)

    text = textformat.render(build(view.copy()))  # warm the caches, as a running exporter has
    series = sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))
    renderer = Renderer(view, build)
    rebuilds = []
    rng = random.Random(2)
    for i in range(7):
        # One backend's jobs poll lands between rebuilds: 20 new jobs of random teams.
        backend = names[i % len(names)]
        new = [JobRecord("simulated", backend, f"poll{i}-{k}", JOB_DONE, 1e9, 1e9 + 60, rng.lognormvariate(5, 1),
                         15.0, 12.0, 20.0, tags=(("team", rng.choice(teams)),)) for k in range(20)]
        store.record_jobs(new, job_increments, 2.0, workloads=book)
        view.touch()
        cpu = time.process_time()  # CPU time: the machine may be shared; wall time would measure the others
        renderer.render()
        rebuilds.append(time.process_time() - cpu)
    server = ExporterHTTPServer(("127.0.0.1", 0), renderer, view, ["simulated"], "b")
    server.serve_in_thread()
    latencies = {False: [], True: []}
    try:
        for gz in (False, True):
            conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
            headers = {"Accept-Encoding": "gzip"} if gz else {}
            for _ in range(scrapes):
                t = time.perf_counter()
                conn.request("GET", "/metrics", headers=headers)
                body = conn.getresponse().read()
                latencies[gz].append(time.perf_counter() - t)
            conn.close()
    finally:
        server.shutdown()
    return {
        "series": series,
        "bytes": len(renderer.current.text),
        "gzip": len(gzip.compress(renderer.current.text, 1)),
        "rebuild_ms": statistics.median(rebuilds) * 1000,  # CPU ms, gzip included
        "scrape_ms": statistics.median(latencies[False]) * 1000,
        "scrape_gz_ms": statistics.median(latencies[True]) * 1000,
        "body": len(body),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=200, help="scrapes per cell")
    args = parser.parse_args(argv)
    rows = []
    for kind, label, per_pair in (("demo", "demo (3 backends, 3 teams + untagged)", 20),
                                  ("scale", "30 x 127-qubit backends, 50 workloads + untagged + other", 3)):
        view, names, teams = _fleet(kind)
        jobs = _jobs(names, teams, per_pair)
        with tempfile.TemporaryDirectory() as tmp:
            plain, tagged = Store(Path(tmp) / "plain.db"), Store(Path(tmp) / "tagged.db")
            plain.record_jobs(jobs, job_increments, 1.0)
            cfg = Config.model_validate({"workloads": {"max": 50}}).workloads
            book = WorkloadBook(cfg.tag, cfg.max)
            tagged.record_jobs(jobs, job_increments, 1.0, workloads=book)
            before = _measure(view, plain, None, None, names, teams, args.scrapes)
            after = _measure(view, tagged, cfg, book, names, teams, args.scrapes)
            plain.close()
            tagged.close()
        rows.append((label, before, after))
        print(f"{label}: done", file=sys.stderr)
    print("| fleet | series before → after (added) | text KiB before → after | gzip KiB | rebuild CPU ms | "
          "scrape ms (plain) | scrape ms (gzip) |")
    print("|---|---|---|---|---|---|---|")
    for label, b, a in rows:
        print(f"| {label} | {b['series']:,} → {a['series']:,} (+{a['series'] - b['series']:,}, "
              f"+{100 * (a['series'] - b['series']) / b['series']:.1f} %) | {b['bytes'] / 1024:,.0f} → {a['bytes'] / 1024:,.0f} | "
              f"{b['gzip'] / 1024:,.0f} → {a['gzip'] / 1024:,.0f} | {b['rebuild_ms']:.0f} → {a['rebuild_ms']:.0f} | "
              f"{b['scrape_ms']:.2f} → {a['scrape_ms']:.2f} | {b['scrape_gz_ms']:.2f} → {a['scrape_gz_ms']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
