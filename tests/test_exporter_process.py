"""The real exporter process over HTTP: endpoints, promtool, restart, shutdown."""

from __future__ import annotations

import gzip
import sqlite3
import subprocess

import pytest

from conftest import parse_samples, require_binary, sample, wait_until

FAST = """
providers:
  - kind: simulated
    backends: [fake_fez, fake_sherbrooke]
    seed: 11
    speedup: 7200
schedule:
  calibration_interval: 1s
  jobs_interval: 0.5s
probes: {enabled: false}   # not under test here; saves CPU
state_path: STATE_PATH
"""


def _sum(text: str, name: str) -> float:
    return sum(v for n, _, v in parse_samples(text) if n == name)


def test_endpoints_landing_and_promtool(start_exporter):
    ex = start_exporter()  # no config: the embedded default fleet
    code, body, headers = ex.get("/")
    page = body.decode()
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    for backend in ("fake_sherbrooke", "fake_fez", "fake_boston"):
        assert backend in page
    assert 'href="/metrics"' in page and "calibration: ok" in page
    assert ex.get("/-/healthy")[0] == 200
    assert ex.get("/-/ready")[0] == 200
    assert ex.get("/nope")[0] == 404

    text = ex.metrics()
    assert sample(text, "qpu_exporter_build_info") == 1
    for b, proc in (("fake_sherbrooke", "Eagle r3"), ("fake_fez", "Heron r2"), ("fake_boston", "Heron r3")):
        assert sample(text, "qpu_backend_info", backend=b, processor=proc, provider="simulated") == 1
        assert sample(text, "qpu_exporter_collector_success", backend=b, collector="calibration") == 1
    t1 = [v for n, lab, v in parse_samples(text) if n == "qpu_qubit_t1_seconds"]
    assert len(t1) > 400 and all(1e-6 < v < 2e-3 for v in t1)

    promtool = require_binary("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check

    # gzip is the same exposition (the live process metrics differ between two scrapes).
    code, zipped, headers = ex.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip"
    unzipped = gzip.decompress(zipped).decode()
    qpu = [line for line in unzipped.splitlines() if line.startswith("qpu_backend_info")]
    assert qpu and qpu == [line for line in text.splitlines() if line.startswith("qpu_backend_info")]
    assert "process_resident_memory_bytes" in unzipped


def test_sigterm_stops_within_5s_and_state_survives_restart(start_exporter, tmp_path):
    ex = start_exporter(FAST)
    wait_until(lambda: _sum(ex.metrics(), "qpu_jobs_total") >= 20, 60, "jobs to be counted")
    before = ex.metrics()
    assert ex.stop() < 5.0
    assert "stopped" in ex.log()

    db = sqlite3.connect(ex.state_path)
    history = db.execute("SELECT count(*) FROM calibration").fetchone()[0]
    jobs_per_backend = dict(db.execute("SELECT backend, count(*) FROM jobs GROUP BY backend").fetchall())
    db.close()
    assert history > 1000
    for backend, n in jobs_per_backend.items():
        # Counted exactly once each: the counter equals the recorded job rows.
        assert sample(before, "qpu_jobs_total", backend=backend) <= n

    again = start_exporter(FAST, state_path=ex.state_path)
    first = again.metrics()  # the very first scrape after the restart
    for name in ("qpu_jobs_total", "qpu_job_usage_seconds_total", "qpu_cost_usd_total", "qpu_jobs_failed_total"):
        for backend in ("fake_fez", "fake_sherbrooke"):
            assert sample(first, name, backend=backend) >= sample(before, name, backend=backend), name
    # Last good calibration is served at once, before any new poll could have run.
    assert sample(first, "qpu_qubit_t1_seconds", backend="fake_fez", qubit="0") is not None

    wait_until(lambda: _sum(again.metrics(), "qpu_jobs_total") > _sum(before, "qpu_jobs_total") + 10, 60,
               "more jobs after the restart")
    again.stop()
    db = sqlite3.connect(ex.state_path)
    assert db.execute("SELECT count(*) FROM calibration").fetchone()[0] >= history
    rows = dict(db.execute("SELECT backend, count(*) FROM jobs GROUP BY backend").fetchall())
    counted = dict(
        (dict(__import__("json").loads(labels))["backend"], value)
        for labels, value in db.execute("SELECT labels, value FROM counters WHERE name='qpu_jobs_total'")
    )
    db.close()
    assert counted == {b: float(n) for b, n in rows.items()}, "a job was counted twice or not at all"


def test_unimplemented_providers_fail_as_collectors_while_simulated_serves(start_exporter):
    ex = start_exporter("""
providers:
  - kind: simulated
    backends: [fake_fez]
  - kind: ibm
    instance: "crn:v1:bluemix:public:quantum-computing:us-east:a/x::"
  - kind: braket
    region: us-east-1
state_path: STATE_PATH
""")
    text = ex.metrics()
    assert sample(text, "qpu_backend_up", provider="simulated", backend="fake_fez") is not None
    for kind in ("ibm", "braket"):
        assert sample(text, "qpu_exporter_collector_success", provider=kind, collector="discovery") == 0
        assert (sample(text, "qpu_exporter_collector_errors_total", provider=kind, collector="discovery") or 0) >= 1
    assert "poll failed" in ex.log()


def test_corrupt_state_file_refuses_to_start_with_one_line(tmp_path):
    from conftest import run_cli

    bad = tmp_path / "state.db"
    bad.write_bytes(b"this is not a database" * 100)
    result = run_cli("serve", "--web.listen-address", "127.0.0.1:0", env={"QPU_EXPORTER_STATE_PATH": str(bad)},
                     cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "state file" in lines[0] and "move it aside" in lines[0], result.stderr
    assert bad.read_bytes().startswith(b"this is not a database"), "the broken file must be left for recovery"


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_one_structured_log_line_per_poll(start_exporter, fmt):
    import json

    ex = start_exporter(FAST, extra_args=["--log.format", fmt])
    wait_until(lambda: ex.log().count("poll succeeded") >= 6, 30, "poll log lines")
    lines = [line for line in ex.log().splitlines() if "poll succeeded" in line]
    for line in lines:
        if fmt == "json":
            rec = json.loads(line)
            assert rec["level"] == "info" and rec["collector"] in ("discovery", "status", "calibration", "jobs")
        else:
            assert line.startswith("ts=") and " level=info " in line and " collector=" in line


def test_bad_listen_address_or_telemetry_path_is_one_line_exit_2(tmp_path):
    from conftest import run_cli

    for args, expected in ((["--web.listen-address", "::1:9961"], "--web.listen-address: invalid listen address '::1:9961': put an IPv6 address in brackets"),
                           (["--web.listen-address", "127.0.0.1:99999"], "--web.listen-address: invalid listen address"),
                           (["--web.telemetry-path", "metrics"], "--web.telemetry-path: invalid telemetry path"),
                           (["--log.level", "verbose"], "argument --log.level: invalid choice")):
        r = run_cli("serve", *args, cwd=tmp_path)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and expected in r.stderr, (args, r.stderr)
