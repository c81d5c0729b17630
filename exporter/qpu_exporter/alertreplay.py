"""Replay Prometheus rules over stored history with the real Prometheus, as its rule manager
would have evaluated them.

1. ``backfill_openmetrics``: OpenMetrics files with timestamps -> TSDB blocks
   (``promtool tsdb create-blocks-from openmetrics``).
2. ``Prometheus``: the real server on those blocks (no scraping, no rules).
3. ``backfill_recording_rules``: every recording rule, evaluated at its group's interval over
   the whole range (``promtool tsdb create-blocks-from rules``, which queries the server);
   rules that read other recording rules go in a later pass, after the server has loaded
   the earlier ones (promtool evaluates each rule on its own). Rules whose series the data
   already holds (a user's TSDB) are not backfilled again.
4. ``alert_episodes``: each alerting rule's expression over the range at the evaluation
   interval (``query_range``), then the rule manager's state machine: a series that appears
   becomes pending, fires once it has been active for ``for:``, a pending series that
   vanishes is dropped and a firing one resolves (after ``keep_firing_for:``, if set).

Differences from a live rule manager, all within one evaluation interval: recording rules and
alerts are evaluated on their own grids rather than in group order at one timestamp, so an
alert may read a recorded value one interval old.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .textformat import escape_label_value, format_value

# Prometheus refuses range queries of more than 11,000 points per series.
MAX_POINTS = 10_000
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class ReplayError(RuntimeError):
    """A tool failed or the data cannot be replayed; the message says which and why."""


def duration_seconds(text: str | None, default: float = 0.0) -> float:
    """Seconds in a Prometheus duration ("90s", "1h30m"); ``default`` for None/empty."""
    if not text:
        return default
    parts = _DURATION_PART.findall(str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ReplayError(f"not a Prometheus duration: {text!r}")
    return sum(int(n) * _UNITS[u] for n, u in parts)


# --- rules ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    group: str
    interval: float
    name: str  # alert name or recorded metric name
    expr: str
    alert: bool
    for_seconds: float = 0.0
    labels: tuple[tuple[str, str], ...] = ()
    source: str = ""
    keep_firing_for: float = 0.0


def load_rules(paths: Iterable[str | Path], default_interval: float = 60.0) -> list[Rule]:
    out = []
    for path in paths:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        for g in doc.get("groups", []):
            interval = duration_seconds(g.get("interval"), default_interval)
            for r in g.get("rules", []):
                alert = "alert" in r
                out.append(Rule(g["name"], interval, r["alert"] if alert else r["record"], r["expr"], alert,
                                duration_seconds(r.get("for"), 0.0), tuple(sorted((r.get("labels") or {}).items())),
                                str(path), duration_seconds(r.get("keep_firing_for"), 0.0)))
    return out


def _references(expr: str, name: str) -> bool:
    return re.search(r"(?<![A-Za-z0-9_:])" + re.escape(name) + r"(?![A-Za-z0-9_:])", expr) is not None


def read_by_alerts(rules: list[Rule]) -> list[Rule]:
    """The alerting rules and the recording rules they read, directly or through other
    recording rules (the rest only feed dashboards and cannot change an alert)."""
    records = [r for r in rules if not r.alert]
    wanted = [r for r in rules if r.alert]
    frontier = list(wanted)
    while frontier:
        expr = frontier.pop().expr
        for r in records:
            if r not in wanted and _references(expr, r.name):
                wanted.append(r)
                frontier.append(r)
    return [r for r in rules if r in wanted]


def recording_levels(rules: list[Rule]) -> list[list[Rule]]:
    """Recording rules in passes: a rule comes after every recording rule it reads."""
    records = [r for r in rules if not r.alert]
    level: dict[str, int] = {}
    for _ in range(len(records) + 1):
        changed = False
        for r in records:
            deps = [o for o in records if o is not r and _references(r.expr, o.name)]
            lv = 1 + max((level.get(d.name, 0) for d in deps), default=0)
            if level.get(r.name) != lv:
                level[r.name], changed = lv, True
        if not changed:
            break
    else:
        raise ReplayError("recording rules read each other in a cycle")
    passes: dict[int, list[Rule]] = {}
    for r in records:
        passes.setdefault(level[r.name], []).append(r)
    return [passes[k] for k in sorted(passes)]


# --- promtool ------------------------------------------------------------------------------------
def _run(args: list[str], what: str, timeout: float = 3600) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ReplayError(f"{args[0]} not found (Debian: apt-get install prometheus)") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ReplayError(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")
    return done.stdout


def backfill_openmetrics(paths: Iterable[str | Path], data_dir: str | Path, promtool: str = "promtool",
                         max_block_duration: str = "162h") -> None:
    """TSDB blocks from OpenMetrics files. promtool re-reads a file once per block it writes,
    so long files want long blocks."""
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    for path in paths:
        _run([promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
              f"--max-block-duration={max_block_duration}", str(path), str(data_dir)], f"backfilling {path}")


def tsdb_time_range(data_dir: str | Path, promtool: str = "promtool") -> tuple[float, float]:
    """(first, last) sample time in unix seconds over the blocks of a TSDB directory."""
    text = _run([promtool, "tsdb", "list", str(data_dir)], f"listing {data_dir}")
    lo, hi = None, None
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 3 and cols[1].isdigit() and cols[2].isdigit():
            a, b = int(cols[1]) / 1000, int(cols[2]) / 1000
            lo, hi = (a if lo is None else min(lo, a)), (b if hi is None else max(hi, b))
    if lo is None:
        raise ReplayError(f"{data_dir}: no TSDB blocks")
    return lo, hi


def link_blocks(src: str | Path, dst: str | Path) -> None:
    """Block directories of ``src`` into ``dst`` as hard links (copies across file systems),
    so Prometheus compacting ``dst`` never touches ``src``."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for block in Path(src).iterdir():
        if block.is_dir() and (block / "meta.json").exists():
            try:
                shutil.copytree(block, dst / block.name, copy_function=os.link)
            except OSError:
                shutil.rmtree(dst / block.name, ignore_errors=True)
                shutil.copytree(block, dst / block.name)


