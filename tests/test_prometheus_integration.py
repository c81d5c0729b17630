"""The real Prometheus scrapes the real exporter; values come back through the query API."""

from __future__ import annotations

from conftest import wait_until

CONFIG = """
providers:
  - kind: simulated
    backends: [fake_fez]
    seed: 3
    speedup: 60
    incidents:
      - {backend: fake_fez, qubit: 3, kind: t1_drop, factor: 0.2, at: 480s, duration: 1h}
schedule:
  calibration_interval: 1s
  jobs_interval: 1s
state_path: STATE_PATH
"""


def test_prometheus_reads_t1_and_sees_the_incident(start_exporter, start_prometheus):
    ex = start_exporter(CONFIG)
    prom = start_prometheus([f"127.0.0.1:{ex.port}"])

    def t1(qubit: str):
        res = prom.query(f'qpu_qubit_t1_seconds{{provider="simulated",backend="fake_fez",qubit="{qubit}"}}')
        return float(res[0]["value"][1]) if res else None

    wait_until(lambda: prom.query('up{job="qpu-exporter"} == 1'), 30, "scrape target up")
    first3 = wait_until(lambda: t1("3"), 30, "T1 of qubit 3 in Prometheus")
    first4 = t1("4")
    assert 1e-5 < first3 < 1e-3
    # The incident starts 8 s after the exporter (480 simulated seconds at speedup 60).
    dropped = wait_until(lambda: (v := t1("3")) is not None and v < 0.5 * first3 and v, 40, "T1 drop of qubit 3")
    assert dropped / first3 < 0.25
    assert 0.5 < t1("4") / first4 < 2.0
    count = prom.query('count(qpu_qubit_t1_seconds{backend="fake_fez"})')
    assert int(count[0]["value"][1]) >= 150
