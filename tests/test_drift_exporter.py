"""Drift detection inside the exporter: simulated incident -> detector -> exported alarm,
state persisted across a restart (in process, controlled clock, real parts throughout)."""

from __future__ import annotations


from conftest import parse_samples
from qpu_exporter.providers.simulated.config import SimulatedProviderConfig
from qpu_exporter.drift import DriftSettings
from qpu_exporter.drift_feed import DriftFeed
from qpu_exporter.exposition import families
from qpu_exporter.providers.simulated.provider import SimulatedProvider
from qpu_exporter.scheduler import Poller
from qpu_exporter.store import Store
from qpu_exporter.view import FleetView

ORIGIN = 1_750_000_000.0
WARMUP = 20


class Clock:
    t = ORIGIN

    def __call__(self):
        return self.t


STEP = 86400  # one poll and one measurement per simulated day, as IBM publishes
SPEEDUP = 86400.0


def _rig(tmp_path, clock, incidents=()):
    # Calm dynamics: no natural TLS dips or outages, so the injected incident is the only
    # real change and any other alarm would be a false one.
    cfg = SimulatedProviderConfig(kind="simulated", backends=["fake_fez"], seed=0, speedup=SPEEDUP,
                                  measurement_interval=STEP, dynamics="calm", incidents=list(incidents))
    provider = SimulatedProvider(cfg, origin=ORIGIN, clock=clock, measurement_interval=STEP)
    store = Store(tmp_path / "state.db")
    feed = DriftFeed(DriftSettings(warmup=WARMUP), store)
    view = FleetView()
    poller = Poller([provider], store, view, clock=clock, on_calibration=[feed.on_calibration])
    poller.discover(provider)
    return provider, store, feed, view, poller


def _alarms(feed: DriftFeed) -> set[str]:
    return {row.series for row in feed.monitor.statistics() if row.alarm_active}


def _touches_qubit(series: str, qubit: int) -> bool:
    target = series.split(":", 1)[1]
    if target.startswith("q"):
        return target == f"q{qubit}"
    return str(qubit) in target.split(":")[1].split("_")


def test_t1_drop_raises_that_qubits_alarm_within_a_few_polls_and_no_other(tmp_path):
    clock = Clock()
    incident = {"backend": "fake_fez", "qubit": 3, "kind": "t1_drop", "factor": 0.2,
                "at": f"{(WARMUP + 2) * STEP + 1}s", "duration": "10d"}
    provider, store, feed, view, poller = _rig(tmp_path, clock, [incident])
    sim = provider._backends["fake_fez"]
    polls_to_alarm = None
    for poll in range(1, WARMUP + 12):
        clock.t = ORIGIN + poll * STEP / SPEEDUP
        poller.poll_calibration(provider, "fake_fez")
        assert (sim.tls == 1.0).all()
        if poll <= WARMUP + 2:
            assert not _alarms(feed), f"alarm before the incident at poll {poll}"
        elif polls_to_alarm is None and "t1:q3" in _alarms(feed):
            polls_to_alarm = poll - (WARMUP + 2)
        others = {s for s in _alarms(feed) if not _touches_qubit(s, 3)}
        assert not others, f"alarms on other qubits: {sorted(others)[:5]}"
    assert polls_to_alarm is not None and polls_to_alarm <= 4, polls_to_alarm

    text = _render(view, store, feed)
    alarm = [(lab["series"], lab["detector"], v) for n, lab, v in parse_samples(text) if n == "qpu_drift_alarm"]
    assert len({s for s, _, _ in alarm}) > 500  # every monitored series is exported
    firing = {s for s, _, v in alarm if v == 1}
    assert "t1:q3" in firing or any(  # the alarm may have restarted after signalling
        lab["series"] == "t1:q3" and v >= 1 for n, lab, v in parse_samples(text) if n == "qpu_drift_alarms_total"
    )
    assert all(_touches_qubit(s, 3) for s in firing)
    stat = {(lab["series"], lab["detector"]): v for n, lab, v in parse_samples(text) if n == "qpu_drift_statistic"}
    assert stat[("t1:q3", "ewma")] < 0  # T1 went down
    store.close()


def _render(view, store, feed) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    from qpu_exporter.exposition import _Families

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Families(families(view.copy(), store.counters(), version="t", revision="t",
                                    daily_budget_usd=1, extra=feed.families())))
    return generate_latest(reg).decode()


def test_restart_keeps_detector_state_without_a_new_warm_up(tmp_path):
    clock = Clock()
    provider, store, feed, view, poller = _rig(tmp_path, clock)
    for poll in range(1, WARMUP + 4):
        clock.t = ORIGIN + poll * STEP / SPEEDUP
        poller.poll_calibration(provider, "fake_fez")
    monitoring = {(r.series, r.detector): r.statistic for r in feed.monitor.statistics()}
    assert len(monitoring) > 500
    feed.save()
    store.close()

    # A new process: same state file, fresh provider replaying the same history.
    provider2, store2, feed2, view2, poller2 = _rig(tmp_path, clock)
    restored = {(r.series, r.detector): r.statistic for r in feed2.monitor.statistics()}
    assert restored == monitoring, "statistics must come back exactly, with no warm-up"
    clock.t += STEP / SPEEDUP
    poller2.poll_calibration(provider2, "fake_fez")
    after = {(r.series, r.detector) for r in feed2.monitor.statistics()}
    assert after == set(monitoring), "the next sample continues the charts"
    counts = {(r.series, r.detector): r.count for r in feed2.monitor.alarms_total()}
    assert all(c >= 0 for c in counts.values())
    store2.close()


def test_a_repolled_measurement_is_not_a_new_sample(tmp_path):
    clock = Clock()
    provider, store, feed, view, poller = _rig(tmp_path, clock)
    clock.t = ORIGIN + STEP / SPEEDUP
    poller.poll_calibration(provider, "fake_fez")
    counts_before = list(feed.monitor.state()["columns"]["count"])
    assert len(counts_before) == len(feed.monitor) > 100 and set(counts_before) == {1}
    for _ in range(5):  # same wall second: same measurements
        poller.poll_calibration(provider, "fake_fez")
    rejections = list(feed.monitor.rejections_total())
    assert not rejections, rejections[:3]
    assert list(feed.monitor.state()["columns"]["count"]) == counts_before

    # Probe results: each new measurement time is one sample, a repeated one is none.
    series = ("simulated", "fake_fez", "probe_epc:0_1")
    for t in (1.0, 2.0, 2.0, 1.5, 3.0):
        feed.on_probe(*series, 0.01, ORIGIN + t)
    slot = feed.monitor.state()["keys"].index(list(series))
    assert feed.monitor.state()["columns"]["count"][slot] == 3
    store.close()
