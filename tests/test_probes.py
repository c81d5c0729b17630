"""Probe runner: retries and the ledger, skip reasons, no overlap per backend, failed fits,
incidents seen by Aer probes, exact re-runs. Execution is faked (cheap, binomial counts from a
known decay) except where the test is about Aer and the simulated calibration."""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest

from qpu_exporter.config import Config, ProbesConfig
from qpu_exporter.model import BackendStatus
from qpu_exporter.probes.budget import WINDOW_SECONDS
from qpu_exporter.probes.runner import ProbeRunner
from qpu_exporter.probes.targets import ProbeTarget, auto_targets, check_target
from qpu_exporter.providers.base import Provider, ProviderError
from qpu_exporter.providers.factory import build_providers
from qpu_exporter.store import Store

BACKEND = "fake_sherbrooke"
TRUE_P = 0.98  # decay per Clifford of the fake executor: EPC = 0.01 (1q)


def _sim(incidents=(), clock=time.time, origin=None):
    cfg = Config.model_validate({"providers": [{"kind": "simulated", "backends": [BACKEND], "dynamics": "calm",
                                                "seed": 3, "incidents": list(incidents)}]})
    return build_providers(cfg, origin=origin if origin is not None else clock(), clock=clock)[0]


class FakeExecutor(Provider):
    """The simulated backend's calibration and status, with a scripted executor."""

    kind = "simulated"

    def __init__(self, fail_first: int = 0, decay: bool = True, block: threading.Event | None = None):
        self.sim = _sim()
        self.fail_first = fail_first
        self.decay = decay
        self.block = block
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def backends(self):
        return self.sim.backends()

    def status(self, backend):
        return self.sim.status(backend)

    def calibration(self, backend):
        return self.sim.calibration(backend)

    def jobs(self, backend, since):
        return []

    def probe_cost_usd(self, backend, usage_seconds, shots_per_circuit):
        return self.sim.probe_cost_usd(backend, usage_seconds, shots_per_circuit)

    def run_circuits(self, backend, circuits, shots, seed, calibration=None):
        with self._lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            call = self.calls
        try:
            self.entered.set()
            if self.block is not None:
                self.block.wait(10)
            if call <= self.fail_first:
                raise ProviderError("http_5xx", "backend said no")
            rng = np.random.default_rng(seed)
            out = []
            for c in circuits:
                m = int(re.search(r"_m(\d+)_s", c.name).group(1)) if c.name.startswith("rb_") else 0
                p_surv = 0.49 * TRUE_P**m + 0.5 if self.decay else 0.99
                zeros = int(rng.binomial(shots, p_surv))
                out.append({"0": zeros, "1": shots - zeros})
            return out
        finally:
            with self._lock:
                self.active -= 1


def _probes_cfg(**kw) -> ProbesConfig:
    base = {"shots_per_probe": 600, "max_length": 120, "min_shots": 100, "max_circuits": 18, "retries": 2,
            "budget": {"shots_per_day": 100_000, "usd_per_day": 1000}}
    base.update(kw)
    return ProbesConfig.model_validate(base)


def _runner(tmp_path, provider, cfg=None, **kw):
    store = Store(tmp_path / "state.db")
    seeds = iter(range(1000, 10**6))  # fixed seeds: the fits below are deterministic
    kw.setdefault("new_seed", lambda: next(seeds))
    runner = ProbeRunner([provider], store, cfg or _probes_cfg(), **kw)
    runner.register_backend(provider.kind, BACKEND)
    return runner, store


def _counter(store, name, **labels):
    want = {"provider": "simulated", "backend": BACKEND, **labels}
    return sum(v for (n, lab), v in store.counters().items() if n == name and dict(lab) == want)


TARGET = ProbeTarget("simulated", BACKEND, (0,))


def test_retries_consume_reservations_and_the_probe_fits(tmp_path):
    prov = FakeExecutor(fail_first=2)
    runner, store = _runner(tmp_path, prov)
    [out] = runner.probe_backend(prov, BACKEND, targets=[TARGET])
    assert out.status == "ok" and out.attempts == 3 and prov.calls == 3
    # Every attempt reserved its shots before submission; the ledger and the counter agree.
    per_attempt = out.shots // 3
    assert store.probe_budget_used("simulated", BACKEND, 0)[0] == out.shots == 3 * per_attempt
    assert _counter(store, "qpu_probe_shots_total") == out.shots
    assert _counter(store, "qpu_probe_runs_total") == 1 and _counter(store, "qpu_probe_failures_total") == 0
    assert out.epc == pytest.approx(0.5 * (1 - TRUE_P), rel=0.35)
    assert runner.feed.last_success[("simulated", BACKEND)] > 0


