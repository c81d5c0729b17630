"""Per-workload SLOs end to end, with real processes.

1. The simulated fleet with workloads -> Prometheus with the shipped rules (fast override) ->
   Alertmanager with the shipped routing -> a webhook: one workload's cost page and error-budget
   ticket arrive grouped by workload, at the team's own receiver, while workloads within their
   objectives stay silent.
2. Conservation across scrapes and a SIGKILL restart: per backend, the workload counters sum to the
   backend counters in every scrape; nothing goes backwards; the kept workload values survive.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler

import pytest

from conftest import REPO, parse_samples, wait_until
from test_alerts_e2e import alerting_stack, prometheus_args

pytestmark = pytest.mark.integration

E2E_CONFIG = """
providers:
  - kind: simulated
    backends: [fake_fez, fake_sherbrooke]
    seed: 5
    speedup: 3600
    dynamics: calm
    workload_tags: [chem, finance]
    incidents:   # ~30 % of every workload's jobs fail, on both backends
      - {backend: fake_fez, kind: job_failures, factor: 0.3, at: 0s, duration: 30d}
      - {backend: fake_sherbrooke, kind: job_failures, factor: 0.3, at: 0s, duration: 30d}
schedule: {calibration_interval: 1s, jobs_interval: 1s}
probes: {enabled: false}
workloads:
  budgets: {chem: {usd_per_day: 100}}   # spent within seconds at 3600x: the 90 % page
  objectives:
    chem: {job_success: 0.85}      # 30 % failing = 2x its 15 % budget: the 1x ticket, not the 3x/6x ones
    finance: {job_success: 0.5}    # 30 % is within a 50 % budget: silent
    untagged: {job_success: 0.5}
state_path: STATE_PATH
"""


class _Hook(BaseHTTPRequestHandler):
    payloads: list = []

    def do_POST(self):  # noqa: N802
        self.payloads.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_workload_page_and_ticket_reach_the_team_grouped_by_workload(start_exporter, start_prometheus, tmp_path):
    _Hook.payloads = []
    with alerting_stack(tmp_path, _Hook) as (rule_files, am_address):
        ex = start_exporter(E2E_CONFIG)
        start_prometheus([f"127.0.0.1:{ex.port}"], rule_files=rule_files, alertmanager=am_address,
                         extra_args=prometheus_args)

        def firing(payload, name):
            return [a for a in payload["alerts"] if a["status"] == "firing" and a["labels"]["alertname"] == name]

        def one_notification_with_both():
            for path, payload in _Hook.payloads:
                if path == "/team-chem" and firing(payload, "QPUWorkloadCostBudgetBurn") \
                        and firing(payload, "QPUWorkloadErrorBudgetBurn"):
                    return payload
            return None

        payload = wait_until(one_notification_with_both, 90, "chem's cost page and error-budget ticket in one notification")
        assert payload["receiver"] == "team-chem" and payload["groupLabels"] == {"workload": "chem"}
        assert {a["labels"]["workload"] for a in payload["alerts"]} == {"chem"}
        (page,) = [a for a in firing(payload, "QPUWorkloadCostBudgetBurn") if a["labels"]["severity"] == "page"]
        assert page["labels"]["budget_percent"] == "90"
        assert page["annotations"]["runbook_url"].endswith("alerts/runbooks/QPUWorkloadCostBudgetBurn.md")
        tickets = firing(payload, "QPUWorkloadErrorBudgetBurn")
        assert tickets and {a["labels"]["severity"] for a in tickets} == {"ticket"}
        assert {a["labels"]["long_window"] for a in tickets} <= {"10m", "5m"}
        assert (REPO / "alerts/runbooks/QPUWorkloadErrorBudgetBurn.md").exists()
        # Every per-workload notification is grouped by workload alone; workloads within their
        # objectives never raised an error-budget alert.
        for path, p in _Hook.payloads:
            if any(a["labels"].get("concern") == "workloads" for a in p["alerts"]):
                assert set(p["groupLabels"]) == {"workload"}, p["groupLabels"]
        burned = {a["labels"]["workload"] for _, p in _Hook.payloads for a in firing(p, "QPUWorkloadErrorBudgetBurn")}
        assert burned == {"chem"}, burned


# --- conservation across scrapes and SIGKILL restarts ---------------------------------------------

CONSERVATION_CONFIG = """
providers:
  - kind: simulated
    backends: [fake_fez, fake_sherbrooke]
    seed: 8
    speedup: 3600          # a simulated hour per second: jobs finish constantly
    dynamics: calm
    workload_tags: [chem, finance, ml]
