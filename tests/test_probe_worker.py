"""Probes run in a worker process: a worker killed mid-probe, past its deadline, or whose
supervisor crashed is a failed probe whose reservation stands and whose jobs are cancelled; the
exporter keeps serving and never loads qiskit, Aer or the provider SDKs for it; the worker
computes exactly what the serving process used to (same circuits, same counts)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import http_get, sample, wait_until
from fake_remote import BACKEND, FileJobsProvider

from qpu_exporter.config import ProbesConfig
from qpu_exporter.model import CalibrationSnapshot, GateCalibration, Measurement
from qpu_exporter.probes.runner import ProbeRunner
from qpu_exporter.probes.targets import ONE_QUBIT_BASIS, TWO_QUBIT_GATES, ProbeTarget, basis_gates_of
from qpu_exporter.rb.gate_counts import TABLE
from qpu_exporter.store import Store

TARGET = ProbeTarget("simulated", BACKEND, (0,))
NATIVE = ("_accelerate", "qiskit_aer")  # shared objects of qiskit and Aer in /proc/<pid>/maps


def _cfg(**kw) -> ProbesConfig:
    base = {"shots_per_probe": 400, "max_length": 60, "min_shots": 50, "max_circuits": 8, "retries": 1,
            "budget": {"shots_per_day": 100_000, "usd_per_day": 1000}}
    return ProbesConfig.model_validate({**base, **kw})


def _counter(store, name, **labels):
    want = {"provider": "simulated", "backend": BACKEND, **labels}
    return sum(v for (n, lab), v in store.counters().items() if n == name and dict(lab) == want)


def _reaped(pid: int) -> bool:
    """Gone from the process table: neither running nor a zombie waiting to be reaped."""
    return not Path(f"/proc/{pid}").exists()


def _maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


# --- deadline, crash recovery -------------------------------------------------------------------

def test_a_worker_past_its_deadline_is_killed_counted_and_its_job_cancelled(tmp_path):
    root = tmp_path / "jobs"
    root.mkdir()
    provider = FileJobsProvider(root)
    provider.set_mode("hang")  # the remote job never finishes on its own
    store = Store(tmp_path / "state.db")
    runner = ProbeRunner([provider], store, _cfg(worker_timeout="2.5s"))
    runner.register_backend("simulated", BACKEND)

    [out] = runner.probe_backend(provider, BACKEND, targets=[TARGET])
    assert out.status == "failed" and out.reason.startswith("worker_timeout:"), out.reason
    record = store.probe_run(out.run_id)["record"]
    [attempt_id] = record["attempt_ids"]
    job = provider.job(attempt_id)
    assert job["state"] == "cancelled"  # no open provider job left behind
    assert _reaped(job["pid"]) and job["pid"] != os.getpid()  # killed and reaped: no zombie
    # The reservation stands (the job may have been billed); the failure is counted as such.
    assert store.probe_budget_used("simulated", BACKEND, 0)[0] == out.shots > 0
    assert _counter(store, "qpu_probe_failures_total") == 1
    assert _counter(store, "qpu_probe_worker_failures_total", reason="timeout") == 1
    assert len(record["sequences"]) == out.design["num_circuits"]  # what was sent, for the record
    assert not store.meta(f"probe_attempt:simulated:{BACKEND}")  # nothing left to recover
    store.close()


def test_an_attempt_whose_jobs_could_not_be_cancelled_is_cancelled_by_the_next_holder(tmp_path):
    """The cancellation after a worker failure fails (provider unreachable): the attempt stays
    recorded in the state file, and the next probe of the backend cancels its job first.
    (The worker loop runs on a thread here: what is tested is the record and the recovery.)"""
    root = tmp_path / "jobs"
    root.mkdir()
    provider = FileJobsProvider(root)
    provider.set_mode("hang")
    (root / "cancel_broken").touch()
    store = Store(tmp_path / "state.db")
    runner = ProbeRunner([provider], store, _cfg(worker_timeout="0.5s"), isolation="thread")
    runner.register_backend("simulated", BACKEND)
    [failed] = runner.probe_backend(provider, BACKEND, targets=[TARGET])
    assert failed.reason.startswith("worker_timeout:")
    [attempt_id] = store.probe_run(failed.run_id)["record"]["attempt_ids"]
    assert provider.job(attempt_id)["state"] == "queued"
    assert json.loads(store.meta(f"probe_attempt:simulated:{BACKEND}"))["attempt_id"] == attempt_id

    (root / "cancel_broken").unlink()
    provider.set_mode("ok")
    [ok] = runner.probe_backend(provider, BACKEND, targets=[TARGET])
    assert ok.status == "ok", ok.reason
    assert provider.job(attempt_id)["state"] == "cancelled"
    assert not store.meta(f"probe_attempt:simulated:{BACKEND}")
    store.close()


def test_a_supervisor_that_loses_the_lease_kills_its_worker(tmp_path):
    """Another process judged this one dead and took the backend (a replica after a network
    partition): the next heartbeat finds the lease gone, kills the worker and cancels its job."""
    root = tmp_path / "jobs"
    root.mkdir()
    provider = FileJobsProvider(root)
    provider.set_mode("hang")
    store = Store(tmp_path / "state.db")
    other = Store(tmp_path / "state.db")
    runner = ProbeRunner([provider], store, _cfg(), isolation="thread", lease_seconds=0.4)
    runner.register_backend("simulated", BACKEND)
    outcome = []
    thread = threading.Thread(target=lambda: outcome.extend(runner.probe_backend(provider, BACKEND, targets=[TARGET])))
    thread.start()
    attempt = wait_until(lambda: store.meta(f"probe_attempt:simulated:{BACKEND}"), 60, "the attempt in flight")
    job_id = json.loads(attempt)["attempt_id"]
    wait_until(lambda: (root / f"{job_id}.json").exists(), 60, "the job submitted")
    assert other.acquire_probe_lease("simulated", BACKEND, "other-host:1:x", time.time(), 60,
                                     holder_dead=lambda holder: True)
    thread.join(30)
    [out] = outcome
    assert out.status == "failed" and out.reason.startswith("worker_lease_lost:"), out.reason
    assert provider.job(job_id)["state"] == "cancelled"
    assert _counter(store, "qpu_probe_worker_failures_total", reason="lease_lost") == 1
    other.close()
    store.close()


# --- a serving exporter whose worker is killed ------------------------------------------------------

EXPORTER_CONFIG = """
providers:
  - kind: simulated
    backends: [fake_sherbrooke]
    seed: 5
    dynamics: calm
    incidents:  # an error large enough for short sequences to show the decay
      - {backend: fake_sherbrooke, qubit: 0, kind: gate_error_rise, factor: 20, at: 0s, duration: 1d}