def test_failures_after_retries_and_budget_exhaustion_mid_retry(tmp_path):
    prov = FakeExecutor(fail_first=100)
    runner, store = _runner(tmp_path, prov, _probes_cfg(retries=5))
    [out] = runner.probe_backend(prov, BACKEND, targets=[TARGET])
    assert out.status == "failed" and "http_5xx" in out.reason and prov.calls == 6
    assert _counter(store, "qpu_probe_failures_total") == 1
    one = out.shots // 6

    # A cap that allows 2.5 attempts: the third reservation is refused, the run fails, nothing exceeds it.
    cfg = _probes_cfg(retries=5, budget={"shots_per_day": int(2.5 * one), "usd_per_day": 1000})
    prov2 = FakeExecutor(fail_first=100)
    runner2, store2 = _runner(tmp_path / "b", prov2, cfg)
    [out2] = runner2.probe_backend(prov2, BACKEND, targets=[TARGET])
    assert out2.status == "failed" and "budget" in out2.reason and prov2.calls == 2
    assert store2.probe_budget_used("simulated", BACKEND, 0)[0] == 2 * one <= cfg.budget.shots_per_day
    assert _counter(store2, "qpu_probe_skipped_total", reason="budget") == 1
    # Exhausted: the next probe is skipped before anything is generated or sent.
    assert runner2.probe_backend(prov2, BACKEND, targets=[TARGET])[0].status == "skipped"
    assert prov2.calls == 2 and _counter(store2, "qpu_probe_skipped_total", reason="budget") == 2
    assert runner2.feed.remaining[("simulated", BACKEND)] < 0.25


def test_failed_fit_is_a_counted_failure_with_a_reason(tmp_path, caplog):
    prov = FakeExecutor(decay=False)
    runner, store = _runner(tmp_path, prov)
    [out] = runner.probe_backend(prov, BACKEND, targets=[TARGET])
    assert out.status == "failed" and out.reason.startswith("fit failed:") and "decay" in out.reason
    assert _counter(store, "qpu_probe_failures_total") == 1 and _counter(store, "qpu_probe_runs_total") == 1
    assert ("simulated", BACKEND, "0") not in runner.feed.epc  # never a silent number
    assert any(getattr(r, "event", None) == "probe failed" and "fit failed" in r.getMessage() for r in caplog.records)


def test_backend_down_and_busy_are_skipped_and_counted(tmp_path):
    prov = FakeExecutor()
    down = BackendStatus(False, 0, "offline", time.time())
    runner, store = _runner(tmp_path, prov, status_of=lambda p, b: down)
    assert runner.probe_backend(prov, BACKEND, targets=[TARGET]) == []
    assert _counter(store, "qpu_probe_skipped_total", reason="backend_down") == 1 and prov.calls == 0

    # Another process (its own Store on the same file) holds the backend: busy.
    other = Store(tmp_path / "state.db")
    assert other.acquire_probe_lease("simulated", BACKEND, "someone-else", time.time(), 60)
    runner2 = ProbeRunner([prov], store, _probes_cfg())
    assert runner2.probe_backend(prov, BACKEND, targets=[TARGET]) == []
    assert _counter(store, "qpu_probe_skipped_total", reason="busy") == 1
    other.release_probe_lease("simulated", BACKEND, "someone-else")
    other.close()


def test_two_probes_never_overlap_on_a_backend(tmp_path):
    gate = threading.Event()
    prov = FakeExecutor(block=gate)
    runner, store = _runner(tmp_path, prov)
    first = threading.Thread(target=runner.probe_backend, args=(prov, BACKEND), kwargs={"targets": [TARGET]})
    first.start()
    assert prov.entered.wait(30)
    # Scheduled ticks and direct calls while the first probe is in flight are all skipped as busy.
    for _ in range(5):
        runner.trigger(prov, BACKEND)
    others = [threading.Thread(target=runner.probe_backend, args=(prov, BACKEND), kwargs={"targets": [TARGET]})
              for _ in range(5)]
    for t in others:
        t.start()
    for t in others:
        t.join(30)
    gate.set()
    first.join(30)
    assert prov.max_active == 1 and prov.calls == 1
    assert _counter(store, "qpu_probe_skipped_total", reason="busy") == 10
    assert _counter(store, "qpu_probe_runs_total") == 1


