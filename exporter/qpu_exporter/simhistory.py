"""A simulated fleet's exporter history, generated offline as OpenMetrics with timestamps.

The same parts as ``serve`` (SimulatedProvider, Poller with its validation, store and
workload book, DriftFeed, exposition's metric families) driven by a simulated clock instead of APScheduler
and the wall clock, so a month of history takes minutes, not a month. Polls run at the
config's schedule intervals; a scrape every ``scrape_interval`` writes the families a real
Prometheus scrape would have stored, with ``job`` and ``instance`` target labels and an
``up`` sample. ``promtool tsdb create-blocks-from openmetrics`` turns the output into TSDB
blocks (docs/alerts-quality.md).

Volume (a month of a fleet's full exposition is billions of samples):

* ``selectors`` restricts the output to the series they match (Prometheus series
  selectors such as ``qpu_gate_operational{qubits=~"[0-9]+_[0-9]+"}``; the alert
  benchmark derives them from the rule expressions).
* Families fed by the calibration poll (per-qubit and per-gate calibration, drift
  detectors) change only when that collector polls: they are written at the scrapes that
  follow a calibration poll of their backend, and at any other scrape that Prometheus'
  5-minute lookback would otherwise run out before the next one is written. Every other
  family is written at every scrape. Instant selectors therefore read exactly what a scrape
  every ``scrape_interval`` gives; range functions over calibration-fed series see a subset
  of those scrapes (the shipped rules read them only as ``increase(...) > 0``, which the
  subset does not change).
* ``warmup``: the exporter runs that long before the output starts, polling every
  ``warmup_poll_interval`` and writing nothing, so drift detectors finish their warm-up
  (100 measurements by default) as on an exporter that has run for months.

Not simulated offline: RB probes (each runs Aer circuits for seconds; their families are
absent) and the exporter's own process metrics. State lives in memory: the config's
``state_path`` is not touched.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import __version__
from .config import Config
from .drift_feed import DriftFeed, monitored_values
from .exposition import _backend_calibration_samples as backend_calibration_samples
from .exposition import families, workload_config_families
from .providers.simulated.config import SimulatedProviderConfig
from .providers.simulated.provider import SimulatedProvider
from .providers.simulated.truth import TrueEvent
from .scheduler import Poller
from .sharding import parse_shard
from .store import Store
from .textformat import escape_label_value, format_value
from .view import FleetView
from .workloads import WorkloadBook

LOOKBACK_SECONDS = 300.0  # Prometheus' default: how far back an instant query finds a sample
COLLECTORS = ("status", "calibration", "jobs")  # in the order polls due at one instant run


class HistoryError(ValueError):
    """The plan cannot be simulated; the message names the setting."""


# --- series selectors ----------------------------------------------------------------------
_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(?:\{(.*)\})?\s*$", re.S)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:\\.|[^"\\])*)"\s*(?:,|$)')


@dataclass(frozen=True)
class Selector:
    """A Prometheus series selector: a metric name and label matchers."""

    metric: str
    matchers: tuple[tuple[str, str, str], ...] = ()
    _regex: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        if self.metric and name != self.metric:
            return False
        for label, op, value in self.matchers:
            got = name if label == "__name__" else labels.get(label, "")
            if op == "=":
                ok = got == value
            elif op == "!=":
                ok = got != value
            else:
                rx = self._regex.get(value)
                if rx is None:  # Prometheus anchors regex matchers
                    rx = self._regex[value] = re.compile(f"^(?:{value})$")
                ok = bool(rx.match(got)) == (op == "=~")
            if not ok:
                return False
        return True


def parse_selector(text: str) -> Selector:
    """'name', 'name{a="b",c=~"x|y"}' or '{__name__="name"}'; ValueError on anything else."""
    m = _SELECTOR.match(text)
    if not m or not (m.group(1) or m.group(2)):
        raise ValueError(f"not a series selector: {text!r}")
    matchers, body, pos = [], m.group(2) or "", 0
    while pos < len(body.strip()):
        mm = _MATCHER.match(body, pos)
        if not mm:
            raise ValueError(f"not a series selector: {text!r} (bad matcher at {body[pos:pos + 20]!r})")
        value = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), mm.group(3))
        matchers.append((mm.group(1), mm.group(2), value))
        pos = mm.end()
    return Selector(m.group(1) or "", tuple(matchers))


# --- the plan and the run ---------------------------------------------------------------------
@dataclass(frozen=True)
class HistoryPlan:
    config: Config
    start: float  # wall-clock unix seconds of the first written scrape
    duration: float  # wall seconds of written history
    scrape_interval: float = 60.0
    warmup: float = 0.0
    warmup_poll_interval: float = 3600.0
    selectors: tuple[Selector, ...] | None = None  # None: every series
    job: str = "qpu-exporter"
    instance: str = "qpu-exporter:9961"

    def __post_init__(self) -> None:
        if self.scrape_interval <= 0 or self.duration < 0 or self.warmup < 0 or self.warmup_poll_interval <= 0:
            raise HistoryError("scrape interval and warm-up poll interval must be > 0, duration and warm-up >= 0")
        if self.scrape_interval >= LOOKBACK_SECONDS:
            raise HistoryError("the scrape interval must be under Prometheus' 5-minute lookback")
        for i, p in enumerate(self.config.providers):
            if not isinstance(p, SimulatedProviderConfig):
                raise HistoryError(f"providers[{i}]: kind {p.kind} cannot be simulated offline (only kind: simulated)")


class _Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


class _HistoryStore(Store):
    """The exporter's store, in memory, without the calibration history table: that table
    feeds ``export-history`` and ``report``, never /metrics, and writing a month of it costs
    most of a generation's time."""

    def record_calibration(self, snap) -> int:
        return 0


