"""A provider with observable remote jobs, for the probe worker tests.

Its "remote jobs" are JSON files in a directory both the test and a worker process can see:
``run_circuits`` creates ``<attempt id>.json`` (state ``queued``, the worker's pid), then
either answers (mode ``ok``: binomial counts from a known decay) or waits until the job is
final (mode ``hang``: a job that never finishes on its own). ``cancel_attempt`` marks the
attempt's unfinished jobs ``cancelled`` (or fails while ``cancel_broken`` exists). The mode is
a file too, so the test can change it between probes. Calibration and status are the
simulated fleet's (fake_sherbrooke, calm).

It lives in its own module (not a test file) so a worker process can unpickle it: the worker
gets the test process's sys.path, and ``__reduce__`` rebuilds it from the directory alone.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np

from qpu_exporter.config import Config
from qpu_exporter.providers.base import Provider, ProviderError
from qpu_exporter.providers.factory import build_providers

BACKEND = "fake_sherbrooke"
TRUE_P = 0.98


def simulated(clock=time.time, origin: float | None = None, incidents=()):
    """The simulated fake_sherbrooke (calm, seed 3) the probe tests take calibrations from."""
    cfg = Config.model_validate({"providers": [{"kind": "simulated", "backends": [BACKEND], "dynamics": "calm",
                                                "seed": 3, "incidents": list(incidents)}]})
    return build_providers(cfg, origin=origin if origin is not None else clock(), clock=clock)[0]


class SimulatedCalibration(Provider):
    """Status and calibration from the simulated fake_sherbrooke (built on first use); what a
    test provider scripts is its execution."""

    kind = "simulated"
    _sim = None

    @property
    def sim(self):
        if self._sim is None:
            self._sim = simulated()
        return self._sim

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


class FileJobsProvider(SimulatedCalibration):
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __reduce__(self):
        return (FileJobsProvider, (str(self.root),))

    def set_mode(self, mode: str) -> None:
        (self.root / "mode").write_text(mode)

    def job(self, attempt_id: str) -> dict:
        return json.loads((self.root / f"{attempt_id}.json").read_text())

    def _write(self, attempt_id: str, **fields) -> None:
        path = self.root / f"{attempt_id}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(fields))
        os.replace(tmp, path)

    def run_circuits(self, backend, circuits, shots, seed, calibration=None, attempt_id=None):
        self._write(attempt_id, state="queued", pid=os.getpid(), circuits=len(circuits))
        if (self.root / "mode").read_text() == "hang":
            while self.job(attempt_id)["state"] == "queued":  # until someone cancels it
                time.sleep(0.05)
            raise ProviderError("job_cancelled", f"job {attempt_id} was cancelled")
        rng = np.random.default_rng(seed)
        out = []
        for c in circuits:
            m = int(re.search(r"_m(\d+)_s", c.name).group(1)) if c.name.startswith("rb_") else 0
            zeros = int(rng.binomial(shots, 0.49 * TRUE_P**m + 0.5))
            out.append({"0": zeros, "1": shots - zeros})
        self._write(attempt_id, state="done", pid=os.getpid(), circuits=len(circuits))
        return out

    def cancel_attempt(self, backend, attempt_id, since):
        if (self.root / "cancel_broken").exists():
            return False
        path = self.root / f"{attempt_id}.json"
        if path.exists():
            job = self.job(attempt_id)
            if job["state"] == "queued":
                self._write(attempt_id, **{**job, "state": "cancelled"})
        return True