def test_the_lease_outlives_slow_remote_jobs_and_their_retries(tmp_path):
    """A provider whose jobs may wait 3 h: each attempt takes 2.5 h and the first fails. The
    lease is renewed before each submission for as long, so another process never gets in."""
    now = [time.time()]
    other = Store(tmp_path / "state.db")
    taken = []

    class SlowRemote(FakeExecutor):
        def probe_wait_seconds(self):
            return 3 * 3600.0

        def run_circuits(self, backend, circuits, shots, seed, calibration=None):
            now[0] += 2.5 * 3600  # the job's queue and run time
            # Another process (its own Store on the same file) tries the backend meanwhile.
            taken.append(other.acquire_probe_lease("simulated", backend, "someone-else", now[0], 60))
            return super().run_circuits(backend, circuits, shots, seed, calibration)

    prov = SlowRemote(fail_first=1)
    runner, store = _runner(tmp_path, prov, clock=lambda: now[0])
    [out] = runner.probe_backend(prov, BACKEND, targets=[TARGET])
    assert out.status == "ok" and prov.calls == 2, out.reason
    assert taken == [False, False]
    # Released at the end: the other process gets it at once.
    assert other.acquire_probe_lease("simulated", BACKEND, "someone-else", now[0], 60)
    other.close()


def test_auto_targets_are_operational_native_and_spread():
    snap = _sim().calibration(BACKEND)
    targets = auto_targets(snap, 3, 1)
    pair, singles = targets[0], targets[1:]
    assert len(pair.qubits) == 2 and pair.interleaved == "ecr" and check_target(pair, snap) == ""
    assert pair.qubits[0] in [t.qubits[0] for t in singles] or pair.qubits[1] in [t.qubits[0] for t in singles]
    qs = [t.qubits[0] for t in singles]
    assert len(qs) == 3 and qs == sorted(qs) and qs[-1] - qs[0] > 100  # spread over the 127 qubits
    bad = ProbeTarget("simulated", BACKEND, tuple(reversed(pair.qubits)), "ecr")
    assert "direction" in check_target(bad, snap)


# --- Aer on the simulated fleet (a few seconds each: kept to the minimum) -------------------------

class SimClock:
    def __init__(self):
        self.t = time.time()

    def __call__(self):
        return self.t


def test_probe_epc_follows_injected_incidents_and_reruns_exactly(tmp_path):
    clock = SimClock()
    incidents = [{"backend": BACKEND, "qubit": 0, "kind": "gate_error_rise", "factor": 5, "at": "1h", "duration": "2h"},
                 {"backend": BACKEND, "qubit": 63, "kind": "t1_drop", "factor": 0.1, "at": "1h", "duration": "2h"}]
    sim = _sim(incidents, clock=clock, origin=clock.t)
    cfg = _probes_cfg(shots_per_probe=2000, max_length=1500, min_shots=400, max_circuits=60)
    runner, store = _runner(tmp_path, sim, cfg, clock=clock)
    targets = [ProbeTarget("simulated", BACKEND, (0,)), ProbeTarget("simulated", BACKEND, (63,))]
    before = runner.probe_backend(sim, BACKEND, targets=targets)
    clock.t += 1.5 * 3600
    during = runner.probe_backend(sim, BACKEND, targets=targets)
    assert all(o.status == "ok" for o in before + during), [o.reason for o in before + during]
    rise = during[0].epc / before[0].epc
    drop = during[1].epc / before[1].epc
    # Gate error x5 -> EPC ~x5; T1 x0.1 -> the coherence-limited error grows ~x3-5 here. Both far
    # outside the probes' ~10-15 % relative error.
    assert rise > 2.5, (before[0].epc, during[0].epc)
    assert drop > 1.8, (before[1].epc, during[1].epc)

    # The record re-runs exactly: same seeds -> same circuits (fingerprints) and the same counts.
    row = store.probe_run(before[0].run_id)
    assert row["calibration_at"] == row["record"]["calibration_at"] and row["record"]["design"]["seed"]
    again = runner.rerun(before[0].run_id)
    assert again["fingerprints"] == [s["fingerprint"] for s in row["record"]["sequences"]]
    assert again["counts"] == [s["counts"] for s in row["record"]["sequences"]]
    assert store.probe_budget_used("simulated", BACKEND, clock() - WINDOW_SECONDS)[0] == sum(
        o.shots for o in before + during)  # the re-run is not a probe: not charged