class _Lines:
    """Selected series as rendered 'name{labels} value' text, label sets formatted once."""

    def __init__(self, selectors: tuple[Selector, ...] | None, target: dict[str, str]):
        self._target = target
        self._all = selectors is None
        self._by_name: dict[str, list[Selector]] = {}
        self._any_name: list[Selector] = []
        for sel in selectors or ():
            (self._by_name.setdefault(sel.metric, []) if sel.metric else self._any_name).append(sel)
        self._prefixes: dict[tuple, str | None] = {}

    def wanted_name(self, name: str) -> bool:
        return self._all or bool(self._any_name) or name in self._by_name

    def prefix(self, name: str, labels: dict[str, str]) -> str | None:
        key = (name, *labels.items())
        try:
            return self._prefixes[key]
        except KeyError:
            pass
        sels = self._by_name.get(name, []) + self._any_name
        text = None
        if self._all or any(sel.matches(name, labels) for sel in sels):
            merged = {**labels, **self._target}
            inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in merged.items())
            text = f"{name}{{{inner}}} "
        self._prefixes[key] = text
        return text

    def render(self, samples, out: list[str]) -> None:
        for s in samples:
            if self.wanted_name(s.name):
                prefix = self.prefix(s.name, s.labels)
                if prefix is not None:
                    out.append(prefix + format_value(s.value))


def _format_ts(t: float) -> str:
    return str(int(t)) if float(t).is_integer() else f"{t:.3f}"


