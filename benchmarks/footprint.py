"""Footprint of the serving process with probes off and with probes back to back.

Two real exporter processes on the default simulated fleet (fake_sherbrooke, fake_fez,
fake_boston), one after the other:

A. probes off: time from exec to the first successful ``/metrics`` (three starts, median),
   idle RSS, gzip scrape latency.
B. probes back to back (start_delay 25s; the first tick of each backend probes its four
   automatic targets, one probe at a time: 12 probes queued) until a global shot cap stops
   them after about ``--probes`` probes (later ones are skipped for budget): gzip scrape latency while they run, the serving process's RSS peak
   (VmHWM), the peak of any child process (the probe worker, when there is one), the peak of
   the whole process tree, and the tree's RSS before the first probe and 10 s after the last.

Scrapes: one keep-alive connection asking for gzip (as Prometheus does), one request every
50 ms from a process of its own; latency = request sent to last body byte. A failed scrape is
counted, never dropped. "During probes" is from the first probe's start to the last one's end;
"after" the 10 s after it (no probes, polls go on).

    .venv/bin/python benchmarks/footprint.py [--probes 8] [--seconds 120]

Targets (issue #15): serving RSS peak <= 250 MB; scrape p99 during probes <= 2x p99 with
probes off; tree RSS after probes within 50 MB of idle; first /metrics within 2 s.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIG_OFF = """
probes: {{enabled: false}}
state_path: {state}
"""

CONFIG_ON = """
probes:
  start_delay: 25s
  max_concurrent: 1
  targets_per_tick: 4
  budget: {{shots_per_day: 10000000, usd_per_day: 100000, global_shots_per_day: {cap}, global_usd_per_day: 100000}}
