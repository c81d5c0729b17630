"""Polling semantics: failures are isolated, counted by class, back off (honouring
Retry-After), and leave the last good data served and visibly stale."""

from __future__ import annotations

import threading
import time

from conftest import wait_until
from qpu_exporter.config import Config
from qpu_exporter.model import BackendInfo, BackendStatus, CalibrationSnapshot, QubitCalibration, Measurement
from qpu_exporter.providers.base import Provider, ProviderError
from qpu_exporter.scheduler import MAX_ABANDONED_CALLS, Poller, Scheduler
from qpu_exporter.store import Store
from qpu_exporter.view import FleetView


class Clock:
    t = 1_000_000.0

    def __call__(self):
        return self.t


class ScriptedProvider(Provider):
    """Stands in for a vendor API at its edge: each backend's next answer is scripted."""

    kind = "scripted"

    def __init__(self, clock):
        self.clock = clock
        self.fail: dict[str, ProviderError | None] = {"good": None, "bad": None}
        self.calls: dict[str, int] = {"good": 0, "bad": 0}

    def backends(self):
        return [BackendInfo(self.kind, b, 2, "test") for b in self.fail]

    def status(self, backend):
        return BackendStatus(True, 1, "active", self.clock())

    def calibration(self, backend):
        self.calls[backend] += 1
        if self.fail[backend] is not None:
            raise self.fail[backend]
        snap = CalibrationSnapshot(self.kind, backend, self.clock(), self.clock())
        snap.qubits.append(QubitCalibration(0, {"t1": Measurement(1e-4 + self.calls[backend] * 1e-7, self.clock())}))
        return snap

    def jobs(self, backend, since):
        return []


def _rig(tmp_path):
    clock = Clock()
    provider = ScriptedProvider(clock)
    store = Store(tmp_path / "s.db")
    view = FleetView()
    poller = Poller([provider], store, view, clock=clock, intervals={"calibration": 60.0})
    poller.discover(provider)
    return clock, provider, store, view, poller


def test_one_backends_failure_never_stops_the_others_and_keeps_its_last_good_data(tmp_path):
    clock, provider, store, view, poller = _rig(tmp_path)
    poller.poll_calibration(provider, "good")
    poller.poll_calibration(provider, "bad")
    good_before = view.copy().calibration[("scripted", "bad")]
    provider.fail["bad"] = ProviderError("http_5xx", "GET /properties: HTTP 503")
    clock.t += 60
    poller.poll_calibration(provider, "bad")
    poller.poll_calibration(provider, "good")
    v = view.copy()
    assert v.health[("scripted", "good", "calibration")].success
    bad = v.health[("scripted", "bad", "calibration")]
    assert not bad.success and bad.error_kind == "http_5xx"
    assert bad.last_success == clock.t - 60  # visibly stale
    assert v.calibration[("scripted", "bad")] is good_before  # last good data still served
    errors = {dict(k[1])["kind"]: val for k, val in store.counters().items() if k[0] == "qpu_exporter_collector_errors_total"}
    assert errors == {"http_5xx": 1.0}


def test_backoff_grows_and_honours_retry_after(tmp_path):
    clock, provider, store, view, poller = _rig(tmp_path)
    provider.fail["bad"] = ProviderError("rate_limited", "HTTP 429", retry_after=300.0)
    poller.poll_calibration(provider, "bad")
    assert provider.calls["bad"] == 1
    for _ in range(4):  # the scheduler fires every 60 s; Retry-After says 300
        clock.t += 60
        poller.poll_calibration(provider, "bad")
    assert provider.calls["bad"] == 1, "retried before Retry-After elapsed"
    clock.t += 61
    provider.fail["bad"] = None
    poller.poll_calibration(provider, "bad")
    assert provider.calls["bad"] == 2 and view.copy().health[("scripted", "bad", "calibration")].success


def test_backoff_is_capped_and_resets_on_success(tmp_path):
    clock, provider, store, view, poller = _rig(tmp_path)
    provider.fail["bad"] = ProviderError("timeout", "timed out after 30 s")
    attempts = []
    for minute in range(60):
        clock.t += 60
        before = provider.calls["bad"]
        poller.poll_calibration(provider, "bad")
        if provider.calls["bad"] > before:
            attempts.append(minute)
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert len(attempts) >= 60 / 8 - 1, attempts  # never slower than every 8 intervals
    assert max(gaps) <= 8
    provider.fail["bad"] = None
    clock.t += 8 * 60
    poller.poll_calibration(provider, "bad")
    clock.t += 60
    n = provider.calls["bad"]
    poller.poll_calibration(provider, "bad")
    assert provider.calls["bad"] == n + 1, "after a success the next interval polls again"