schedule:
  calibration_interval: 5s
  probe_interval: 2s
probes:
  start_delay: 0s
  shots_per_probe: 400
  max_length: 120
  targets: [{backend: fake_sherbrooke, qubits: [0]}]
  budget: {shots_per_day: 1000000, usd_per_day: 1000}
state_path: STATE_PATH
"""


def test_a_worker_killed_mid_probe_fails_the_probe_and_the_exporter_serves_on(start_exporter):
    ex = start_exporter(EXPORTER_CONFIG)
    pid = ex.proc.pid
    scrapes, failures = [0], []
    stop = threading.Event()

    def scrape():
        while not stop.is_set():
            try:
                code, _, _ = http_get(ex.url + "/metrics", timeout=10, headers={"Accept-Encoding": "gzip"})
                scrapes[0] += 1
                if code != 200:
                    failures.append(code)
            except Exception as exc:  # noqa: BLE001 - every failed scrape is a test failure
                failures.append(repr(exc))
            stop.wait(0.05)

    scraper = threading.Thread(target=scrape, daemon=True)
    scraper.start()
    try:
        def reserved_and_working():
            kids = _children(pid)
            db = Store(ex.state_path)
            try:
                paid = db.probe_budget_used("simulated", BACKEND, 0)[0]
            finally:
                db.close()
            # The worker has qiskit loaded (it is synthesising or running) and the probe is paid for.
            return kids[0] if len(kids) == 1 and paid > 0 and "_accelerate" in _maps(kids[0]) else None

        worker = wait_until(reserved_and_working, 120, "a probe worker at work", interval=0.1)
        assert not any(lib in _maps(pid) for lib in NATIVE)  # qiskit and Aer live in the worker only
        os.kill(worker, signal.SIGKILL)

        def failed_row():
            db = Store(ex.state_path)
            try:
                return db.probe_runs(status="failed")
            finally:
                db.close()

        [row] = wait_until(failed_row, 30, "the killed probe recorded as failed")
        assert row["reason"].startswith("worker_died: worker killed by SIGKILL"), row["reason"]
        assert _reaped(worker)
        db = Store(ex.state_path)
        assert db.probe_budget_used("simulated", BACKEND, 0)[0] >= row["shots"] > 0  # the reservation stands
        db.close()

        # The next scheduled probe runs, in a new worker, and succeeds.
        def next_result():
            text = ex.metrics()
            return text if sample(text, "qpu_probe_epc_ratio", qubits="0") is not None else None

        text = wait_until(next_result, 180, "the next probe's result")
        assert sample(text, "qpu_probe_worker_failures_total", backend=BACKEND, reason="died") == 1
        assert sample(text, "qpu_probe_worker_failures_total", backend=BACKEND, reason="timeout") == 0
        assert sample(text, "qpu_probe_failures_total", backend=BACKEND) == 1
        assert sample(text, "qpu_probe_runs_total", backend=BACKEND) >= 2
        assert not any(lib in _maps(pid) for lib in NATIVE)  # a whole probe later, still none
    finally:
        stop.set()
        scraper.join(15)
    assert scrapes[0] > 20 and failures == []
    assert ex.stop() < 5.0
    assert all(_reaped(k) for k in _children(pid))


# --- the serving process of the default fleet; where, not what ---------------------------------------

SERVE_AND_PROBE = """
import json, sys, time
from qpu_exporter.app import Exporter
from qpu_exporter.config import Config

