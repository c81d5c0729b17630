"""Scrape benchmark: pre-rendered exposition at 10k-150k series versus client_python.

For each fleet size a real exporter process serves a synthetic fleet (``scale:`` config,
re-polled continuously so rebuilds run during the measurements). Bursts of 1, 10 and 50
simultaneous scrapes on keep-alive connections (like Prometheus) measure latency with and
without gzip. Also: the exporter's own rebuild times (landing page), its
RSS, the drift monitor's observe_many over as many series as are exposed, and the
baseline - client_python's generate_latest (plus its level-9 gzip) on the same families.

    .venv/bin/python benchmarks/scrape.py [--sizes 10000,50000,100000,150000] [--seconds 2]

Prints a markdown table; takes about 4-5 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

SERIES_PER_BACKEND = 5800  # 127-qubit Eagle template, including drift and job series (measured)

CONFIG = """
providers:
  - kind: simulated
    backends: [fake_sherbrooke]
    seed: 1
    speedup: 600
    scale: {{backends: {backends}, qubits: 127}}
schedule:
  calibration_interval: 10s
  jobs_interval: 5s
state_path: {state}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str, gz: bool = False) -> bytes:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", path, headers={"Accept-Encoding": "gzip"} if gz else {})
    body = c.getresponse().read()
    c.close()
    return body


def _rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    return rss, hwm


def _scrape_cell(port: int, concurrency: int, gz: bool, seconds: float) -> list[float]:
    """Bursts: `concurrency` scrapers, each on its own keep-alive connection (as Prometheus
    keeps them), fire together, wait for the slowest, pause 20 ms, repeat. Latency is the
    time from sending the request to the last body byte, queueing behind the rest of the
    burst included. Connections are opened before measuring."""
    latencies: list[float] = []
    lock = threading.Lock()
    headers = {"Accept-Encoding": "gzip"} if gz else {}
    conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(concurrency)]
    for c in conns:
        c.request("GET", "/-/healthy")
        c.getresponse().read()
    go = threading.Barrier(concurrency + 1)
    done = threading.Barrier(concurrency + 1)
    stop = [False]

    def worker(conn):
        while True:
            go.wait()
            if stop[0]:
                return
            t = time.perf_counter()
            conn.request("GET", "/metrics", headers=headers)
            r = conn.getresponse()
            body = r.read()
            elapsed = time.perf_counter() - t
            assert r.status == 200 and len(body) == int(r.headers["Content-Length"])
            with lock:
                latencies.append(elapsed)
            done.wait()

    threads = [threading.Thread(target=worker, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline or len(latencies) < 100:
        go.wait()
        done.wait()
        time.sleep(0.02)
    stop[0] = True
    go.wait()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    return latencies


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q)) * 1000


