"""The simulated fleet: determinism, dynamics and every incident kind (in process, with a
controlled clock so no test waits on wall time)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import sample
from qpu_exporter.providers.simulated.config import SimulatedProviderConfig
from qpu_exporter.exposition import families
from qpu_exporter.providers.simulated.provider import SimulatedProvider
from qpu_exporter.scheduler import Poller
from qpu_exporter.store import Store
from qpu_exporter.view import FleetView

ORIGIN = 1_700_000_000.0


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(backends=("fake_fez",), seed=7, speedup=60.0, incidents=(), clock=None):
    cfg = SimulatedProviderConfig(kind="simulated", backends=list(backends), seed=seed, speedup=speedup,
                                  incidents=list(incidents))
    clock = clock or Clock(ORIGIN)
    return SimulatedProvider(cfg, origin=ORIGIN, clock=clock), clock


def t1s(snap):
    return np.array([q.values["t1"].value if "t1" in q.values else np.nan for q in snap.qubits])


def test_same_seed_same_history_different_seed_different():
    a, ca = make(seed=7)
    b, cb = make(seed=7)
    c, cc = make(seed=8)
    for clock in (ca, cb, cc):
        clock.t = ORIGIN + 3 * 3600  # 180 simulated hours at speedup 60
    sa, sb, sc = (p.calibration("fake_fez") for p in (a, b, c))
    np.testing.assert_array_equal(t1s(sa), t1s(sb))
    assert [g.error for g in sa.gates] == [g.error for g in sb.gates]
    assert not np.allclose(t1s(sa), t1s(sc), equal_nan=True)
    assert [j.job_id for j in a.jobs("fake_fez", None)] == [j.job_id for j in b.jobs("fake_fez", None)]


def test_replay_after_restart_gives_the_same_values():
    """A restart replays the steps from the persisted origin: same values as never stopping."""
    a, ca = make()
    for hours in (1, 2, 4):  # polled along the way
        ca.t = ORIGIN + hours * 3600
        a.calibration("fake_fez")
    b, cb = make()
    cb.t = ca.t  # started fresh at the end
    np.testing.assert_array_equal(t1s(a.calibration("fake_fez")), t1s(b.calibration("fake_fez")))


def test_calibration_moves_over_time_and_starts_from_the_snapshot():
    p, clock = make(speedup=3600.0)
    first = t1s(p.calibration("fake_fez"))
    # Starts from the real snapshot: fez median T1 is about 145 us (qiskit-ibm-runtime's FakeFez snapshot).
    assert 80e-6 < np.nanmedian(first) < 250e-6
    series = []
    for day in range(1, 31):
        clock.t = ORIGIN + day * 24  # one simulated day per 24 wall seconds
        series.append(t1s(p.calibration("fake_fez")))
    series = np.array(series)
    changed = np.mean(np.abs(np.log(series[-1] / first)) > 1e-9)
    assert changed > 0.9, "most qubits' T1 must have been re-measured with new values"
    log_sd = np.nanmedian(np.nanstd(np.log10(series), axis=0))
    assert 0.03 < log_sd < 0.3, log_sd
    # TLS telegraph dips: somewhere in the fleet T1 falls below half its own median.
    ratio = series / np.nanmedian(series, axis=0)
    assert np.nanmin(ratio) < 0.5


def test_gate_error_creeps_between_calibrations_and_resets():
    p, clock = make(speedup=3600.0)
    b = p._backends["fake_fez"]
    errs = []
    for h in range(0, 72):
        clock.t = ORIGIN + h  # one simulated hour per wall second
        p.calibration("fake_fez")
        errs.append(b.true_gate_error().copy())
    errs = np.array(errs)
    cz = np.array([g.gate == "cz" and np.isfinite(b.g_err0[i]) for i, g in enumerate(b.gates)])
    rises = np.diff(errs[:, cz], axis=0)
    assert (rises > 0).mean() > 0.5, "errors mostly creep upwards between calibrations"
    assert (rises < 0).any(axis=1).sum() >= 2, "and drop back at the daily recalibrations"


def test_dead_couplers_come_from_the_snapshot():
    p, _ = make()
    snap = p.calibration("fake_fez")
    dead = [g for g in snap.gates if g.gate == "cz" and not g.operational]
    assert len(dead) == 14  # fez's snapshot has 14 cz edges with gate_error == 1
    assert all(g.error is None for g in dead)


def test_stale_metrics_keep_an_old_date():
    p, clock = make(speedup=3600.0)
    clock.t = ORIGIN + 48
    snap = p.calibration("fake_fez")
    ages = [clock.t - q.values["t1"].measured_at for q in snap.qubits if "t1" in q.values]
    assert max(ages) > 7 * 86400 and np.median(ages) < 2 * 86400


def _poll_and_render(provider, tmp_path):
    store = Store(tmp_path / "s.db")
    view = FleetView()
    poller = Poller([provider], store, view, clock=provider.clock)
    poller.discover(provider)
    for b in provider.backends():
        poller.poll_status(provider, b.backend)
        poller.poll_calibration(provider, b.backend)
        poller.poll_jobs(provider, b.backend)
    from prometheus_client import CollectorRegistry, generate_latest

    from qpu_exporter.exposition import _Families

    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Families(families(view.copy(), store.counters(), version="t", revision="t", daily_budget_usd=1)))
    text = generate_latest(reg).decode()
    store.close()
    return text


def test_t1_drop_shows_at_the_configured_time_on_that_qubit_only(tmp_path):
    incident = {"backend": "fake_fez", "qubit": 3, "kind": "t1_drop", "factor": 0.2, "at": "120s", "duration": "1h"}
    p, clock = make(incidents=[incident])
    start = clock.t
    # At speedup 60 the incident starts 2 wall seconds after start; both reads below fall in
    # the same 15-minute simulation step, so only the incident differs between them.
    clock.t = start + 1.9
    before = _poll_and_render(p, tmp_path / "a")
    clock.t = start + 2.1
    during = _poll_and_render(p, tmp_path / "b")
    clock.t = start + 2 + 61  # the incident lasts one simulated hour = 60 wall seconds
    after = _poll_and_render(p, tmp_path / "c")

    def t1(text, q):
        return sample(text, "qpu_qubit_t1_seconds", backend="fake_fez", qubit=str(q))

    assert t1(during, 3) == pytest.approx(0.2 * t1(before, 3), rel=1e-9)
    for q in (0, 2, 4, 50, 155):
        assert t1(during, q) == t1(before, q)
    stamp = sample(during, "qpu_qubit_measurement_timestamp_seconds", backend="fake_fez", qubit="3", quantity="t1")
    assert stamp == pytest.approx(start + 2.0)
    assert t1(after, 3) > 2 * t1(during, 3)
    # T2 co-moves and the coherence limit raises the qubit's gate errors.
    t2b = sample(before, "qpu_qubit_t2_seconds", backend="fake_fez", qubit="3")
    t2d = sample(during, "qpu_qubit_t2_seconds", backend="fake_fez", qubit="3")
    assert t2d < 0.5 * t2b
    sxb = sample(before, "qpu_gate_error_ratio", backend="fake_fez", gate="sx", qubits="3")
    sxd = sample(during, "qpu_gate_error_ratio", backend="fake_fez", gate="sx", qubits="3")
    assert sxd > sxb


@pytest.mark.parametrize("kind", ["readout_degrade", "gate_error_rise", "offline", "maintenance", "queue_spike", "job_failures"])
def test_every_incident_kind_has_its_effect(kind):
    incident = {"backend": "fake_fez", "qubit": 5, "kind": kind, "at": "0s", "duration": "30d"}
    base, bclock = make(speedup=3600.0)
    hit, hclock = make(speedup=3600.0, incidents=[incident])
    bclock.t = hclock.t = ORIGIN + 3 * 86400 / 3600  # three simulated days
    if kind == "readout_degrade":
        b = base.calibration("fake_fez").qubits[5].values["readout_error"].value
        h = hit.calibration("fake_fez").qubits[5].values["readout_error"].value
        assert h == pytest.approx(min(3 * b, 0.5))
    elif kind == "gate_error_rise":
        def sx(p):
            return next(g.error.value for g in p.calibration("fake_fez").gates if g.gate == "sx" and g.qubits == (5,))
        assert sx(hit) == pytest.approx(3 * sx(base))
    elif kind in ("offline", "maintenance"):
        st = hit.status("fake_fez")
        assert not st.operational and st.status_message == kind
        assert base.status("fake_fez").operational or base.status("fake_fez").status_message == "internal"
    elif kind == "queue_spike":
        assert hit.status("fake_fez").pending_jobs == pytest.approx(20 * base.status("fake_fez").pending_jobs, abs=1)
    else:
        def fail_ratio(p):
            jobs = p.jobs("fake_fez", None)
            assert len(jobs) > 100
            return sum(j.status == "failed" for j in jobs) / len(jobs)
        assert fail_ratio(base) < 0.1 < 0.35 < fail_ratio(hit)


def test_jobs_carry_usage_cost_and_failures():
    p, clock = make(speedup=3600.0)
    clock.t = ORIGIN + 2 * 86400 / 3600
    jobs = p.jobs("fake_fez", None)
    assert len(jobs) > 100
    assert {j.status for j in jobs} >= {"done", "failed"}
    assert all(j.finished_at <= clock.t and j.created_at < j.finished_at for j in jobs)
    done = [j for j in jobs if j.status == "done"]
    assert all(j.usage_seconds > 0 and j.cost_usd > 0 for j in done)
    assert all(j.error_class for j in jobs if j.status == "failed")
    assert all(math.isfinite(j.queue_seconds) and j.queue_seconds >= 0 for j in jobs)
    # Only jobs finished after `since` are returned.
    later = p.jobs("fake_fez", clock.t - 3600 / 3600)
    assert 0 < len(later) < len(jobs)


def test_a_cached_rebuild_equals_a_fresh_one_when_one_backend_changed_and_one_left(tmp_path):
    """The renderer keeps each backend's calibration samples between rebuilds and redoes only
    the backends whose snapshot changed: the result must equal a rebuild without the cache."""
    from qpu_exporter import textformat

    provider, clock = make(backends=("fake_fez", "fake_sherbrooke", "fake_boston"))
    store = Store(tmp_path / "s.db")
    view = FleetView()
    poller = Poller([provider], store, view, clock=clock)
    poller.discover(provider)
    names = [b.backend for b in provider.backends()]
    for b in names:
        poller.poll_calibration(provider, b)

    def render(v, cache):
        return textformat.render(families(v, store.counters(), version="t", revision="t",
                                          daily_budget_usd=1, calibration_cache=cache))

    cache: dict = {}
    first = render(view.copy(), cache)
    assert first == render(view.copy(), None) and set(cache) == {("simulated", b) for b in names}
    kept = cache[("simulated", "fake_sherbrooke")]
    clock.t += 2 * 86400  # two simulated days: fez's values move
    poller.poll_calibration(provider, "fake_fez")
    v = view.copy()
    del v.calibration[("simulated", "fake_boston")]  # a backend whose calibration left the view
    second = render(v, cache)
    assert second != first and second == render(v, None)
    assert cache[("simulated", "fake_sherbrooke")] is kept  # not redone
    assert ("simulated", "fake_boston") not in cache
    store.close()