cfg = Config.model_validate({"state_path": sys.argv[1], "probes": {"start_delay": "1h", "shots_per_probe": 400,
                                                                   "max_length": 60, "max_circuits": 8}})
ex = Exporter(cfg, ("127.0.0.1", 0))
ex.start()
provider = ex.providers[0]
deadline = time.monotonic() + 120
while len(ex.view.copy().calibration) < len(provider.backends()) and time.monotonic() < deadline:
    time.sleep(0.1)
outcomes = ex.probes.probe_backend(provider, "fake_fez", 1)  # the first automatic target: a cz pair
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))
print(json.dumps({"status": [o.status for o in outcomes], "reason": [o.reason for o in outcomes],
                  "run_id": outcomes[0].run_id, "modules": heavy}))
ex.stop()
"""
SDKS = "qiskit,qiskit_aer,qiskit_ibm_runtime,braket,boto3,botocore,statsmodels,pandas"


def test_the_default_fleet_serves_without_quantum_sdks_and_the_worker_computes_what_the_server_did(tmp_path):
    state = tmp_path / "state.db"
    env = {**os.environ, "QPU_EXPORTER_STATE_PATH": str(state)}
    done = subprocess.run([sys.executable, "-c", SERVE_AND_PROBE, str(state), SDKS], capture_output=True, text=True,
                          timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # A small design (the fit may find no decay in it: then the probe fails, for a reason that
    # is not the worker's); what matters is where each part ran and what it computed.
    assert report["status"] in (["ok"], ["failed"]) and not report["reason"][0].startswith("worker_"), report
    assert report["modules"] == []  # polls, design, price, reservation, record: none of the SDKs

    # The record re-runs exactly here, on a thread of this process (as probes ran before the
    # worker): the same circuits (fingerprints) and the same Aer counts.
    from qpu_exporter.config import Config
    from qpu_exporter.providers.factory import build_providers

    store = Store(state)
    origin = float(store.meta("simulation_origin"))
    providers = build_providers(Config.model_validate({}), origin=origin)
    runner = ProbeRunner(providers, store, Config.model_validate({}).probes, isolation="thread", count=False)
    row = store.probe_run(report["run_id"])
    assert len(row["record"]["sequences"]) == row["record"]["design"]["num_circuits"]
    again = runner.rerun(report["run_id"])
    assert again["fingerprints"] == [s["fingerprint"] for s in row["record"]["sequences"]]
    assert again["counts"] == [s["counts"] for s in row["record"]["sequences"]]
    store.close()


# --- the qiskit-free parts of the serving process ---------------------------------------------------

def _bases_of_every_calibration() -> set[tuple[str, ...]]:
    """Every basis basis_gates_of can return: each combination of the gate names it looks at."""
    names = [*ONE_QUBIT_BASIS, *TWO_QUBIT_GATES, "1q_rb"]
    out = set()
    for r in range(len(names) + 1):
        for combo in itertools.combinations(names, r):
            gates = [GateCalibration(g, (0, 1) if g in TWO_QUBIT_GATES else (0,), Measurement(0.01, 0.0), None)
                     for g in combo]
            out.add(basis_gates_of(CalibrationSnapshot("p", "b", 0.0, 0.0, [], gates)))
    return out


def test_the_gate_count_table_is_the_synthesis_and_covers_every_probe_basis():
    from qpu_exporter.rb.circuits import mean_gates_per_clifford

    for (n, basis), counts in TABLE.items():
        assert mean_gates_per_clifford(n, basis) == counts, (n, basis)
    for basis in _bases_of_every_calibration():
        if "sx" not in basis:
            with pytest.raises(ValueError):  # no Cliffords without sx: such a target never probes
                mean_gates_per_clifford(1, basis)
            continue
        assert (1, basis) in TABLE, basis
        if basis[-1] in TWO_QUBIT_GATES:
            assert (2, basis) in TABLE, basis


def test_a_provider_that_cannot_travel_to_a_worker_fails_the_probe_once_without_retries(tmp_path):
    """A provider holding live state that does not pickle is refused as unsupported: one failed
    probe, one reservation, no worker left behind (retrying could only spend more budget)."""
    import threading as _threading

    class Unpicklable(FileJobsProvider):
        def __init__(self, root):
            super().__init__(root)
            self.lock = _threading.Lock()

        def __reduce__(self):
            return object.__reduce__(self)

    root = tmp_path / "jobs"
    root.mkdir()
    provider = Unpicklable(root)
    store = Store(tmp_path / "state.db")
    runner = ProbeRunner([provider], store, _cfg(retries=3))
    runner.register_backend("simulated", BACKEND)
    [out] = runner.probe_backend(provider, BACKEND, targets=[TARGET])
    assert out.status == "failed" and "unsupported" in out.reason and "cannot be sent to a probe worker" in out.reason
    assert out.attempts == 1 and store.probe_budget_used("simulated", BACKEND, 0)[0] == out.shots
    assert list(root.glob("*.json")) == []  # nothing was submitted
    store.close()