def _baseline(text: str) -> dict:
    """client_python's generate_latest (and its gzip level 9) on the same families, and our
    renderer on them, parsed from the exporter's own output."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from qpu_exporter import textformat

    fams = list(text_string_to_metric_families(text))

    class C:
        def collect(self):
            return fams

    reg = CollectorRegistry(auto_describe=False)
    reg.register(C())
    t = time.perf_counter()
    body = generate_latest(reg)
    gl = time.perf_counter() - t
    t = time.perf_counter()
    gzip.compress(body, 9)
    gz9 = time.perf_counter() - t
    t = time.perf_counter()
    ours = textformat.render(fams)
    tf = time.perf_counter() - t
    return {"generate_latest_ms": gl * 1000, "gzip9_ms": gz9 * 1000, "textformat_ms": tf * 1000,
            "identical": ours == body}


def _drift_update(series: int) -> tuple[float, float]:
    """Seconds for one observe_many over `series` series: a warm-up round and a monitoring
    round (after the warm-up completed; warmup=10 to keep the benchmark short)."""
    from qpu_exporter.drift import DriftMonitor, DriftSettings

    rng = np.random.default_rng(0)
    keys = [("simulated", f"synthetic_{i // 1000:03d}", f"t1:q{i % 1000}") for i in range(series)]
    mon = DriftMonitor(DriftSettings(warmup=10))
    warm = 0.0
    for step in range(11):
        vals = 1e-4 * np.exp(0.1 * rng.standard_normal(series))
        t = time.perf_counter()
        mon.observe_many(keys, vals, np.full(series, 1000.0 + step))
        warm = max(warm, time.perf_counter() - t) if step < 10 else warm
    vals = 1e-4 * np.exp(0.1 * rng.standard_normal(series))
    t = time.perf_counter()
    mon.observe_many(keys, vals, np.full(series, 2000.0))
    return warm, time.perf_counter() - t


def run_size(target: int, seconds: float) -> dict:
    backends = max(1, round(target / SERIES_PER_BACKEND))
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "c.yaml"
        cfg.write_text(CONFIG.format(backends=backends, state=Path(d) / "s.db"))
        port = _free_port()
        log = open(Path(d) / "log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "qpu_exporter.cli", "serve", "--config", str(cfg),
             "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "QPU_EXPORTER_STATE_PATH": str(Path(d) / "s.db")},
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    c.request("GET", "/-/ready")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"exporter not ready: {(Path(d) / 'log').read_text()[-2000:]}")
                time.sleep(0.2)
            time.sleep(2 * 4.0)  # a few rebuilds with every backend calibrated
            text = _get(port, "/metrics").decode()
            series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
            gz_size = len(_get(port, "/metrics", gz=True))
            row: dict = {"target": target, "backends": backends, "series": series, "bytes": len(text),
                         "gzip_bytes": gz_size, "cells": {}}
            rebuilds: list[float] = []
            sampler_stop = threading.Event()

            def sample_rebuilds():
                seen = None
                while not sampler_stop.is_set():
                    page = _get(port, "/").decode()
                    m = re.search(r"rendered (\d+)s ago in (\d+) ms", page)
                    if m and m.group(0) != seen:
                        seen = m.group(0)
                        rebuilds.append(float(m.group(2)))
                    sampler_stop.wait(0.5)

            sampler = threading.Thread(target=sample_rebuilds, daemon=True)
            sampler.start()
            for gz in (False, True):
                for conc in (1, 10, 50):
                    lat = _scrape_cell(port, conc, gz, seconds)
                    row["cells"][(gz, conc)] = (_pct(lat, 50), _pct(lat, 99), len(lat))
            sampler_stop.set()
            sampler.join()
            row["rebuild_ms"] = (statistics.median(rebuilds), max(rebuilds)) if rebuilds else (float("nan"),) * 2
            row["rss_mb"] = _rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            log.close()
    row.update(_baseline(text))
    row["drift_warm_s"], row["drift_monitor_s"] = _drift_update(series)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,50000,100000,150000")
    ap.add_argument("--seconds", type=float, default=2.0, help="duration of each latency cell")
    args = ap.parse_args()
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    mem = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) / 2**20
    print(f"machine: nproc={os.cpu_count()} cpu={cpu.group(1) if cpu else '?'} ram={mem:.1f} GiB "
          f"python={sys.version.split()[0]} load={os.getloadavg()[0]:.2f}")
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        started = time.monotonic()
        rows.append(run_size(size, args.seconds))
        print(f"  size {size}: done in {time.monotonic() - started:.0f}s", file=sys.stderr)

    print()
    print("| series | backends | body MB | gzip MB | scrapers | p50 ms | p99 ms | p50 ms gzip | p99 ms gzip | scrapes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        for conc in (1, 10, 50):
            p50, p99, n = r["cells"][(False, conc)]
            g50, g99, gn = r["cells"][(True, conc)]
            print(f"| {r['series']:,} | {r['backends']} | {r['bytes'] / 1e6:.1f} | {r['gzip_bytes'] / 1e6:.2f} | {conc} "
                  f"| {p50:.1f} | {p99:.1f} | {g50:.1f} | {g99:.1f} | {n}+{gn} |")
    print()
    print("| series | rebuild ms (median / max) | RSS MB (now / peak) | client_python generate_latest ms | + gzip-9 ms "
          "| textformat ms (same families) | identical bytes | drift observe_many s (warm-up / monitoring) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['series']:,} | {r['rebuild_ms'][0]:.0f} / {r['rebuild_ms'][1]:.0f} | {r['rss_mb'][0]:.0f} / {r['rss_mb'][1]:.0f} "
              f"| {r['generate_latest_ms']:.0f} | {r['gzip9_ms']:.0f} | {r['textformat_ms']:.0f} | {r['identical']} "
              f"| {r['drift_warm_s']:.3f} / {r['drift_monitor_s']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
