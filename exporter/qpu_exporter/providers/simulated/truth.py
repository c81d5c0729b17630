"""Ground truth of the simulated fleet: every event the simulator generates or is given.

The simulator knows what really happened (a TLS dip on qubit 3 from 10:15 to 13:40, two
couplers dead until the next calibration, an injected outage), which the exporter and the
alerts only see through polled data. Recording it lets alert quality be scored the way a
detection system is scored (benchmarks/alert_quality.py, docs/alerts-quality.md).

What counts as an event (``kind``, what ``size`` means, when it starts and ends):

* ``tls_dip``: a qubit's T1 (T2 follows) drops to ``size`` x its level (0.1-0.5) when a TLS
  switches on; ends when it switches off.
* ``coupler_death``: a two-qubit gate reported faulty (gate error 1) from the simulation step
  it dies until the next calibration round revives it; ``size`` 1.
* ``outage``: the backend reports not operational; ``size`` 1.
* ``gate_creep``: a gate's true error has crept to ``GATE_CREEP_EVENT_FACTOR`` (2x) its
  value at the last calibration; from that crossing to the next calibration, ``size`` = the
  creep factor reached. Creep shows in the exported data only when the gate is re-measured
  between calibrations (a monitored qubit moved), as on IBM devices.
* ``queue_swing``: the queue's pressure (pending jobs relative to the backend's usual level)
  rises to ``QUEUE_SWING_FACTOR`` (3x); ends when it is back below ``QUEUE_SWING_END_FACTOR``
  (1.5x, hysteresis so noise around the threshold is one event); ``size`` = the peak factor.
* ``failure_burst``: jobs created in it fail with probability ``size`` instead of the
  healthy rate (times their workload's failure factor, at most 1: workloads.py), so every
  workload with jobs on the backend sees it.
* an injected incident: its config ``kind`` (``t1_drop``, ``readout_degrade``,
  ``gate_error_rise``, ``offline``, ``maintenance``, ``queue_spike``, ``job_failures``),
  from ``at`` for ``duration``, ``size`` = its effective ``factor``, ``source = "injected"``.

Calm dynamics (``dynamics: calm``) generate none of these but gate creep: their queue stays
near its level (2x would be a 6-sigma excursion) and no TLS, coupler, outage or failure-burst
events occur.

Times are the exporter's wall-clock unix seconds (the timestamps the exported data carries);
``sim_start``/``sim_end`` are the simulated seconds since the fleet's origin. Pure
bookkeeping: no I/O except ``write_jsonl``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO

GATE_CREEP_EVENT_FACTOR = 2.0
QUEUE_SWING_FACTOR = 3.0
QUEUE_SWING_END_FACTOR = 1.5

DYNAMICS, INJECTED = "dynamics", "injected"


@dataclass(frozen=True, slots=True)
class TrueEvent:
    kind: str
    backend: str
    start: float  # wall-clock unix seconds
    end: float
    size: float
    qubit: int | None = None  # the qubit of a per-qubit event
    qubits: str | None = None  # the gate's qubits ("3_4", or "3" for a 1q gate)
    gate: str | None = None
    source: str = DYNAMICS
    provider: str = "simulated"
    sim_start: float = 0.0  # simulated seconds since the fleet's origin
    sim_end: float = 0.0

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict) -> TrueEvent:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class TruthLog:
    """Events of a simulated fleet, in the order they were recorded.

    Events whose end is known when they start are recorded whole (``add``); others are
    opened and closed later (``open`` / ``close``) under a key the caller chooses. An event
    still open when the log is read is reported as ending at the read's ``until``.
    ``to_wall`` maps simulated seconds to the exporter's wall clock."""

    def __init__(self, to_wall: Callable[[float], float] = float):
        self._lock = threading.Lock()
        self._done: list[TrueEvent] = []
        self._open: dict[tuple, TrueEvent] = {}
        self.to_wall = to_wall

    def _event(self, kind: str, backend: str, sim_start: float, sim_end: float, size: float, **where) -> TrueEvent:
        return TrueEvent(kind, backend, self.to_wall(sim_start), self.to_wall(sim_end), float(size),
                         sim_start=sim_start, sim_end=sim_end, **where)

    def add(self, kind: str, backend: str, sim_start: float, sim_end: float, size: float, **where) -> None:
        ev = self._event(kind, backend, sim_start, sim_end, size, **where)
        with self._lock:
            self._done.append(ev)

    def open(self, key: tuple, kind: str, backend: str, sim_start: float, size: float, **where) -> None:
        """Start an event whose end is not known yet; a key already open is left as is."""
        with self._lock:
            if key not in self._open:
                self._open[key] = self._event(kind, backend, sim_start, sim_start, size, **where)

    def grow(self, key: tuple, size: float) -> None:
        """Raise an open event's size (a peak still building)."""
        with self._lock:
            ev = self._open.get(key)
            if ev is not None and size > ev.size:
                self._open[key] = replace(ev, size=float(size))

    def is_open(self, key: tuple) -> bool:
        with self._lock:
            return key in self._open

    def close(self, key: tuple, sim_end: float, size: float | None = None) -> None:
        """End an open event; one that ends where it started (it never showed) is dropped."""
        with self._lock:
            ev = self._open.pop(key, None)
            if ev is None or sim_end <= ev.sim_start:
                return
            self._done.append(replace(ev, end=self.to_wall(sim_end), sim_end=sim_end,
                                      size=ev.size if size is None else float(size)))

    def close_matching(self, predicate: Callable[[tuple], bool], sim_end: float,
                       size_of: Callable[[tuple], float] | None = None) -> None:
        with self._lock:
            keys = [k for k in self._open if predicate(k)]
        for key in keys:
            self.close(key, sim_end, None if size_of is None else size_of(key))

    def events(self, until_sim: float | None = None) -> list[TrueEvent]:
        """Every recorded event, those still open ending at ``until_sim`` (or where they
        started, when not given), sorted by start."""
        with self._lock:
            out = list(self._done)
            for ev in self._open.values():
                end = ev.sim_start if until_sim is None else max(until_sim, ev.sim_start)
                out.append(replace(ev, end=self.to_wall(end), sim_end=end))
        return sorted(out, key=lambda e: (e.start, e.backend, e.kind, e.qubit or -1, e.qubits or ""))

    def write_jsonl(self, out: IO[str], until_sim: float | None = None) -> int:
        events = self.events(until_sim)
        for ev in events:
            out.write(ev.to_json() + "\n")
        return len(events)


def read_jsonl(path: str | Path) -> list[TrueEvent]:
    """Events written by ``TruthLog.write_jsonl``."""
    with open(path, encoding="utf-8") as f:
        return [TrueEvent.from_dict(json.loads(line)) for line in f if line.strip()]


def events_of(events: Iterable[TrueEvent], *kinds: str) -> list[TrueEvent]:
    return [e for e in events if e.kind in kinds]