def test_an_unexpected_exception_is_a_failed_poll_not_a_crash(tmp_path):
    clock, provider, store, view, poller = _rig(tmp_path)
    provider.fail["bad"] = KeyError("qubits")  # e.g. a parser bug on a strange payload
    poller.poll_calibration(provider, "bad")
    h = view.copy().health[("scripted", "bad", "calibration")]
    assert not h.success and h.error_kind == "internal"


class HangingProvider(ScriptedProvider):
    """A provider whose calibration call for backend "bad" never answers until released:
    the shape of a vendor API that accepts the connection and then says nothing."""

    def __init__(self, clock, kind="scripted"):
        super().__init__(clock)
        self.kind = kind
        self.release = threading.Event()
        self.started: list[float] = []

    def calibration(self, backend):
        if backend == "bad":
            self.started.append(time.monotonic())
            self.release.wait()
        return super().calibration(backend)


def test_a_hung_provider_call_is_abandoned_counted_as_timeout_and_bounded(tmp_path):
    clock = Clock()
    provider = HangingProvider(clock)
    store = Store(tmp_path / "s.db")
    view = FleetView()
    poller = Poller([provider], store, view, clock=clock, intervals={"calibration": 60.0}, timeout=0.3)
    poller.discover(provider)
    try:
        t0 = time.monotonic()
        poller.poll_calibration(provider, "bad")
        assert time.monotonic() - t0 < 5
        h = view.copy().health[("scripted", "bad", "calibration")]
        assert not h.success and h.error_kind == "timeout" and "poll_timeout" in h.error_message
        poller.poll_calibration(provider, "good")  # other backends are not held up
        assert view.copy().health[("scripted", "good", "calibration")].success
        # Up to MAX_ABANDONED_CALLS hung calls; then polls fail at once without a new call.
        for _ in range(MAX_ABANDONED_CALLS + 2):
            clock.t += 8 * 60  # past any backoff
            poller.poll_calibration(provider, "bad")
        assert len(provider.started) == MAX_ABANDONED_CALLS
        t0 = time.monotonic()
        clock.t += 8 * 60
        poller.poll_calibration(provider, "good")  # same provider: fails fast too
        assert time.monotonic() - t0 < 0.25
        assert view.copy().health[("scripted", "good", "calibration")].error_kind == "timeout"
        timeouts = sum(v for k, v in store.counters().items()
                       if k[0] == "qpu_exporter_collector_errors_total" and dict(k[1])["kind"] == "timeout")
        assert timeouts == 1 + MAX_ABANDONED_CALLS + 2 + 1
    finally:
        provider.release.set()
    # Once the hung calls return, polls call the provider again.
    wait_until(lambda: poller._abandoned.get("scripted") == 0, 5, "abandoned calls to finish")
    clock.t += 8 * 60
    poller.poll_calibration(provider, "good")
    assert view.copy().health[("scripted", "good", "calibration")].success
    poller.close()


def test_the_next_poll_after_a_timeout_runs_on_schedule(tmp_path):
    """The real scheduler: a backend whose calls hang is retried at its next interval, and
    another provider keeps its own interval throughout."""
    provider = HangingProvider(time.time, kind="hanging")
    healthy = ScriptedProvider(time.time)
    store = Store(tmp_path / "s.db")
    view = FleetView()
    config = Config.model_validate({"schedule": {"calibration_interval": 0.5, "jobs_interval": 5, "poll_timeout": 0.2}})
    poller = Poller([provider, healthy], store, view, timeout=config.schedule.poll_timeout)
    sched = Scheduler(poller, config)
    sched.start()
    try:
        wait_until(lambda: len(provider.started) >= 2, 10, "a second calibration call after the first timed out")
        gap = provider.started[1] - provider.started[0]
        assert 0.3 < gap < 1.2, gap  # one interval, not held up by the hung call
        t0 = time.monotonic()
        n0 = healthy.calls["good"]
        wait_until(lambda: healthy.calls["good"] >= n0 + 4, 10, "the healthy provider polled on its interval")
        assert time.monotonic() - t0 < 4.0
    finally:
        provider.release.set()
        sched.shutdown()
        poller.close()
