"""Scoring alert episodes against the simulator's ground truth, the way a detection system is
scored. Pure: episodes (alertreplay.Episode) and events (simulated.truth.TrueEvent) in,
numbers out.

For each alert (and severity) the table of what it is for, ``ALERTS``:

* ``kinds``: the true events that explain a firing of it;
* ``target``: how an episode's labels must match the event: ``backend`` (same backend),
  ``qubit`` (same backend and qubit), ``gate`` (same backend, and the event's qubit or coupler
  is one the gate acts on); an event without a qubit matches every target of its backend;
* ``hold``: how long after an event ends a firing is still explained by it (the rule's
  lookback windows keep it firing that long);
* ``sizes``: the events recall counts, per kind (the documented size the alert must catch);
* ``step``: whether the event shows in the data as a step (then time to detect should be
  within the rule's ``for:`` plus two evaluation intervals plus the poll that brings the data).

A firing episode is explained when a true event of its kinds matches its labels and overlaps
[activation, resolution]. An event is detected when a matching episode fires between the
event's start and its end plus ``hold``; time to detect = firing time - event start.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .alertreplay import duration_seconds
from .providers.simulated.truth import TrueEvent

HOUR, DAY, WEEK = 3600.0, 86400.0, 7 * 86400.0
COUPLERS_DEAD = "couplers_dead"  # derived: two or more coupler deaths overlapping on a backend


def _duration(e: TrueEvent) -> float:
    return e.end - e.start


@dataclass(frozen=True)
class AlertSpec:
    kinds: frozenset[str]
    target: str = "backend"  # backend | qubit | gate | fleet
    hold: float = 600.0
    sizes: dict[str, Callable[[TrueEvent], bool]] = field(default_factory=dict)
    size_text: str = ""
    step: bool = True
    note: str = ""
    # An episode label naming a window the rule reads (e.g. long_window="3d"): a firing is
    # explained by an event that ended within that window, if it is longer than ``hold``.
    window_label: str | None = None

    def hold_for(self, labels: dict[str, str]) -> float:
        window = labels.get(self.window_label or "")
        return max(self.hold, duration_seconds(window)) if window else self.hold


def _always(_e: TrueEvent) -> bool:
    return True


ALERTS: dict[str, AlertSpec] = {
    "QPUBackendDown": AlertSpec(
        frozenset({"outage", "offline"}), hold=600.0,
        sizes={"offline": lambda e: _duration(e) >= 20 * 60, "outage": lambda e: _duration(e) >= 20 * 60},
        size_text="down for >= 20 min (twice the rule's 10m `for:`)"),
    "QPUBackendMaintenance": AlertSpec(
        frozenset({"maintenance"}), hold=600.0, sizes={"maintenance": lambda e: _duration(e) >= 15 * 60},
        size_text="maintenance for >= 15 min"),
    "QPUQueueDepthAnomaly": AlertSpec(
        frozenset({"queue_spike", "queue_swing"}), hold=1800.0,
        sizes={"queue_spike": lambda e: e.size >= 10 and _duration(e) >= HOUR},
        size_text="queue x10 or more for >= 1 h (injected)"),
    "QPUCalibrationStale": AlertSpec(frozenset(), note="the simulator recalibrates daily; it has no stale calibrations"),
    "QPUDeadCouplersRising": AlertSpec(
        frozenset({"coupler_death", COUPLERS_DEAD}), hold=600.0, sizes={COUPLERS_DEAD: _always},
        size_text="two or more couplers of a backend dead at once (the rule's threshold)"),
    "QPUQubitCoherenceDrift": AlertSpec(
        frozenset({"tls_dip", "t1_drop"}), target="qubit", hold=3 * HOUR,
        sizes={"t1_drop": lambda e: e.size <= 0.3 and _duration(e) >= 6 * HOUR,
               "tls_dip": lambda e: e.size <= 0.3 and _duration(e) >= 6 * HOUR},
        size_text="T1 x0.3 or lower for >= 6 h", step=False,
        note="needs several hourly re-measurements before a detector signals"),
    "QPUReadoutErrorDrift": AlertSpec(
        frozenset({"readout_degrade"}), target="qubit", hold=6 * HOUR,
        sizes={"readout_degrade": lambda e: e.size >= 3 and _duration(e) >= 3 * DAY},
        size_text="readout error x3 for >= 3 d (readout is re-measured every ~5 h)", step=False,
        note="a CUSUM needs about twelve measurements of a 3x rise against autocorrelated readout noise"),
    "QPUGateErrorDrift": AlertSpec(
        frozenset({"gate_error_rise", "gate_creep", "tls_dip", "t1_drop"}), target="gate", hold=6 * HOUR,
        sizes={"gate_error_rise": lambda e: e.size >= 3 and _duration(e) >= 3 * DAY},
        size_text="gate error x3 for >= 3 d (gates are re-measured daily)", step=False),
    "QPUJobErrorBudgetBurn": AlertSpec(
        frozenset({"failure_burst", "job_failures"}), hold=6 * HOUR,
        sizes={"job_failures": lambda e: e.size >= 0.5 and _duration(e) >= HOUR,
               "failure_burst": lambda e: e.size >= 0.3 and _duration(e) >= HOUR},
        size_text="half the jobs failing for >= 1 h", step=False, window_label="long_window",
        note="a ratio over a window: detection takes window x threshold / failure rate; "
             "the budget a burst burned stays in the long window"),
    "QPUJobQueueTimeHigh": AlertSpec(frozenset({"queue_swing", "queue_spike"}), hold=6 * HOUR, step=False),
    # Per-workload alerts sum a workload's jobs over the backends, and the simulation's events
    # are per backend: a burst or a queue swing on any backend explains them (every workload
    # has jobs on every backend). The truth has no per-workload event, so no recall.
    "QPUWorkloadErrorBudgetBurn": AlertSpec(
        frozenset({"failure_burst", "job_failures"}), target="fleet", hold=6 * HOUR, step=False,
        window_label="long_window", note="no per-workload events in the truth: precision only"),
    "QPUWorkloadQueueTimeHigh": AlertSpec(frozenset({"queue_swing", "queue_spike"}), target="fleet",
                                          hold=6 * HOUR, step=False),
    "QPUWorkloadCostBudgetBurn": AlertSpec(frozenset(), target="fleet", note="the simulator has no spend surges"),
    "QPUJobCostUnknown": AlertSpec(frozenset(), note="every simulated job is priced"),
    "QPUCostBudgetBurn": AlertSpec(frozenset(), target="fleet", note="the simulator has no spend surges"),
    "QPUCollectorFailing": AlertSpec(frozenset(), note="offline history has no exporter faults"),
    "QPUExporterDataStale": AlertSpec(frozenset(), note="offline history has no exporter faults"),
    "QPUExporterDown": AlertSpec(frozenset(), note="offline history has no exporter faults"),
    "QPUExporterAbsent": AlertSpec(frozenset(), note="offline history has no exporter faults"),
}
# Not scored: Watchdog fires by design; probe alerts need RB probes, which offline history
# does not run; run fidelity comes from users' own instrumented runs (qpu_client_*), which
# the simulated fleet does not make.
UNSCORED = ("Watchdog", "QPUProbe", "QPUWorkloadFidelityBelowObjective")


def _gate_qubits(labels: dict[str, str]) -> set[int]:
    return {int(q) for q in labels.get("qubits", "").split("_") if q.isdigit()}


def matches(spec: AlertSpec, labels: dict[str, str], e: TrueEvent) -> bool:
    """Whether event ``e`` is about what an episode with ``labels`` is about."""
    if e.kind not in spec.kinds:
        return False
    if spec.target == "fleet":
        return True
    if labels.get("backend") != e.backend or labels.get("provider", e.provider) != e.provider:
        return False
    if spec.target == "qubit":
        return e.qubit is None or labels.get("qubit") == str(e.qubit)
    if spec.target == "gate":
        gate_qubits = _gate_qubits(labels)
        if e.qubits is not None:  # a gate event: the same gate, or (a coupler) any gate on both its qubits
            return labels.get("qubits") == e.qubits and (e.gate is None or labels.get("gate") == e.gate)
        return e.qubit is None or e.qubit in gate_qubits
    return True


@dataclass
class Row:
    alert: str
    severity: str
    firing: int = 0
    explained: int = 0
    pending_only: int = 0
    events: int = 0
    detected: int = 0
    ttd: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    for_seconds: float = 0.0
    unexplained: list = field(default_factory=list)
    by_kind: dict[str, Recall] = field(default_factory=dict)

    @property
    def precision(self) -> float | None:
        return self.explained / self.firing if self.firing else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.events if self.events else None


@dataclass
class Recall:
    """Detection of one kind of event by one alert."""

    events: int = 0
    detected: int = 0
    ttd: list[float] = field(default_factory=list)

    @property
    def recall(self) -> float | None:
        return self.detected / self.events if self.events else None


def _quantile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    return statistics.quantiles(sorted(xs), n=100, method="inclusive")[int(q * 100) - 1] if q < 1 else max(xs)


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def p90(xs: list[float]) -> float | None:
    return _quantile(xs, 0.9)


def scored(alertname: str) -> bool:
    return alertname in ALERTS and not alertname.startswith(UNSCORED)


def derived_events(events: list[TrueEvent]) -> list[TrueEvent]:
    """Events that are combinations of others: ``couplers_dead``, from the moment a second
    coupler of a backend is dead at the same time until fewer than two are (size: the most
    dead at once)."""
    out = []
    for backend in sorted({e.backend for e in events if e.kind == "coupler_death"}):
        edges = sorted(x for e in events if e.kind == "coupler_death" and e.backend == backend
                       for x in ((e.start, 1), (e.end, -1)))
        dead, opened, peak = 0, None, 0
        for t, step in edges:
            dead += step
            if dead >= 2 and opened is None:
                opened, peak = t, dead
            peak = max(peak, dead)
            if dead < 2 and opened is not None:
                out.append(TrueEvent(COUPLERS_DEAD, backend, opened, t, float(peak)))
                opened = None
    return out


def score(episodes: Iterable, events: list[TrueEvent], start: float, end: float,
          recall_until: float | None = None) -> dict[tuple[str, str], Row]:
    """Rows per (alert, severity) over episodes that fired in [start, end) and events that
    started in [start, recall_until) (default ``end``). Episodes that did not fire count as
    pending only."""
    recall_until = end if recall_until is None else recall_until
    events = events + derived_events(events)
    rows: dict[tuple[str, str], Row] = {}
    by_alert: dict[tuple[str, str], list] = {}
    for ep in episodes:
        if not scored(ep.alertname):
            continue
        key = (ep.alertname, ep.severity)
        row = rows.setdefault(key, Row(*key, for_seconds=ep.for_seconds))
        t = ep.fired_at if ep.fired_at is not None else ep.active_at
        if not start <= t < end:
            continue
        by_alert.setdefault(key, []).append(ep)
        if ep.fired_at is None:
            row.pending_only += 1
            continue
        spec = ALERTS[ep.alertname]
        row.firing += 1
        stop = end if ep.resolved_at is None else ep.resolved_at
        row.durations.append(stop - ep.fired_at)
        labels = ep.label
        hold = spec.hold_for(labels)
        if any(matches(spec, labels, e) and e.start <= stop and ep.active_at <= e.end + hold for e in events):
            row.explained += 1
        else:
            row.unexplained.append(ep)
    for alertname, spec in ALERTS.items():
        if not spec.sizes:
            continue
        severities = sorted({sev for (a, sev) in rows if a == alertname}) or [""]
        for sev in severities:
            row = rows.setdefault((alertname, sev), Row(alertname, sev))
            eps = [ep for ep in by_alert.get((alertname, sev), []) if ep.fired_at is not None]
            for e in events:
                size_ok = spec.sizes.get(e.kind)
                if size_ok is None or not size_ok(e) or not start <= e.start < recall_until:
                    continue
                kind = row.by_kind.setdefault(e.kind, Recall())
                row.events += 1
                kind.events += 1
                fired = [ep.fired_at for ep in eps
                         if matches(spec, ep.label, e) and e.start <= ep.fired_at <= e.end + spec.hold]
                if fired:
                    row.detected += 1
                    kind.detected += 1
                    row.ttd.append(min(fired) - e.start)
                    kind.ttd.append(min(fired) - e.start)
    return rows


def explain(episode, events: list[TrueEvent]) -> list[TrueEvent]:
    """The true events that explain an episode (empty: a false alarm)."""
    spec = ALERTS.get(episode.alertname)
    if spec is None:
        return []
    stop = episode.resolved_at if episode.resolved_at is not None else float("inf")
    hold = spec.hold_for(episode.label)
    events = events + derived_events(events)
    return [e for e in events
            if matches(spec, episode.label, e) and e.start <= stop and episode.active_at <= e.end + hold]


def summarize(episodes: Iterable, start: float, end: float) -> dict[tuple[str, str], Row]:
    """Without ground truth (a user's own history): firing and pending-only episodes and
    their durations per (alert, severity)."""
    rows: dict[tuple[str, str], Row] = {}
    for ep in episodes:
        t = ep.fired_at if ep.fired_at is not None else ep.active_at
        if not start <= t < end or ep.alertname == "Watchdog":
            continue
        row = rows.setdefault((ep.alertname, ep.severity), Row(ep.alertname, ep.severity, for_seconds=ep.for_seconds))
        if ep.fired_at is None:
            row.pending_only += 1
        else:
            row.firing += 1
            row.durations.append((end if ep.resolved_at is None else ep.resolved_at) - ep.fired_at)
    return rows
