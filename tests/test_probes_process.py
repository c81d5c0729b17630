"""Probes in a real exporter process, and the probe/check commands."""

from __future__ import annotations

import sqlite3

from conftest import parse_samples, run_cli, sample, wait_until

EXPORTER_CONFIG = """
providers:
  - kind: simulated
    backends: [fake_sherbrooke, fake_torino]
    seed: 5
    speedup: 3600
    dynamics: calm
schedule:
  calibration_interval: 2s
  jobs_interval: 2s
  probe_interval: 1h
probes:
  start_delay: 0s
  shots_per_probe: 1500
  max_length: 1500
  targets:
    - {backend: fake_sherbrooke, qubits: [0]}
    - {backend: fake_torino, qubits: [0, 1], interleaved: cz}
  budget: {shots_per_day: 1000000, usd_per_day: 1000, global_usd_per_day: 1000}
state_path: STATE_PATH
"""


def test_exporter_runs_probes_on_the_simulated_fleet(start_exporter):
    ex = start_exporter(EXPORTER_CONFIG)

    def probed():
        text = ex.metrics()
        ok = (sample(text, "qpu_probe_epc_ratio", backend="fake_sherbrooke", qubits="0")
              and sample(text, "qpu_probe_gate_error_ratio", backend="fake_torino", gate="cz", qubits="0_1") is not None)
        return text if ok else None

    # Each probe starts its own worker process (imports and Clifford synthesis included).
    text = wait_until(probed, 180, "probe metrics from both backends", interval=0.5)
    assert 1e-5 < sample(text, "qpu_probe_epc_ratio", backend="fake_sherbrooke", qubits="0") < 5e-3
    assert 0 < sample(text, "qpu_probe_epc_stderr_ratio", backend="fake_sherbrooke", qubits="0") < 1e-3
    for b in ("fake_sherbrooke", "fake_torino"):
        assert sample(text, "qpu_probe_runs_total", backend=b) >= 1
        assert sample(text, "qpu_probe_shots_total", backend=b) > 0
        assert sample(text, "qpu_probe_failures_total", backend=b) is not None
        assert sample(text, "qpu_probe_last_success_timestamp_seconds", backend=b) > 1e9
        assert 0 < sample(text, "qpu_budget_remaining_ratio", backend=b) < 1
        for reason in ("budget", "backend_down", "busy"):
            assert sample(text, "qpu_probe_skipped_total", backend=b, reason=reason) is not None
    # The pair probe carries the Bell circuit: agreement to ideal and between backends.
    assert 0.5 < sample(text, "qpu_probe_hellinger_fidelity_ratio", backend="fake_torino") <= 1
    # Probe EPC is a drift series too (one sample per probe).
    series = {lab.get("series") for n, lab, _ in parse_samples(text) if n.startswith("qpu_drift")}
    assert ex.stop() < 5.0
    db = sqlite3.connect(ex.state_path)
    runs = db.execute("SELECT count(*), sum(shots) FROM probe_runs").fetchone()
    ledger = db.execute("SELECT sum(shots) FROM probe_ledger").fetchone()[0]
    db.close()
    assert runs[0] >= 2 and ledger >= runs[1]  # every probe shot was reserved first
    del series


CLI_CONFIG = """
providers:
  - kind: simulated
    backends: [fake_torino]
    seed: 5
    dynamics: calm
    incidents:
      - {backend: fake_torino, qubit: 0, kind: gate_error_rise, factor: 20, at: 0s, duration: 1d}
probes:
  shots_per_probe: 800
  max_length: 300
state_path: STATE
"""


def test_check_exit_codes(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CLI_CONFIG.replace("STATE", str(tmp_path / "s.db")))
    env = {"QPU_EXPORTER_STATE_PATH": ""}
    ok = run_cli("check", "--backend", "fake_torino", "--qubits", "0", "--max-epc", "0.5", "--config", str(cfg), env=env)
    assert ok.returncode == 0, ok.stderr
    assert "epc" in ok.stdout.splitlines()[0] and "ok" in ok.stdout
    epc = float(ok.stdout.splitlines()[1].split()[3])
    bad = run_cli("check", "--backend", "fake_torino", "--qubits", "0", "--max-epc", f"{epc / 10:g}", "--config", str(cfg),
                  env=env)
    assert bad.returncode == 1 and "FAIL" in bad.stderr, bad.stderr
    for args in (["--backend", "nope", "--max-epc", "0.1"], ["--backend", "fake_torino", "--qubits", "a", "--max-epc", "1"],
                 ["--backend", "fake_torino", "--max-epc", "-1"], ["--backend", "fake_torino"]):
        r = run_cli("check", *args, "--config", str(cfg), env=env)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (args, r.stderr)
    # Both CLI probes used the ledger in the state file.
    db = sqlite3.connect(tmp_path / "s.db")
    assert db.execute("SELECT count(*) FROM probe_ledger").fetchone()[0] == 2
    db.close()