def generate(plan: HistoryPlan, sink: Callable[[float, list[str]], None]) -> list[TrueEvent]:
    """Run the plan; ``sink(timestamp, lines)`` receives each scrape's OpenMetrics sample
    lines (newline-terminated, without '# EOF'). Returns the fleet's ground-truth events up
    to the end of the history."""
    cfg = plan.config
    origin = plan.start - plan.warmup
    end = plan.start + plan.duration
    clock = _Clock(origin)
    providers = [
        SimulatedProvider(p, origin=origin, clock=clock, measurement_interval=p.measurement_interval, record_truth=True)
        for p in cfg.providers
    ]
    store = _HistoryStore(":memory:")
    lines = _Lines(plan.selectors, {"job": plan.job, "instance": plan.instance})
    # Per backend: its calibration-fed lines as of the last poll, its drift lines, whether
    # a calibration poll happened since they were last written, and when that was.
    cal_lines: dict[tuple[str, str], list[str]] = {}
    drift_lines: dict[tuple[str, str], list[str]] = {}
    cal_polled: dict[tuple[str, str], bool] = {}
    cal_written: dict[tuple[str, str], float] = {}
    next_cal_poll: dict[tuple[str, str], float] = {}
    last_measured: dict[tuple[str, str, str], float] = {}
    drift_changed = [False]

    def on_calibration(snap) -> None:
        key = (snap.provider, snap.backend)
        out: list[str] = []
        for name, samples in backend_calibration_samples(snap.provider, snap.backend, snap).items():
            if lines.wanted_name(name):
                lines.render(samples, out)
        cal_lines[key] = out
        cal_polled[key] = True
        # The detectors changed only if the snapshot carried a new monitored measurement.
        for series, _value, measured_at in monitored_values(snap):
            k = (snap.provider, snap.backend, series)
            if measured_at > last_measured.get(k, -math.inf):
                last_measured[k] = measured_at
                drift_changed[0] = True

    try:
        drift = DriftFeed(cfg.drift.settings(), store)
        view = FleetView()
        # A workloads: block (the no-config demo has one) resolves each job's workload as serve does.
        wl = cfg.workloads
        book = None if wl is None else WorkloadBook(wl.tag, wl.max, [], wl.configured())
        poller = Poller(providers, store, view, clock=clock, on_calibration=[drift.on_calibration, on_calibration],
                        workloads=book)
        workload_families = [] if wl is None else workload_config_families(wl)
        sch = cfg.schedule
        interval = {"status": sch.jobs_interval, "jobs": sch.jobs_interval, "calibration": sch.calibration_interval}
        poller.intervals = dict(interval)
        if cfg.shard is not None:
            poller.shard = parse_shard(cfg.shard)

        # Polls (time, 0, collector, provider, backend) run before a scrape (time, 1, ...)
        # due at the same instant, as a scrape sees the polls that finished before it.
        queue: list[tuple[float, int, int, int, str]] = []
        for pi, provider in enumerate(providers):
            for backend in poller.discover(provider):
                for ci in range(len(COLLECTORS)):
                    heapq.heappush(queue, (origin, 0, ci, pi, backend))
        n_scrapes = int(math.floor(plan.duration / plan.scrape_interval + 1e-9)) + 1
        for k in range(n_scrapes):
            heapq.heappush(queue, (plan.start + k * plan.scrape_interval, 1, 0, -1, ""))
        # Prometheus' own series for the scrape, whatever the selectors.
        up_prefix = _Lines(None, {"job": plan.job, "instance": plan.instance}).prefix("up", {})
        while queue:
            t, kind, ci, pi, backend = heapq.heappop(queue)
            if t > end + 1e-9:
                break
            clock.t = t
            if kind == 0:
                collector = COLLECTORS[ci]
                getattr(poller, f"poll_{collector}")(providers[pi], backend)
                nxt = t + (plan.warmup_poll_interval if t < plan.start else interval[collector])
                if t < plan.start < nxt:  # production cadence from the first written scrape on
                    nxt = plan.start
                heapq.heappush(queue, (nxt, 0, ci, pi, backend))
                if collector == "calibration":
                    next_cal_poll[(providers[pi].kind, backend)] = nxt
                continue
            ts = " " + _format_ts(t) + "\n"
            out = [up_prefix + "1" + ts]
            dense: list[str] = []
            v = view.copy()
            v.calibration = {}  # calibration-fed families come from on_calibration
            for fam in families(v, store.counters(), version=__version__, revision="simulated",
                                daily_budget_usd=cfg.cost.daily_budget_usd, extra=workload_families,
                                workloads=wl is not None):
                lines.render(fam.samples, dense)
            out += [line + ts for line in dense]
            if drift_changed[0]:
                drift_changed[0] = False
                drift_lines.clear()
                for fam in drift.families():
                    for smp in fam.samples:
                        if lines.wanted_name(smp.name):
                            key = (smp.labels.get("provider", ""), smp.labels.get("backend", ""))
                            lines.render([smp], drift_lines.setdefault(key, []))
            for key in cal_lines:
                # Unless written now, the last written sample must carry until the scrape
                # that writes the next poll's.
                polls = math.ceil((next_cal_poll[key] - plan.start) / plan.scrape_interval - 1e-9)
                next_write = plan.start + polls * plan.scrape_interval
                lapses = next_write - cal_written.get(key, -math.inf) > LOOKBACK_SECONDS + 1e-9
                if cal_polled[key] or lapses:
                    cal_polled[key] = False
                    cal_written[key] = t
                    out += [line + ts for line in cal_lines[key]]
                    out += [line + ts for line in drift_lines.get(key, ())]
            sink(t, out)
        events = []
        for p in providers:
            events += p.truth.events(until_sim=(min(clock.t, end) - origin) * p.speedup)
        return sorted(events, key=lambda e: (e.start, e.backend, e.kind))
    finally:
        store.close()


