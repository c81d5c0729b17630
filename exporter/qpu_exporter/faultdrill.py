"""Fault drill: the real poller, store and simulated provider, with provider faults mixed in.

A ``FaultyProvider`` wraps any provider and, on a seeded schedule, makes a call time out,
return HTTP 5xx, answer 429 with Retry-After, or hand back a malformed payload (a real IBM
properties document with its structure broken, parsed by the real parser). The drill polls
through the ordinary ``Poller`` on a simulated clock and reports what happened, comparing
what the store recorded with what the provider produced, so "data lost" is measured, not
assumed. Used by ``benchmarks/fault_drill.py`` (the table in docs/reliability.md) and by
the test suite on a shorter run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .model import BackendInfo, BackendStatus, CalibrationSnapshot, JobRecord
from .providers.base import Provider, ProviderError
from .providers.ibm.properties import parse_properties

FAULT_KINDS = ("timeout", "http_5xx", "rate_limited", "malformed")


class FaultyProvider(Provider):
    def __init__(self, inner: Provider, fault_rate: float, seed: int = 0, retry_after: float = 120.0):
        self.inner = inner
        self.kind = inner.kind
        self.fault_rate = fault_rate
        self.retry_after = retry_after
        self._rng = random.Random(seed)
        self.injected: dict[str, int] = {k: 0 for k in FAULT_KINDS}

    def _maybe_fail(self, operation: str) -> None:
        if self._rng.random() >= self.fault_rate:
            return
        kind = self._rng.choice(FAULT_KINDS)
        self.injected[kind] += 1
        if kind == "timeout":
            raise ProviderError("timeout", f"{operation}: timed out after 30 s")
        if kind == "http_5xx":
            raise ProviderError("http_5xx", f"{operation}: HTTP 503")
        if kind == "rate_limited":
            raise ProviderError("rate_limited", f"{operation}: HTTP 429", retry_after=self.retry_after)
        # A payload whose structure is wrong, through the real parser.
        broken = {"last_update_date": "2026-01-01T00:00:00Z", "qubits": [[{"name": "T1", "value": "n/a", "unit": "us"}]],
                  "gates": [{"qubits": [0]}]}
        parse_properties(broken, provider=self.kind, backend=operation, fetched_at=0.0)
        raise AssertionError("the parser accepted a malformed payload")  # pragma: no cover

    def backends(self) -> list[BackendInfo]:
        return self.inner.backends()

    def status(self, backend: str) -> BackendStatus:
        self._maybe_fail(f"status of {backend}")
        return self.inner.status(backend)

    def calibration(self, backend: str) -> CalibrationSnapshot:
        self._maybe_fail(f"properties of {backend}")
        return self.inner.calibration(backend)

    def jobs(self, backend: str, since: float | None) -> list[JobRecord]:
        self._maybe_fail(f"jobs of {backend}")
        return self.inner.jobs(backend, since)


@dataclass
class DrillReport:
    polls_attempted: int = 0
    polls_failed: int = 0
    polls_recovered: int = 0  # successes right after a failure of the same collector
    polls_skipped_backoff: int = 0
    faults_injected: dict[str, int] = field(default_factory=dict)
    max_staleness_seconds: float = 0.0
    jobs_produced: int = 0
    jobs_recorded: int = 0
    jobs_counted: float = 0.0
    jobs_lost: int = 0
    calibration_served_throughout: bool = True


def run_drill(rounds: int, fault_rate: float, tmp_dir, seed: int = 0, poll_every: float = 60.0) -> DrillReport:
    """``rounds`` poll rounds of every collector, ``poll_every`` simulated seconds apart, then
    a clean final round; returns the report."""
    import time

    from .providers.simulated.config import SimulatedProviderConfig
    from .providers.simulated.provider import SimulatedProvider
    from .scheduler import Poller
    from .store import Store
    from .view import FleetView

    class Clock:
        t = 1_800_000_000.0

        def __call__(self):
            return self.t

    clock = Clock()
    sim = SimulatedProvider(
        SimulatedProviderConfig(kind="simulated", backends=["fake_fez"], seed=seed, speedup=60.0),
        origin=clock.t, clock=clock,
    )
    faulty = FaultyProvider(sim, fault_rate, seed)
    store = Store(f"{tmp_dir}/drill.db")
    view = FleetView()
    poller = Poller([faulty], store, view, clock=clock,
                    intervals={"status": poll_every, "calibration": poll_every, "jobs": poll_every})
    poller.discover(faulty)
    report = DrillReport()
    last_ok: dict[str, bool] = {}
    had_data = False
    produced: dict[str, JobRecord] = {}
    started = time.monotonic()
    for round_no in range(rounds + 1):
        clock.t += poll_every
        if round_no == rounds:
            faulty.fault_rate = 0.0  # the provider recovers; waits out any backoff
            clock.t += 8 * poll_every + faulty.retry_after
        for collector, poll in (("status", poller.poll_status), ("calibration", poller.poll_calibration),
                                ("jobs", poller.poll_jobs)):
            before = view.copy().health.get((faulty.kind, "fake_fez", collector))
            poll(faulty, "fake_fez")
            h = view.copy().health[(faulty.kind, "fake_fez", collector)]
            if before is not None and h.last_attempt == before.last_attempt:
                report.polls_skipped_backoff += 1
                continue
            report.polls_attempted += 1
            if not h.success:
                report.polls_failed += 1
            elif last_ok.get(collector) is False:
                report.polls_recovered += 1
            last_ok[collector] = h.success
            if h.last_success is not None:
                report.max_staleness_seconds = max(report.max_staleness_seconds, clock.t - h.last_success)
        # Once there is good calibration data it must stay served, whatever fails later.
        has_data = ("simulated", "fake_fez") in view.copy().calibration
        if had_data and not has_data:
            report.calibration_served_throughout = False
        had_data = had_data or has_data
        # Ground truth: everything the provider has finished by now (read without faults).
        for j in sim.jobs("fake_fez", None):
            produced[j.job_id] = j
    report.faults_injected = dict(faulty.injected)
    recorded = store.job_ids("simulated", "fake_fez")
    report.jobs_produced = len(produced)
    report.jobs_recorded = len(recorded)
    report.jobs_lost = len(set(produced) - recorded)
    report.jobs_counted = sum(v for (name, _), v in store.counters().items() if name == "qpu_jobs_total")
    store.close()
    report.wall_seconds = time.monotonic() - started  # type: ignore[attr-defined]
    return report
