"""A third provider, registered from outside the package, works in config validation, the
factory, polling and exposition, pricing and the probe budget without any edit to generic
code (docs/providers.md, "Adding a provider")."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Literal

import numpy as np
import pytest
from pydantic import Field

from conftest import parse_samples
from qpu_exporter.config import Config, ConfigError, ProbesConfig, load_config
from qpu_exporter.config_types import Strict
from qpu_exporter.exposition import families
from qpu_exporter.model import JOB_DONE, BackendInfo, JobRecord
from qpu_exporter.probes.runner import ProbeRunner
from qpu_exporter.probes.targets import ProbeTarget
from qpu_exporter.providers import registry
from qpu_exporter.providers.base import Provider
from qpu_exporter.providers.factory import build_providers
from qpu_exporter.scheduler import Poller
from qpu_exporter.store import Store
from qpu_exporter.textformat import render
from qpu_exporter.view import FleetView

NOW = 1_800_000_000.0
SIM_BACKEND = "fake_fez"  # the toy borrows a simulated backend's calibration


class ToyConfig(Strict):
    kind: Literal["toy"]
    backends: list[str] = Field(default_factory=lambda: ["toy_1"])
    usd_per_shot: float | None = Field(default=None, ge=0)


class ToyProvider(Provider):
    """Prices by shot; one task with a known cost and one it cannot price per poll."""

    kind = "toy"

    def __init__(self, config: ToyConfig, clock):
        self.config = config
        self.clock = clock
        sim_config = Config.model_validate({"providers": [{"kind": "simulated", "backends": [SIM_BACKEND],
                                                           "dynamics": "calm", "seed": 3}]})
        self.sim = build_providers(sim_config, origin=NOW, clock=clock)[0]

    def backends(self):
        n = self.sim.backends()[0].num_qubits
        return [BackendInfo(self.kind, name, n, "Toy") for name in self.config.backends]

    def status(self, backend):
        return self.sim.status(SIM_BACKEND)

    def calibration(self, backend):
        return replace(self.sim.calibration(SIM_BACKEND), provider=self.kind, backend=backend)

    def jobs(self, backend, since):
        now = self.clock()
        priced = JobRecord(self.kind, backend, "t1", JOB_DONE, now - 60, now - 10, 40.0, 10.0, None,
                           100 * self.config.usd_per_shot if self.config.usd_per_shot is not None else None,
                           cost_unknown_reason="" if self.config.usd_per_shot is not None else "unpriced_device")
        reserved = JobRecord(self.kind, backend, "t2", JOB_DONE, now - 50, now - 5, 40.0, 5.0, None, None,
                             cost_unknown_reason="reservation")
        return [priced, reserved]

    def __reduce__(self):
        # Probes run in a worker process on a pickled copy: rebuilt from the config (docs/providers.md).
        return (ToyProvider, (self.config, self.clock))

    def probe_cost_usd(self, backend, usage_seconds, shots_per_circuit):
        if self.config.usd_per_shot is None:
            return None
        return sum(shots_per_circuit) * self.config.usd_per_shot

    def run_circuits(self, backend, circuits, shots, seed, calibration=None, attempt_id=None):
        rng = np.random.default_rng(seed)
        out = []
        for c in circuits:
            m = int(re.search(r"_m(\d+)_s", c.name).group(1)) if c.name.startswith("rb_") else 0
            zeros = int(rng.binomial(shots, 0.49 * 0.97**m + 0.5))
            out.append({"0": zeros, "1": shots - zeros})
        return out


def _build_toy(config, *, origin, clock):
    return ToyProvider(config, clock)


def _now() -> float:  # a module-level clock: it pickles, as a probe worker needs
    return NOW


@pytest.fixture
def toy_registered():
    registry.register_provider(registry.ProviderSpec("toy", ToyConfig, _build_toy))
    try:
        yield
    finally:
        registry.unregister_provider("toy")


def _probes_cfg() -> ProbesConfig:
    return ProbesConfig.model_validate({"shots_per_probe": 300, "max_length": 40, "min_shots": 50, "max_circuits": 6,
                                        "budget": {"shots_per_day": 100_000, "usd_per_day": 1000}})


def test_config_validation_accepts_the_new_kind_and_names_its_bad_keys(toy_registered, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("providers:\n  - kind: toy\n    usd_per_shot: 0.01\n  - kind: simulated\n    backends: [fake_fez]\n")
    config = load_config(good)
    assert isinstance(config.providers[0], ToyConfig) and config.providers[0].usd_per_shot == 0.01
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  - kind: toy\n    colour: blue\n")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(err.value) == f"{bad}: providers[0].colour: unknown key"
    bad.write_text("providers:\n  - kind: toy\n    usd_per_shot: -1\n")
    with pytest.raises(ConfigError, match=r"providers\[0\]\.usd_per_shot: "):
        load_config(bad)


def test_the_new_provider_is_polled_priced_and_exported(toy_registered, tmp_path):
    config = Config.model_validate({"providers": [{"kind": "toy", "usd_per_shot": 0.01}]})
    [provider] = build_providers(config, origin=NOW, clock=lambda: NOW)
    assert isinstance(provider, ToyProvider)
    store, view = Store(tmp_path / "s.db"), FleetView()
    poller = Poller([provider], store, view, clock=lambda: NOW)
    [name] = poller.discover(provider)
    for poll in (poller.poll_status, poller.poll_calibration, poller.poll_jobs, poller.poll_jobs):
        poll(provider, name)
    samples = parse_samples(render(families(view.copy(), store.counters(), version="t", revision="t",
                                            daily_budget_usd=1)).decode())
    toy = {(n, tuple(sorted((k, v) for k, v in lab.items() if k not in ("provider", "backend")))): v
           for n, lab, v in samples if lab.get("provider") == "toy"}
    assert toy[("qpu_backend_up", ())] == 1
    assert toy[("qpu_jobs_total", ())] == 2
    assert toy[("qpu_cost_usd_total", ())] == pytest.approx(1.0)  # 100 shots at 0.01, counted once
    assert toy[("qpu_jobs_cost_unknown_total", (("reason", "reservation"),))] == 1
    assert any(n == "qpu_qubit_t1_seconds" for n, _ in toy)
    store.close()


def test_the_budget_asks_the_new_provider_for_its_price(toy_registered, tmp_path):
    config = Config.model_validate({"providers": [{"kind": "toy", "usd_per_shot": 0.01}]})
    [priced] = build_providers(config, origin=NOW, clock=_now)
    store = Store(tmp_path / "s.db")
    seeds = iter(range(1000, 10**6))
    runner = ProbeRunner([priced], store, _probes_cfg(), new_seed=lambda: next(seeds))
    snap = priced.calibration("toy_1")
    [outcome] = runner.probe_backend(priced, "toy_1", targets=[ProbeTarget("toy", "toy_1", (0,))])
    assert outcome.status == "ok", outcome.reason
    assert outcome.cost_usd == pytest.approx(outcome.shots * 0.01)  # the toy's own price
    assert store.probe_budget_used("toy", "toy_1", 0.0)[1] == pytest.approx(outcome.cost_usd)
    runner.stop()

    unpriced = build_providers(Config.model_validate({"providers": [{"kind": "toy"}]}), origin=NOW,
                               clock=lambda: NOW)[0]
    runner = ProbeRunner([unpriced], Store(tmp_path / "u.db"), _probes_cfg(), calibration_of=lambda p, b: snap)
    [skipped] = runner.probe_backend(unpriced, "toy_1", targets=[ProbeTarget("toy", "toy_1", (0,))])
    assert skipped.status == "skipped" and skipped.reason.startswith("unpriced")
    counters = runner.store.counters()
    assert counters[("qpu_probe_skipped_total", (("backend", "toy_1"), ("provider", "toy"), ("reason", "unpriced")))] == 1
    assert runner.store.probe_budget_used("toy", "toy_1", 0.0) == (0.0, 0.0, 0.0, 0.0)  # nothing reserved
    runner.stop()
    store.close()
    runner.store.close()