class OpenMetricsWriter:
    """A sink writing one OpenMetrics file per ``chunk`` seconds of history (promtool
    reads a whole input file into memory), each ending with '# EOF'."""

    def __init__(self, path_of: Callable[[int], str], chunk: float = math.inf):
        self._path_of = path_of
        self._chunk = chunk
        self._file = None
        self._index = -1
        self._first: float | None = None
        self.paths: list[str] = []
        self.samples = 0

    def __call__(self, t: float, lines: Iterable[str]) -> None:
        if self._first is None:
            self._first = t
        index = 0 if math.isinf(self._chunk) else int((t - self._first) // self._chunk)
        if index != self._index:
            self._finish()
            self._index = index
            path = self._path_of(index)
            self.paths.append(path)
            self._file = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in _finish
        lines = list(lines)
        self.samples += len(lines)
        self._file.writelines(lines)

    def _finish(self) -> None:
        if self._file is not None:
            self._file.write("# EOF\n")
            self._file.close()
            self._file = None

    def close(self) -> None:
        self._finish()


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    from datetime import datetime, timezone

    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not unix seconds or ISO-8601: {text!r}") from None
    return (t if t.tzinfo else t.replace(tzinfo=timezone.utc)).timestamp()


def run_cli(args) -> int:
    """``qpu-exporter simulate-history``: one line and exit 2 on a bad argument or config."""
    import sys
    import time

    from .config import ConfigError, load_config, parse_duration

    def fail(message: str) -> int:
        sys.stderr.write(f"qpu-exporter: error: {message}\n")
        return 2

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return fail(str(exc))
    values = {}
    for flag in ("duration", "warmup", "scrape_interval"):
        try:
            values[flag] = parse_duration(getattr(args, flag))
        except ValueError as exc:
            return fail(f"--{flag.replace('_', '-')}: {exc}")
    try:
        selectors = None if not args.select else tuple(parse_selector(s) for s in args.select)
    except ValueError as exc:
        return fail(f"--select: {exc}")
    if args.start is None:
        step = values["scrape_interval"]
        start = (time.time() - values["duration"]) // step * step
    else:
        try:
            start = _parse_time(args.start)
        except ValueError as exc:
            return fail(f"--start: {exc}")
    try:
        plan = HistoryPlan(config, start=start, duration=values["duration"], scrape_interval=values["scrape_interval"],
                           warmup=values["warmup"], selectors=selectors, job=args.job, instance=args.instance)
    except HistoryError as exc:
        return fail(str(exc))
    out = sys.stdout if args.out == "-" else None
    try:
        if out is None:
            out = open(args.out, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        events = generate(plan, lambda _t, lines: out.writelines(lines))
        out.write("# EOF\n")
    except BrokenPipeError:
        raise  # `... | head`: not an error (cli.main)
    except OSError as exc:
        return fail(f"--out {args.out}: {exc.strerror or exc}")
    finally:
        if out is not None and out is not sys.stdout:
            out.close()
    if args.events:
        try:
            with open(args.events, "w", encoding="utf-8") as f:
                for ev in events:
                    f.write(ev.to_json() + "\n")
        except OSError as exc:
            return fail(f"--events {args.events}: {exc.strerror or exc}")
    return 0
