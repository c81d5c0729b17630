"""The embedded simulated fleet: real IBM calibration snapshots evolved in time.

Dynamics follow published studies of superconducting qubits (T1 fluctuations from two-level
systems: Klimov et al., PRL 121, 090502 (2018); Carroll et al., npj Quantum Inf. (2022), arXiv:2105.15201;
gate-error drift between calibrations: Stehlik et al., arXiv:2101.07746):

* per-qubit log-normal noise around the snapshot's level (an Ornstein-Uhlenbeck process on
  log10 T1, T2 and readout error, so day-to-day changes mean-revert);
* TLS telegraph dips of T1 (to 0.1-0.5x, exponential dwell of hours), T2 co-moving;
* gate-error creep between calibrations, p(t) = p0 * 10^(t/T), reset at recalibration, plus
  the coherence-limited part that follows the current T1;
* per-metric timestamps: values are *measured* on a cadence (daily for T1/T2/gates, more
  often for readout, sooner when hourly monitoring sees a >2x deviation) and carried forward
  in between; a few qubits carry stale values for weeks;
* dead couplers (IBM's gate_error = 1 sentinel), rare outages, queue-depth fluctuations;
* jobs that arrive, queue, run, sometimes fail (0.3 % on a healthy backend, within a 99 %
  success objective; more in rare failure bursts), use QPU seconds and cost money.

With ``record_truth`` every event the dynamics generate and every injected incident is
recorded in ``truth`` (truth.py says what counts as an event), the ground truth
alert quality is scored against.

Everything is a deterministic function of (seed, backend, simulated time): each simulation
step draws from its own generator seeded by (seed, backend, step), so a restart that
replays the steps reproduces the same history. Simulated time runs ``speedup`` times faster
than the wall clock from the fleet's origin (persisted in the state file); exported
timestamps map simulated time back to the wall clock so they are never in the future.
Incidents from config overlay the dynamics at read time, with ``at`` measured from the
exporter's start.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .config import Incident, SimulatedProviderConfig
from ...model import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_FAILED,
    BackendInfo,
    BackendStatus,
    CalibrationSnapshot,
    GateCalibration,
    JobRecord,
    Measurement,
    QubitCalibration,
)
from ..base import Provider, ProviderError
from ..fake_snapshots import load_snapshot, processor_name
from ..ibm.properties import parse_properties
from .truth import GATE_CREEP_EVENT_FACTOR, INJECTED, QUEUE_SWING_END_FACTOR, QUEUE_SWING_FACTOR, TruthLog
from .workloads import SIM_TAG_KEY, draw_workload, profile

HOUR = 3600.0
DAY = 86400.0

# Dynamics parameters, chosen to match the studies above. Gate creep p0 * 10^(t/T): a T of
# ~14 h would make errors 50x worse in a day, against the "at worst 60 % worse over a day"
# Stehlik et al. observe; a median T of 120 h gives ~1.6x per day.
T1_LOG10_SIGMA, T1_TAU = 0.12, 4 * HOUR
T2_RHO = 0.7  # correlation of T2's innovations with T1's
READOUT_LOG10_SIGMA, READOUT_TAU = 0.08, 12 * HOUR
TLS_ON_PER_HOUR = 0.01  # ~3 % of daily snapshots catch a >= 2x dip
TLS_DWELL_MEAN = 3 * HOUR
CREEP_T_MEDIAN_HOURS, CREEP_T_LOG_SIGMA = 120.0, 0.5
MEASUREMENT_NOISE = 0.05  # relative noise of a T1/T2/RB fit
MONITOR_RATIO = 2.0  # hourly monitoring re-measures a qubit that moved by more than this
STALE_QUBIT_FRACTION = 0.02
NEW_DEAD_COUPLER_PER_DAY = 0.004
OUTAGE_PER_DAY, OUTAGE_MEAN = 1 / 30, 1 * HOUR
PENDING_LOG10_SIGMA, PENDING_TAU = 0.3, 2 * HOUR
# Calm dynamics keep the queue near its level (a 2x swing, what QueueDepthAnomaly calls
# anomalous, would be a 6-sigma excursion): the realistic queue's swings are events.
CALM_PENDING_LOG10_SIGMA = 0.05
JOBS_PER_HOUR = 12.0
# A healthy backend fails 0.3 % of jobs (a 99 % success objective holds with room to spare);
# rare failure bursts (a backend in a bad state) fail a large share of the jobs created in them.
JOB_FAIL_P, JOB_CANCEL_P = 0.003, 0.01
FAILURE_BURST_PER_DAY, FAILURE_BURST_MEAN = 1 / 14, 2 * HOUR
FAILURE_BURST_P = (0.2, 0.6)
EXECUTION_MEDIAN, EXECUTION_LOG_SIGMA = 15.0, 0.8  # seconds; log-normal
USAGE_SHARE_DONE, USAGE_SHARE_FAILED = 0.85, 0.4  # billed share of the execution time
# The simulated fleet's own list price: IBM's Pay-As-You-Go rate (USD 96 per QPU minute), so
# the cost counters, budget alerts and the probe USD cap are exercised as on a paid plan.
USD_PER_QPU_SECOND = 1.60
ERROR_CLASSES = ("execution_error", "timeout", "invalid_input", "internal_error")
JOB_WINDOW = 7 * DAY  # how far back finished jobs can still be listed (like a provider's job history)


def _backend_salt(name: str) -> int:
    return zlib.crc32(name.encode())


@dataclass(slots=True)
class _Job:
    job_id: str
    created: float  # simulated seconds since origin
    queue: float
    execution: float
    status: str
    error_class: str
    draw: float  # the job's own uniform draw, so a job_failures incident decides at read time
    workload: str | None = None  # its `team` tag (workloads.py)
    finished: float = field(init=False)  # computed once: every jobs poll compares it for a week of jobs

    def __post_init__(self) -> None:
        self.finished = self.created + self.queue + self.execution


class _SimBackend:
    """State of one simulated backend, advanced in fixed simulated steps."""

    def __init__(self, name: str, seed: int, measurement_interval: float, calm: bool = False,
                 base: CalibrationSnapshot | None = None, processor: str = "", workload_tags: list[str] | None = None):
        if base is None:  # a real fake backend's snapshot; otherwise a synthetic one (scale)
            conf, props = load_snapshot(name)
            base, _ = parse_properties(props, provider="simulated", backend=name, fetched_at=0.0)
            self.num_qubits = int(conf.get("n_qubits") or len(base.qubits))
            self.processor = processor_name(conf)
        else:
            self.num_qubits = len(base.qubits)
            self.processor = processor
        self.name = name
        self.workload_tags = list(workload_tags or [])
        self.salt = _backend_salt(name)
        self.seed = seed
        self.lock = threading.Lock()
        self.measure_every = measurement_interval
        self.readout_every = measurement_interval / 5  # readout is refreshed ~5x as often
        self.step_seconds = min(900.0, measurement_interval / 4)
        events = 0.0 if calm else 1.0
        self.tls_on_per_hour = TLS_ON_PER_HOUR * events
        self.outage_per_day = OUTAGE_PER_DAY * events
        self.new_dead_per_day = NEW_DEAD_COUPLER_PER_DAY * events
        self.failure_bursts_per_day = FAILURE_BURST_PER_DAY * events
        self.pending_sigma = CALM_PENDING_LOG10_SIGMA if calm else PENDING_LOG10_SIGMA
        self.truth: TruthLog | None = None  # set by the provider when it records ground truth

        n = len(base.qubits)
        self.n = n

        def qarr(name: str) -> np.ndarray:
            return np.array([q.values[name].value if name in q.values else np.nan for q in base.qubits])

        self.t1_0, self.t2_0 = qarr("t1"), qarr("t2")
        self.ro_0 = np.clip(qarr("readout_error"), 1e-4, 0.5)
        self.static = {k: qarr(k) for k in ("frequency", "prob_meas0_prep1", "prob_meas1_prep0", "readout_duration")}
        self.gates: list[GateCalibration] = base.gates
        self.g_err0 = np.array([g.error.value if g.error else np.nan for g in base.gates])
        self.g_dur = np.array([g.duration.value if g.duration else np.nan for g in base.gates])
        self.g_dead0 = np.array([not g.operational for g in base.gates])
        self.g_q = [g.qubits for g in base.gates]
        self.g_qa = np.array([min(q[0], n - 1) for q in self.g_q])
        self.g_qb = np.array([min(q[1], n - 1) if len(q) > 1 else -1 for q in self.g_q])
        self.two_q = np.array([len(q) == 2 for q in self.g_q])
        self.g_dur3 = np.nan_to_num(self.g_dur) / 3.0
        # Qubit -> gate indices touching it, for incidents and monitoring.
        self.gates_of: list[list[int]] = [[] for _ in range(n)]
        for i, qs in enumerate(self.g_q):
            for q in qs:
                if q < n:
                    self.gates_of[q].append(i)

        init = np.random.default_rng([seed, self.salt, 0xB0])
        self.recal_phase = init.uniform(0, measurement_interval)
        self.stale = init.random(n) < STALE_QUBIT_FRACTION
        self.stale_age = init.uniform(8 * DAY, 60 * DAY, n)
        self.g_T = CREEP_T_MEDIAN_HOURS * HOUR * np.exp(CREEP_T_LOG_SIGMA * init.standard_normal(len(self.gates)))
        self.pending_level = float(init.choice([15, 40, 120]))

        # Process state (truth) and reported (last measured) values.
        self.t = 0.0
        self.k = 0
        self.x1 = T1_LOG10_SIGMA * init.standard_normal(n)
        self.x2 = T1_LOG10_SIGMA * init.standard_normal(n)
        self.xro = READOUT_LOG10_SIGMA * init.standard_normal(n)
        self.tls = np.ones(n)
        self.tls_end = np.zeros(n)
        self.g_lastcal = np.zeros(len(self.gates))
        self.g_dead = self.g_dead0.copy()
        self.xq = 0.0
        self.outage_end = -1.0
        self.burst_start, self.burst_end, self.burst_p = -1.0, -1.0, 0.0
        self.creep_open = np.zeros(len(self.gates), dtype=bool)
        self.calibrated_at = 0.0
        self.rep_t1, self.rep_t2, self.rep_ro = self.true_t1(), self.true_t2(), self.true_ro()
        self.rep_gerr = self.true_gate_error()
        self.mt_q = np.zeros(n)  # when T1/T2 were last measured
        self.mt_ro = np.zeros(n)
        self.mt_g = np.zeros(len(self.gates))
        self.jobs: list[_Job] = []
        self.pruned_at = -math.inf

    # --- truth -------------------------------------------------------------------------
    def true_t1(self) -> np.ndarray:
        return self.t1_0 * 10.0**self.x1 * self.tls

    def true_t2(self) -> np.ndarray:
        return np.minimum(self.t2_0 * 10.0**self.x2 * self.tls**0.7, 2 * self.true_t1())

    def true_ro(self) -> np.ndarray:
        return np.clip(self.ro_0 * 10.0**self.xro, 1e-4, 0.5)

    def true_gate_error(self, t1: np.ndarray | None = None) -> np.ndarray:
        t1 = self.true_t1() if t1 is None else t1
        creep = 10.0 ** ((self.t - self.g_lastcal) / self.g_T)
        # The coherence-limited part, duration / 3T1 per qubit, tracks each qubit's current T1
        # relative to the snapshot's, so a TLS dip shows in the gate errors too.
        inv = np.nan_to_num(1.0 / t1 - 1.0 / self.t1_0)
        extra = self.g_dur3 * (inv[self.g_qa] + np.where(self.g_qb >= 0, inv[self.g_qb], 0.0))
        return np.clip(self.g_err0 * creep + extra, self.g_err0 * 0.5, 0.75)

    # --- evolution -----------------------------------------------------------------------
    def advance(self, sim_now: float, jobs_from: float) -> None:
        while self.t + self.step_seconds <= sim_now:
            self._step(generate_jobs=self.t + self.step_seconds >= jobs_from)

    def _step(self, generate_jobs: bool) -> None:
        dt = self.step_seconds
        self.k += 1
        self.t += dt
        t = self.t
        rng = np.random.default_rng([self.seed, self.salt, self.k])
        n = self.n

        a1 = math.exp(-dt / T1_TAU)
        s1 = T1_LOG10_SIGMA * math.sqrt(1 - a1 * a1)
        e1, e2 = rng.standard_normal(n), rng.standard_normal(n)
        self.x1 = a1 * self.x1 + s1 * e1
        self.x2 = a1 * self.x2 + s1 * (T2_RHO * e1 + math.sqrt(1 - T2_RHO**2) * e2)
        ar = math.exp(-dt / READOUT_TAU)
        self.xro = ar * self.xro + READOUT_LOG10_SIGMA * math.sqrt(1 - ar * ar) * rng.standard_normal(n)

        # TLS telegraph: switch on with a small rate, off after an exponential dwell.
        ended = (self.tls < 1.0) & (t >= self.tls_end)
        self.tls[ended] = 1.0
        start = (self.tls == 1.0) & (rng.random(n) < self.tls_on_per_hour * dt / HOUR)
        k = int(start.sum())
        self.tls[start] = 10.0 ** rng.uniform(-1.0, math.log10(0.5), k)
        self.tls_end[start] = t + np.maximum(rng.exponential(TLS_DWELL_MEAN, k), 900.0)

        # Couplers occasionally die until the next recalibration; outages are rare.
        dead_before = self.g_dead.copy()
        self.g_dead |= self.two_q & (rng.random(len(self.gates)) < self.new_dead_per_day * dt / DAY)
        outage_started = False
        if t >= self.outage_end and rng.random() < self.outage_per_day * dt / DAY:
            self.outage_end = t + rng.exponential(OUTAGE_MEAN)
            outage_started = True

        aq = math.exp(-dt / PENDING_TAU)
        self.xq = aq * self.xq + self.pending_sigma * math.sqrt(1 - aq * aq) * rng.standard_normal()

        # Failure bursts draw from their own stream (3: workload draws use 2), so adding them left
        # every other draw as it was.
        burst_rng = np.random.default_rng([self.seed, self.salt, self.k, 3])
        if t >= self.burst_end and burst_rng.random() < self.failure_bursts_per_day * dt / DAY:
            self.burst_start = t
            self.burst_end = t + max(burst_rng.exponential(FAILURE_BURST_MEAN), 900.0)
            self.burst_p = float(burst_rng.uniform(*FAILURE_BURST_P))
            if self.truth is not None:
                self.truth.add("failure_burst", self.name, t, self.burst_end, self.burst_p)
        if self.truth is not None:
            self._record_step(t, dt, start, dead_before, outage_started)

        # Measurements: the daily calibration round re-measures everything and resets gate
        # creep; readout more often; hourly monitoring catches qubits that moved > 2x.
        noise = lambda size: np.exp(MEASUREMENT_NOISE * rng.standard_normal(size))  # noqa: E731
        t1, t2, ro = self.true_t1(), self.true_t2(), self.true_ro()
        live = ~self.stale
        if (t - self.recal_phase) % self.measure_every < dt:
            if self.truth is not None:  # the calibration round ends coupler deaths and creep
                creep = 10.0 ** ((t - self.g_lastcal) / self.g_T)
                self.truth.close_matching(lambda key: key[0] == self.name and key[1] in ("coupler", "creep"), t,
                                          lambda key: 1.0 if key[1] == "coupler" else float(creep[key[2]]))
                self.creep_open[:] = False
            self.g_lastcal[:] = t
            self.g_dead = self.g_dead0.copy()
            self.calibrated_at = t
            self.rep_gerr = self.true_gate_error(t1) * noise(len(self.gates))
            self.mt_g[:] = t
            remeasure = live
        else:
            moved = np.abs(np.log(t1 / self.rep_t1)) > math.log(MONITOR_RATIO)
            hourly = (t % HOUR) < dt
            remeasure = live & moved & hourly
            if remeasure.any():
                idx = [i for q in np.nonzero(remeasure)[0] for i in self.gates_of[q]]
                self.rep_gerr[idx] = self.true_gate_error(t1)[idx] * noise(len(idx))
                self.mt_g[idx] = t
        self.rep_t1 = np.where(remeasure, t1 * noise(n), self.rep_t1)
        self.rep_t2 = np.where(remeasure, np.minimum(t2 * noise(n), 2 * self.rep_t1), self.rep_t2)
        self.mt_q = np.where(remeasure, t, self.mt_q)
        ro_due = live & (t - self.mt_ro >= self.readout_every)
        self.rep_ro = np.where(ro_due, np.clip(ro * noise(n), 1e-4, 0.5), self.rep_ro)
        self.mt_ro = np.where(ro_due, t, self.mt_ro)

        if generate_jobs:
            self._arrivals(np.random.default_rng([self.seed, self.salt, self.k, 1]), t - dt, dt)

    def _record_step(self, t: float, dt: float, tls_started: np.ndarray, dead_before: np.ndarray,
                     outage_started: bool) -> None:
        """Ground truth of one step (truth.py defines the events)."""
        truth, name = self.truth, self.name
        for q in np.nonzero(tls_started)[0]:
            # The dip ends at the first step at or after its drawn end.
            end = math.ceil(self.tls_end[q] / dt) * dt
            truth.add("tls_dip", name, t, end, float(self.tls[q]), qubit=int(q))
        for i in np.nonzero(self.g_dead & ~dead_before)[0]:
            g = self.gates[i]
            truth.open((name, "coupler", int(i)), "coupler_death", name, t, 1.0, gate=g.gate, qubits=g.qubits_label)
        if outage_started:
            truth.add("outage", name, t, self.outage_end, 1.0)
        creep = 10.0 ** ((t - self.g_lastcal) / self.g_T)
        crossed = (creep >= GATE_CREEP_EVENT_FACTOR) & (self.g_err0 > 0) & ~self.g_dead & ~self.creep_open
        self.creep_open |= crossed
        for i in np.nonzero(crossed)[0]:
            g = self.gates[i]
            at = self.g_lastcal[i] + self.g_T[i] * math.log10(GATE_CREEP_EVENT_FACTOR)  # when it crossed
            truth.open((name, "creep", int(i)), "gate_creep", name, float(at), GATE_CREEP_EVENT_FACTOR,
                       gate=g.gate, qubits=g.qubits_label)
        pressure, key = 10.0**self.xq, (name, "queue")
        if pressure >= QUEUE_SWING_FACTOR:
            truth.open(key, "queue_swing", name, t, pressure)
            truth.grow(key, pressure)
        elif pressure < QUEUE_SWING_END_FACTOR:
            truth.close(key, t)

    def job_failure_probability(self, created: float) -> float:
        """Chance that a job created at ``created`` (simulated seconds) fails."""
        if self.burst_start <= created < self.burst_end:
            return self.burst_p
        return JOB_FAIL_P

    def _arrivals(self, rng: np.random.Generator, t0: float, dt: float) -> None:
        count = rng.poisson(JOBS_PER_HOUR * dt / HOUR)
        pressure = 10.0**self.xq
        # Workload draws have their own stream, so a fleet without tags evolves as it always did.
        teams = np.random.default_rng([self.seed, self.salt, self.k, 2]) if self.workload_tags else None
        for i in range(count):
            created = t0 + rng.uniform(0, dt)
            queue = float(rng.lognormal(math.log(180.0 * pressure), 1.0))
            execution = float(rng.lognormal(math.log(EXECUTION_MEDIAN), EXECUTION_LOG_SIGMA))
            u = rng.random()
            workload = None if teams is None else draw_workload(self.workload_tags, teams)
            prof = profile(self.workload_tags, workload)
            status, cls = JOB_DONE, ""
            if u < JOB_CANCEL_P:
                status = JOB_CANCELLED
            elif u < JOB_CANCEL_P + self.job_failure_probability(created) * prof.failure:
                status, cls = JOB_FAILED, str(rng.choice(ERROR_CLASSES))
            if teams is not None and teams.random() < prof.invalid_input_share and status == JOB_FAILED:
                cls = "invalid_input"
            self.jobs.append(_Job(f"sim-{self.name}-{self.k}-{i}", created, queue * prof.queue,
                                  execution * prof.execution, status, cls, u, workload))

    def prune_jobs(self, sim_now: float) -> None:
        if sim_now - self.pruned_at >= HOUR:  # hourly: listing filters by the window anyway
            self.jobs = [j for j in self.jobs if j.finished > sim_now - JOB_WINDOW]
            self.pruned_at = sim_now

    def pending_jobs(self) -> int:
        return int(round(self.pending_level * 10.0**self.xq))


def expected_cost_per_job_usd(execution_factor: float = 1.0) -> float:
    """Mean cost of a simulated job without incidents (cancelled jobs cost nothing)."""
    execution = EXECUTION_MEDIAN * math.exp(EXECUTION_LOG_SIGMA**2 / 2) * execution_factor
    billed = USAGE_SHARE_DONE * (1 - JOB_CANCEL_P - JOB_FAIL_P) + USAGE_SHARE_FAILED * JOB_FAIL_P
    return execution * billed * USD_PER_QPU_SECOND


class SimulatedProvider(Provider):
    kind = "simulated"

    def __init__(
        self,
        cfg: SimulatedProviderConfig,
        origin: float,
        clock: Callable[[], float] = time.time,
        measurement_interval: float = DAY,
        record_truth: bool = False,
    ):
        self.cfg = cfg
        self.origin = origin
        self.clock = clock
        self.measurement_interval = measurement_interval
        self.speedup = cfg.speedup
        self.started_sim = self._sim_now()
        self.truth = TruthLog(self._wall) if record_truth else None
        calm = cfg.dynamics == "calm"
        if cfg.scale is None:
            self._backends = {name: _SimBackend(name, cfg.seed, measurement_interval, calm=calm,
                                                workload_tags=cfg.workload_tags) for name in cfg.backends}
        else:
            from .synthetic import synthetic_fleet

            self._backends = {
                name: _SimBackend(name, cfg.seed, measurement_interval, calm=calm, base=base, processor=proc,
                                  workload_tags=cfg.workload_tags)
                for name, base, proc in synthetic_fleet(cfg.backends[0], cfg.scale.backends, cfg.scale.qubits, cfg.seed)
            }
        self._incidents: dict[str, list[Incident]] = {}
        for inc in cfg.incidents:
            self._incidents.setdefault(inc.backend, []).append(inc)
        if self.truth is not None:
            for b in self._backends.values():
                b.truth = self.truth
            for inc in cfg.incidents:
                start = self.started_sim + inc.at
                self.truth.add(inc.kind, inc.backend, start, start + inc.duration, inc.effective_factor,
                               qubit=inc.qubit, source=INJECTED)

    def __reduce__(self):
        # A probe worker rebuilds the fleet from its config and origin: same seed, same history.
        return (SimulatedProvider, (self.cfg, self.origin, self.clock, self.measurement_interval))

    # --- time ------------------------------------------------------------------------------
    def _sim_now(self) -> float:
        return max(0.0, (self.clock() - self.origin) * self.speedup)

    def _wall(self, sim_t: float) -> float:
        return self.origin + sim_t / self.speedup

    def _sim_backend(self, backend: str) -> tuple[_SimBackend, float]:
        b = self._backends.get(backend)
        if b is None:
            raise ProviderError("unknown_backend", f"no simulated backend {backend!r}")
        now = self._sim_now()
        with b.lock:
            b.advance(now, jobs_from=now - JOB_WINDOW)
        return b, now

    def _active(self, backend: str, now: float, *kinds: str) -> list[Incident]:
        out = []
        for inc in self._incidents.get(backend, ()):
            start = self.started_sim + inc.at
            if inc.kind in kinds and start <= now < start + inc.duration:
                out.append(inc)
        return out

    def _incident_start_wall(self, inc: Incident) -> float:
        return self._wall(self.started_sim + inc.at)

    def _monitor_tick(self, inc: Incident, now: float, measure_every: float) -> float:
        """Wall time of the latest monitoring re-measurement since the incident started."""
        start = self.started_sim + inc.at
        tick = min(HOUR, measure_every)
        return self._wall(start + math.floor((now - start) / tick) * tick)

    # --- Provider interface ----------------------------------------------------------------
    def backends(self) -> list[BackendInfo]:
        return [BackendInfo(self.kind, b.name, b.num_qubits, b.processor) for b in self._backends.values()]

    def status(self, backend: str) -> BackendStatus:
        b, now = self._sim_backend(backend)
        pending = b.pending_jobs()
        for inc in self._active(backend, now, "queue_spike"):
            pending = int(round(pending * inc.effective_factor))
        operational, message = True, "active"
        if now < b.outage_end:
            operational, message = False, "internal"
        if self._active(backend, now, "maintenance"):
            operational, message = False, "maintenance"
        if self._active(backend, now, "offline"):
            operational, message = False, "offline"
        return BackendStatus(operational, pending, message, self.clock())

    def calibration(self, backend: str) -> CalibrationSnapshot:
        b, now = self._sim_backend(backend)
        with b.lock:
            t1, t2, ro = b.rep_t1.copy(), b.rep_t2.copy(), b.rep_ro.copy()
            mt_q = np.array([self._wall(x) for x in b.mt_q])
            mt_ro = np.array([self._wall(x) for x in b.mt_ro])
            gerr, mt_g, dead = b.rep_gerr.copy(), np.array([self._wall(x) for x in b.mt_g]), b.g_dead.copy()
            calibrated_at = self._wall(b.calibrated_at)
        # Stale qubits keep a weeks-old value and date (a data-quality check must catch them).
        mt_q = np.where(b.stale, self.origin - b.stale_age, mt_q)
        mt_ro = np.where(b.stale, self.origin - b.stale_age, mt_ro)
        prob_scale = np.ones(b.n)

        gate_scale = np.ones(len(b.gates))
        gate_stamp = mt_g.copy()
        for inc in self._active(backend, now, "t1_drop", "readout_degrade", "gate_error_rise"):
            qs = range(b.n) if inc.qubit is None else [inc.qubit] if inc.qubit < b.n else []
            stamp, f = self._incident_start_wall(inc), inc.effective_factor
            for q in qs:
                if inc.kind == "t1_drop":
                    old_t1 = t1[q]
                    t1[q] *= f
                    t2[q] = min(t2[q] * f, 2 * t1[q])
                    # Hourly monitoring notices the dip and re-measures the qubit every hour
                    # while it lasts (IBM's calibration jobs: hourly monitoring, re-calibration on deviation;
                    # IBM Quantum documentation, "Calibration jobs").
                    mt_q[q] = max(mt_q[q], self._monitor_tick(inc, now, b.measure_every))
                    for i in b.gates_of[q]:  # the coherence limit moves with T1
                        d = b.g_dur[i]
                        if math.isfinite(d) and math.isfinite(gerr[i]):
                            gerr[i] += d / 3.0 * (1.0 / t1[q] - 1.0 / old_t1)
                            gate_stamp[i] = max(gate_stamp[i], stamp)
                elif inc.kind == "readout_degrade":
                    ro[q] = min(ro[q] * f, 0.5)
                    prob_scale[q] *= f
                    mt_ro[q] = max(mt_ro[q], stamp)
                else:
                    for i in b.gates_of[q]:
                        gate_scale[i] *= f
                        gate_stamp[i] = max(gate_stamp[i], stamp)
        gerr = np.minimum(gerr * gate_scale, 0.75)

        snap = CalibrationSnapshot(self.kind, backend, fetched_at=self.clock(), calibrated_at=calibrated_at)
        for q in range(b.n):
            values: dict[str, Measurement] = {}
            if math.isfinite(t1[q]):
                values["t1"] = Measurement(float(t1[q]), float(mt_q[q]))
            if math.isfinite(t2[q]):
                values["t2"] = Measurement(float(t2[q]), float(mt_q[q]))
            values["readout_error"] = Measurement(float(ro[q]), float(mt_ro[q]))
            for name, arr in b.static.items():
                v = arr[q]
                if math.isfinite(v):
                    if name.startswith("prob_"):
                        v = min(v * prob_scale[q] * ro[q] / b.ro_0[q], 0.5)
                    values[name] = Measurement(float(v), float(mt_ro[q]))
            snap.qubits.append(QubitCalibration(q, values))
        for i, g in enumerate(b.gates):
            dur = Measurement(float(b.g_dur[i]), float(gate_stamp[i])) if math.isfinite(b.g_dur[i]) else None
            if dead[i]:
                snap.gates.append(GateCalibration(g.gate, g.qubits, None, dur, operational=False))
            elif not math.isfinite(gerr[i]):  # e.g. reset: a duration but no error rate
                snap.gates.append(GateCalibration(g.gate, g.qubits, None, dur))
            else:
                snap.gates.append(
                    GateCalibration(g.gate, g.qubits, Measurement(float(gerr[i]), float(gate_stamp[i])), dur)
                )
        return snap

    def jobs(self, backend: str, since: float | None) -> list[JobRecord]:
        b, now = self._sim_backend(backend)
        lo = max(now - JOB_WINDOW, -math.inf if since is None else (since - self.origin) * self.speedup)
        fail_p = [inc.effective_factor for inc in self._active(backend, now, "job_failures")]
        out = []
        with b.lock:
            for j in b.jobs:
                if not (lo < j.finished <= now):
                    continue
                status, cls = j.status, j.error_class
                if fail_p and status == JOB_DONE and j.draw < max(fail_p):
                    status, cls = JOB_FAILED, "execution_error"
                execution = 0.0 if status == JOB_CANCELLED else j.execution
                usage = execution * (USAGE_SHARE_DONE if status == JOB_DONE else USAGE_SHARE_FAILED)
                out.append(
                    JobRecord(
                        provider=self.kind,
                        backend=backend,
                        job_id=j.job_id,
                        status=status,
                        created_at=self._wall(j.created),
                        finished_at=self._wall(j.finished),
                        queue_seconds=j.queue,
                        execution_seconds=execution,
                        usage_seconds=usage,
                        cost_usd=usage * USD_PER_QPU_SECOND,
                        error_class=cls,
                        tags=((SIM_TAG_KEY, j.workload),) if j.workload else (),
                    )
                )
            b.prune_jobs(now)
        return out

    # --- probe execution -------------------------------------------------------------------
    def probe_cost_usd(self, backend, usage_seconds, shots_per_circuit):
        """Probes on the simulated fleet are priced like its jobs: per billed QPU second."""
        return max(0.0, usage_seconds) * USD_PER_QPU_SECOND

    def run_circuits(self, backend, circuits, shots, seed, calibration=None, attempt_id=None):
        """Aer with a small noise model of the probed qubits, built from ``calibration`` (the
        snapshot the probe was designed under; default: the current one, incidents included),
        so a T1 drop or a gate-error rise shows in the RB numbers. Never
        ``AerSimulator.from_backend``: that costs ~1.3 s per run on a 127-qubit device."""
        from ...rb.execute_aer import run_counts
        from ...rb.noise import build_noise_model

        if backend not in self._backends:
            raise ProviderError("unknown_backend", f"no simulated backend {backend!r}")
        if not circuits:
            return []
        snap = calibration if calibration is not None else self.calibration(backend)
        physical = tuple(circuits[0].metadata.get("physical_qubits", ()))
        if not physical or any(tuple(c.metadata.get("physical_qubits", ())) != physical for c in circuits):
            raise ProviderError("invalid_input", "every circuit must carry the same metadata['physical_qubits']")
        b = self._backends[backend]
        if any(q >= b.num_qubits for q in physical):
            raise ProviderError("invalid_input", f"qubits {physical} outside {backend}'s {b.num_qubits} qubits")
        gates = sorted({inst.operation.name for c in circuits for inst in c.data} - {"barrier", "measure"})
        noise = build_noise_model(snap, physical, gates)
        # Barriers change nothing in a simulation (no optimisation runs, noise attaches to gates)
        # but double the instructions Aer converts, which dominates a probe's wall time.
        return run_counts([_without_barriers(c) for c in circuits], noise, shots, seed)


def _without_barriers(circuit):
    out = circuit.copy_empty_like()
    for inst in circuit.data:
        if inst.operation.name != "barrier":
            out._append(inst)
    return out