# --- the server ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Prometheus:
    """The real Prometheus serving a TSDB directory, scraping nothing."""

    data_dir: Path
    binary: str = "prometheus"
    port: int = 0
    proc: subprocess.Popen | None = None
    _dir: Path | None = None
    log_path: Path | None = field(default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Prometheus:
        self._dir = Path(tempfile.mkdtemp(prefix="qpu-replay-prom-"))
        (self._dir / "prometheus.yml").write_text("global: {}\nscrape_configs: []\n")
        self.port = _free_port()
        self.log_path = self._dir / "prometheus.log"
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={self._dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.data_dir}",
             # Backfilled history is old: keep it, and let month-long range queries load it.
             "--storage.tsdb.retention.time=100y", f"--web.listen-address=127.0.0.1:{self.port}",
             "--query.max-samples=500000000", "--query.timeout=10m", "--log.level=warn"],
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ReplayError(f"prometheus exited with {self.proc.returncode}: {self.log_path.read_text()[-500:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise ReplayError(f"prometheus not ready within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def restart(self) -> None:
        """Stop and start again, so blocks added to the data directory are loaded."""
        self.stop()
        self.start()

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _api(self, path: str, params: dict) -> dict:
        body = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(f"{self.url}/api/v1/{path}", data=body)
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            doc = json.loads(exc.read() or b"{}")
            raise ReplayError(f"query failed: {doc.get('error', exc)}: {params.get('query', '')[:200]}") from None
        if doc.get("status") != "success":
            raise ReplayError(f"query failed: {doc.get('error')}: {params.get('query', '')[:200]}")
        return doc["data"]

    def query(self, expr: str, at: float) -> list[dict]:
        return self._api("query", {"query": expr, "time": repr(at)})["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict[tuple, list[tuple[float, float]]]:
        """labels (sorted items, without __name__) -> [(t, value)], over as many requests as
        the 11,000-point limit needs."""
        out: dict[tuple, list[tuple[float, float]]] = {}
        t = start
        while t <= end:
            chunk_end = min(end, t + step * (MAX_POINTS - 1))
            for series in self._api("query_range", {"query": expr, "start": repr(t), "end": repr(chunk_end),
                                                    "step": repr(step)})["result"]:
                key = tuple(sorted((k, v) for k, v in series["metric"].items() if k != "__name__"))
                out.setdefault(key, []).extend((float(ts), float(v)) for ts, v in series["values"])
            t = chunk_end + step
        return out

    def has_series(self, name: str, start: float, end: float) -> bool:
        data = self._api("series", {"match[]": name, "start": repr(start), "end": repr(end)})
        return bool(data)


def _grid(start: float, end: float, step: float) -> tuple[float, float]:
    """First and last evaluation time on the interval's grid covering [start, end]."""
    first = start - (start % step)
    return first, first + ((end - first) // step) * step


def _series_text(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def backfill_recording_rules(rules: list[Rule], server: Prometheus, start: float, end: float,
                             promtool: str = "promtool") -> list[str]:
    """Evaluate every recording rule over [start, end] at its group's interval, as the rule
    manager would (the rule's expression at each evaluation time, the result's labels with
    the rule's labels over them and the recorded name), and add the results to the server's
    data, restarting it after each pass so the next pass reads them. Rules whose series the
    data already holds (a user's TSDB) are not evaluated again. Returns the names written.

    ``promtool tsdb create-blocks-from rules`` does the same through the same query API but
    writes a block per rule and 2 hours, which takes a quarter of an hour for a month."""
    done = []
    for level in recording_levels(rules):
        todo = [r for r in level if not server.has_series(r.name, start, end)]
        if not todo:
            continue
        with tempfile.TemporaryDirectory(prefix="qpu-replay-rules-") as tmp:
            path = Path(tmp) / "recorded.om"
            with path.open("w", encoding="utf-8") as out:
                for r in todo:
                    first, last = _grid(start, end, r.interval)
                    for labels, points in server.query_range(r.expr, first, last, r.interval).items():
                        series = _series_text(r.name, {**dict(labels), **dict(r.labels)})
                        out.writelines(f"{series} {format_value(v)} {t:.3f}\n" for t, v in points)
                out.write("# EOF\n")
            backfill_openmetrics([path], server.data_dir, promtool)
        done += [r.name for r in todo]
        server.restart()
    return done


# --- alert episodes ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Episode:
    """One alert instance from becoming active to resolving, as the rule manager tracks it."""

    alertname: str
    labels: tuple[tuple[str, str], ...]  # series labels with the rule's labels over them
    active_at: float
    fired_at: float | None  # None: it never fired (pending only)
    resolved_at: float | None  # None: still active at the end of the range
    for_seconds: float

    @property
    def label(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def severity(self) -> str:
        return self.label.get("severity", "")


def episodes_from_points(rule: Rule, series: dict[tuple, list[tuple[float, float]]],
                         times: list[float]) -> list[Episode]:
    """The alerting rule state machine (Prometheus' rules/alerting.go) over evaluation
    ``times`` given the expression's result (labels -> points at some of those times)."""
    out = []
    for labels, points in series.items():
        merged = tuple(sorted({**dict(labels), **dict(rule.labels), "alertname": rule.name}.items()))
        present = {t for t, _ in points}
        active_at = fired_at = keep_since = None
        for t in times:
            if t in present:
                keep_since = None
                if active_at is None:
                    active_at, fired_at = t, None
                if fired_at is None and t - active_at >= rule.for_seconds:
                    fired_at = t
            elif active_at is not None:
                if fired_at is not None and rule.keep_firing_for > 0:
                    keep_since = t if keep_since is None else keep_since
                    if t - keep_since < rule.keep_firing_for:
                        continue
                out.append(Episode(rule.name, merged, active_at, fired_at, t, rule.for_seconds))
                active_at = fired_at = keep_since = None
        if active_at is not None:
            out.append(Episode(rule.name, merged, active_at, fired_at, None, rule.for_seconds))
    return out


def alert_episodes(rules: list[Rule], server: Prometheus, start: float, end: float) -> list[Episode]:
    """Every alerting rule evaluated at its group's interval from ``start`` to ``end``."""
    out = []
    for rule in rules:
        if not rule.alert:
            continue
        step = rule.interval
        first, last = _grid(start, end, step)
        times = [first + k * step for k in range(int(round((last - first) / step)) + 1)]
        series = server.query_range(rule.expr, first, last, step)
        # Prometheus returns timestamps as floats; align them to the grid.
        aligned = {k: [(first + round((t - first) / step) * step, v) for t, v in pts] for k, pts in series.items()}
        out += episodes_from_points(rule, aligned, times)
    return sorted(out, key=lambda e: (e.active_at, e.alertname, e.labels))


def replay(openmetrics: Iterable[str | Path], rules: list[Rule], workdir: str | Path, *,
           start: float | None = None, end: float | None = None, promtool: str = "promtool",
           prometheus: str = "prometheus", tsdb: str | Path | None = None) -> list[Episode]:
    """Backfill history (OpenMetrics files, and/or the blocks of an existing TSDB such as a
    snapshot, linked, never modified), serve it, backfill the recording rules and return
    the alert episodes over [start, end] (default: the data's whole range)."""
    data = Path(workdir) / "data"
    if tsdb is not None:
        link_blocks(tsdb, data)
    backfill_openmetrics(openmetrics, data, promtool)
    lo, hi = tsdb_time_range(data, promtool)
    start = lo if start is None else start
    end = hi if end is None else end
    with Prometheus(data, prometheus) as server:
        backfill_recording_rules(rules, server, start, end, promtool)
        return alert_episodes(rules, server, start, end)