schedule: {calibration_interval: 1s, jobs_interval: 0.3s}
probes: {enabled: false}
workloads: {max: 2}      # one of the three teams overflows to "other"
state_path: STATE_PATH
"""
TWINS = {"qpu_jobs_total": "qpu_workload_jobs_total", "qpu_jobs_failed_total": "qpu_workload_jobs_failed_total",
         "qpu_job_usage_seconds_total": "qpu_workload_usage_seconds_total",
         "qpu_cost_usd_total": "qpu_workload_cost_usd_total"}


def _scrape(ex) -> dict[tuple[str, tuple], float]:
    """Every counter sample of one scrape; asserts conservation within it."""
    wanted = ("qpu_jobs_", "qpu_job_", "qpu_cost_usd_total", "qpu_workload_")
    samples = parse_samples("\n".join(line for line in ex.metrics().splitlines() if line.startswith(wanted)))
    counters = {(n, tuple(sorted(lab.items()))): v for n, lab, v in samples
                if n in TWINS or n in TWINS.values() or n == "qpu_workload_queue_duration_seconds_count"
                or n == "qpu_job_queue_duration_seconds_count"}
    sums: dict = defaultdict(float)
    for (name, labels), v in counters.items():
        d = dict(labels)
        sums[(name, d["provider"], d["backend"])] += v
    backends = {(p, b) for _, p, b in sums}
    for p, b in backends:
        for name, twin in (*TWINS.items(), ("qpu_job_queue_duration_seconds_count", "qpu_workload_queue_duration_seconds_count")):
            assert sums[(twin, p, b)] == pytest.approx(sums[(name, p, b)], rel=1e-9, abs=1e-9), (name, b)
    return counters


def _never_backwards(before: dict, after: dict) -> None:
    for key, value in before.items():
        assert key in after, f"series disappeared: {key}"
        assert after[key] >= value - 1e-9, f"went backwards: {key} {value} -> {after[key]}"


def _workloads(counters: dict) -> set[str]:
    return {dict(labels)["workload"] for name, labels in counters if name == "qpu_workload_jobs_total"}


def test_conservation_across_scrapes_and_a_sigkill_restart(start_exporter, tmp_path):
    rng = random.Random(16)
    ex = start_exporter(CONSERVATION_CONFIG)
    wait_until(lambda: {"untagged", "other"} <= _workloads(_scrape(ex)), 60, "jobs of every kind, the overflow included")
    previous = _scrape(ex)
    kept = _workloads(previous) - {"untagged", "other"}
    assert len(kept) == 2 and kept < {"chem", "finance", "ml"}
    for cycle in range(1):  # crash cycles: test_crash_safety.py runs fifty of them without workloads
        for _ in range(4):  # several scrapes while polls land
            time.sleep(0.1 + rng.random() * 0.3)
            current = _scrape(ex)
            _never_backwards(previous, current)
            previous = current
        time.sleep(rng.random() * 0.5)  # a random moment, often mid-poll
        ex.proc.kill()
        ex.proc.wait(timeout=10)
        ex = start_exporter(CONSERVATION_CONFIG, state_path=ex.state_path)
        current = _scrape(ex)
        _never_backwards(previous, current)
        wait_until(lambda: sum(v for (n, _), v in _scrape(ex).items() if n == "qpu_jobs_total")
                   > sum(v for (n, _), v in current.items() if n == "qpu_jobs_total"), 30, f"new jobs after restart {cycle}")
        current = _scrape(ex)
        assert _workloads(current) - {"untagged", "other"} == kept, "a kept workload changed after a restart"
        previous = current
    ex.stop()
    # Each recorded job is counted once, under the workload stored with it (the persisted counters).
    db = sqlite3.connect(ex.state_path)
    per_workload = dict(db.execute("SELECT workload, count(*) FROM jobs GROUP BY workload"))
    counted: dict = defaultdict(float)
    for labels, v in db.execute("SELECT labels, value FROM counters WHERE name='qpu_workload_jobs_total'"):
        counted[dict(json.loads(labels))["workload"]] += v
    kept_rows = [r[0] for r in db.execute("SELECT name FROM workloads ORDER BY rowid")]
    db.close()
    assert per_workload == pytest.approx(dict(counted)) and sum(per_workload.values()) > 0
    assert set(kept_rows) == kept