state_path: {state}
"""
SHOTS_PER_PROBE = 2200  # default design: ~2000 shots, pair probes 2180 with the Bell circuit


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_kb(pid: int, field: str) -> float:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    m = re.search(rf"{field}:\s+(\d+)", text)
    return float(m.group(1)) if m else 0.0


def _descendants(pid: int) -> list[int]:
    """Every live descendant of pid (from /proc/<pid>/task/*/children, recursively)."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                kids = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            out += [int(k) for k in kids]
            todo += [int(k) for k in kids]
    return out


def tree_mb(pid: int) -> tuple[float, int]:
    """RSS of pid and its descendants (MB), and how many descendants there are."""
    kids = _descendants(pid)
    return (_status_kb(pid, "VmRSS") + sum(_status_kb(k, "VmRSS") for k in kids)) / 1024, len(kids)


# The sampler and the scraper run in processes of their own: as threads of the benchmark they
# would share its GIL with each other and with the main thread's metric parsing, and a scrape
# would be timed late for reasons that are not the exporter's.
def sample_tree(pid: int, conn) -> None:
    """Every 100 ms: the tree's RSS and each descendant's peak (VmHWM), until told to stop."""
    tree_peak = child_peak = 0.0
    seen: set[int] = set()
    while not conn.poll(0.1):
        kids = _descendants(pid)
        seen.update(kids)
        for k in kids:
            child_peak = max(child_peak, _status_kb(k, "VmHWM") / 1024)
        tree = (_status_kb(pid, "VmRSS") + sum(_status_kb(k, "VmRSS") for k in kids)) / 1024
        tree_peak = max(tree_peak, tree)
    conn.send({"tree_peak_mb": tree_peak, "child_peak_mb": child_peak, "children_seen": len(seen)})


def scrape(port: int, conn) -> None:
    """A gzip scrape every 50 ms on one keep-alive connection, until told to stop; sends back
    (monotonic start time, latency) per scrape and the number of failed scrapes."""
    latencies: list[tuple[float, float]] = []
    failures, c = 0, None
    while not conn.poll(0):
        start, t = time.monotonic(), time.perf_counter()
        try:
            if c is None:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            r = c.getresponse()
            body = r.read()
            if r.status != 200 or len(body) != int(r.headers["Content-Length"]):
                raise OSError(f"status {r.status}")
            latencies.append((start, time.perf_counter() - t))
        except (OSError, http.client.HTTPException):
            failures += 1
            c = None
        time.sleep(max(0.0, 0.05 - (time.perf_counter() - t)))
    conn.send((latencies, failures))


class Helper:
    """A function above running in a spawned process until ``stop()``, which returns its result."""

    def __init__(self, target, *args):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(*args, child), daemon=True)
        self.proc.start()

    def stop(self):
        self.conn.send("stop")
        result = self.conn.recv()
        self.proc.join(10)
        return result


def _window(latencies: list[tuple[float, float]], start: float, end: float) -> list[float]:
    return [lat for t, lat in latencies if start <= t < end]


def _metrics(port: int) -> str:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", "/metrics")
    return c.getresponse().read().decode()


def _sum(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _start(config: str, d: Path, tag: str) -> tuple[subprocess.Popen, int, float]:
    """Start serve; returns (process, port, seconds from exec to the first 200 on /metrics)."""
    cfg = d / f"{tag}.yaml"
    state = d / f"{tag}.db"
    cfg.write_text(config.format(state=state, cap=0))
    port = _free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qpu_exporter.cli", "serve", "--config", str(cfg), "--web.listen-address",
         f"127.0.0.1:{port}", "--log.level", "warn"],
        stdout=open(d / f"{tag}.log", "wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "QPU_EXPORTER_STATE_PATH": str(state)}, cwd=d,
    )
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/metrics")
            if c.getresponse().status == 200:
                return proc, port, time.monotonic() - started
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() - started > 120:
            raise RuntimeError(f"exporter did not serve: {(d / f'{tag}.log').read_text()[-2000:]}")
        time.sleep(0.01)


def _wait_ready(port: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/-/ready")
        if c.getresponse().status == 200:
            return
        time.sleep(0.2)
    raise RuntimeError("not ready")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _pcts(xs: list[float]) -> tuple[float, float, int]:
    if not xs:
        return float("nan"), float("nan"), 0
    a = np.array(xs) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), len(xs)


def probes_off(d: Path, seconds: float) -> dict:
    starts = []
    for i in range(3):
        proc, port, first = _start(CONFIG_OFF, d, f"off{i}")
        starts.append(first)
        if i < 2:
            _stop(proc)
    _wait_ready(port)
    time.sleep(10)
    idle = _status_kb(proc.pid, "VmRSS") / 1024
    scraper = Helper(scrape, port)
    time.sleep(seconds)
    latencies, failures = scraper.stop()
    out = {"first_metrics_s": starts, "idle_mb": idle, "scrape": _pcts([lat for _, lat in latencies]),
           "failures": failures, "peak_mb": _status_kb(proc.pid, "VmHWM") / 1024}
    _stop(proc)
    return out


def probes_on(d: Path, n_probes: int) -> dict:
    config = CONFIG_ON.replace("{cap}", str(n_probes * SHOTS_PER_PROBE))
    proc, port, first = _start(config, d, "on")
    t0 = time.monotonic()
    sampler = Helper(sample_tree, proc.pid)
    _wait_ready(port)
    scraper = Helper(scrape, port)
    # Idle: before the first probe (start_delay 25 s), after the first polls settled.
    while time.monotonic() - t0 < 20:
        time.sleep(0.2)
    idle_tree, _ = tree_mb(proc.pid)
    idle_serving = _status_kb(proc.pid, "VmRSS") / 1024
    while time.monotonic() - t0 < 25:
        time.sleep(0.1)
    probing_started = time.monotonic()
    last_runs, last_change = 0.0, time.monotonic()
    while True:
        time.sleep(1.0)
        text = _metrics(port)
        runs = _sum(text, "qpu_probe_runs_total")
        if runs != last_runs:
            last_runs, last_change = runs, time.monotonic()
        skipped = _sum(text, "qpu_probe_skipped_total", reason="budget")
        if skipped > 0 and time.monotonic() - last_change > 15:
            break
        if time.monotonic() - probing_started > 1800:
            raise RuntimeError("probes did not finish in 30 min")
    probing_ended = time.monotonic()
    time.sleep(10)
    after_tree, after_kids = tree_mb(proc.pid)
    latencies, failures = scraper.stop()
    tree = sampler.stop()
    text = _metrics(port)
    failed = _sum(text, "qpu_probe_failures_total")
    out = {"first_metrics_s": first, "idle_tree_mb": idle_tree, "idle_serving_mb": idle_serving,
           "serving_peak_mb": _status_kb(proc.pid, "VmHWM") / 1024, "worker_peak_mb": tree["child_peak_mb"],
           "workers": tree["children_seen"], "tree_peak_mb": tree["tree_peak_mb"],
           "after_tree_mb": after_tree, "after_children": after_kids, "runs": last_runs, "failed": failed,
           "probing_s": last_change - probing_started,
           "scrape": _pcts(_window(latencies, probing_started, last_change)),
           "scrape_after": _pcts(_window(latencies, probing_ended, time.monotonic())), "failures": failures}
    _stop(proc)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probes", type=int, default=8, help="probes to run back to back (global shot cap)")
    ap.add_argument("--seconds", type=float, default=120.0,
                    help="scrape window with probes off (as long as the probes take, so it sees as many polls)")
    args = ap.parse_args()
    cpu = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    print(f"machine: nproc={os.cpu_count()} cpu={cpu.group(1) if cpu else '?'} python={sys.version.split()[0]} "
          f"load at start={os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        off = probes_off(d, args.seconds)
        on = probes_on(d, args.probes)
    print(f"load at end={os.getloadavg()}")
    o50, o99, on_n = off["scrape"]
    p50, p99, pn = on["scrape"]
    a50, a99, an = on["scrape_after"]
    first = statistics.median(off["first_metrics_s"])
    rows = [
        ("first /metrics after exec (median of 3, s)", f"{first:.2f}  ({', '.join(f'{x:.2f}' for x in off['first_metrics_s'])})", "<= 2"),
        ("serving RSS idle, probes off (MB)", f"{off['idle_mb']:.0f}", ""),
        ("serving RSS peak, probes off (MB)", f"{off['peak_mb']:.0f}", ""),
        ("gzip scrape p50 / p99, probes off (ms)", f"{o50:.1f} / {o99:.1f}  (n={on_n}, failed {off['failures']})", ""),
        ("serving RSS before probes (MB)", f"{on['idle_serving_mb']:.0f}", ""),
        ("serving RSS peak, probes back to back (MB)", f"{on['serving_peak_mb']:.0f}", "<= 250"),
        ("worker peak RSS (MB)", f"{on['worker_peak_mb']:.0f}  ({on['workers']} child processes seen)"
         if on["workers"] else "- (probes run in the serving process)", ""),
        ("gzip scrape p50 / p99, probes back to back (ms)", f"{p50:.1f} / {p99:.1f}  (n={pn}, failed {on['failures']})",
         f"p99 <= {2 * o99:.1f}"),
        ("probes run (failed) in (s)", f"{on['runs']:.0f} ({on['failed']:.0f}) in {on['probing_s']:.0f}", ""),
        ("process tree RSS: before probes / peak / 10 s after the last (MB)",
         f"{on['idle_tree_mb']:.0f} / {on['tree_peak_mb']:.0f} / {on['after_tree_mb']:.0f}",
         f"after <= {on['idle_tree_mb'] + 50:.0f}"),
        ("gzip scrape p50 / p99 after the probes (ms)", f"{a50:.1f} / {a99:.1f}  (n={an})", ""),
    ]
    print()
    print("| measure | value | target |")
    print("|---|---|---|")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
