"""Every dashboard query against a real Prometheus scraping the simulated fleet.

The exporter runs a fast simulated fleet (speedup 3600, 1 s polls) and Prometheus (Debian 2.42)
scrapes it every second with the alerting and recording rules loaded. Each dashboard's variables
are resolved through the label-values API (the way Grafana does), Grafana's built-in variables get
fixed windows that hold data, and every panel query is evaluated with /api/v1/query: it must parse
and return at least one finite sample. We poll until that holds (no fixed sleeps) and report the
panels still empty at the deadline.

Panels whose metrics the exporter does not export yet are listed in AWAITING_METRICS: their queries
must still parse, but may be empty. Empty that set once probes and drift metrics land.
"""

from __future__ import annotations

import json
import math
import sys
import urllib.parse
from pathlib import Path

import pytest

from conftest import http_get, wait_until
from test_dashboards import ANNOUNCED_METRICS, JSON_DIR, UIDS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dashboards"))

from qpudash.promql import metric_names  # noqa: E402
from qpudash.queries import panel_queries, substitute, variable_queries, variable_value  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]

# (dashboard uid, panel title) of panels that only use probe/drift metrics, not exported yet.
AWAITING_METRICS: frozenset[tuple[str, str]] = frozenset()
# Recording rules computed from the announced metrics (alerts/rules/drift.yml, probes.yml).
DERIVED_FROM_ANNOUNCED = frozenset({
    "provider_backend:qpu_drift_alarms_active:count", "provider_backend:qpu_drift_alarms:increase1d",
    "provider_backend_qubits:qpu_probe_epc_ratio:median7d", "provider_backend:qpu_probe_age:seconds",
    "provider_backend_gate_qubits:qpu_probe_gate_error:ratio_to_reported",
})

# Two backends with different two-qubit gates (ECR on Eagle, CZ on Heron); the injected job
# failures make the failure-by-class panels non-trivial from the first minute.
FLEET_CONFIG = """
providers:
  - kind: simulated
    backends: [fake_sherbrooke, fake_torino]
    seed: 11
    speedup: 3600
    measurement_interval: 1h   # one new measurement per qubit per wall second
    workload_tags: [chem, finance, ml]
    incidents:
      - {backend: fake_torino, kind: job_failures, factor: 0.5, at: 0s, duration: 30d}
      # After the drift warm-up (10 samples, ~10 s), so the drift panels see a real alarm.
      - {backend: fake_torino, qubit: 3, kind: t1_drop, factor: 0.2, at: 15h, duration: 30d}
schedule:
  calibration_interval: 1s
  jobs_interval: 1s
drift: {warmup: 10}
probes: {start_delay: 0s}
workloads:   # budgets and an objective override, so the workload panels that compare with them have data
  budgets: {chem: {usd_per_day: 100000}, finance: {usd_per_day: 50000}, ml: {usd_per_day: 80000}}
  objectives: {ml: {queue_seconds: 3h, job_success: 0.98}}
state_path: STATE_PATH
"""
# Grafana built-ins: windows that hold data after ~15 s of 1 s scrapes. $__range covers the whole run.
BUILTINS = {
    "__rate_interval": "10s", "__interval": "2s", "__interval_ms": "2000",
    "__range": "10m", "__range_s": "600", "__range_ms": "600000",
}
# How many qubits the qubit dashboard is evaluated with (exercises the multi-value regex).
QUBITS_SELECTED = 3
DEADLINE_S = 70


def _api(port: int, path: str, params: list[tuple[str, str]]) -> tuple[int, dict]:
    code, body, _ = http_get(f"http://127.0.0.1:{port}{path}?{urllib.parse.urlencode(params)}", timeout=10)
    return code, json.loads(body)


def _resolve_variables(port: int, board: dict) -> dict[str, str]:
    values = dict(BUILTINS)
    for variable, selector, label in variable_queries(board):
        params = [("match[]", substitute(selector, values))] if selector else []
        code, body = _api(port, f"/api/v1/label/{label}/values", params)
        assert code == 200, f"{board['uid']} variable {variable['name']}: {body}"
        found = body["data"]
        if not found:
            return {}
        if variable["name"] == "qubit":
            values["qubit"] = variable_value({**variable, "includeAll": False}, found[:QUBITS_SELECTED])
        else:
            values[variable["name"]] = variable_value(variable, found)
    return values


def _has_finite_sample(result: dict) -> bool:
    kind, data = result["resultType"], result["result"]
    if kind == "scalar":
        return math.isfinite(float(data[1]))
    return any(math.isfinite(float(series["value"][1])) for series in data)


def _evaluate(port: int, boards: dict[str, dict]) -> tuple[dict[str, str], list[str]]:
    """(panel key -> problem) for queries that fail or are empty, and notes on awaited panels with data."""
    problems, notes = {}, []
    for board in boards.values():
        values = _resolve_variables(port, board)
        if not values:
            problems[board["uid"]] = "a variable has no values yet"
            continue
        for q in panel_queries(board):
            expr = substitute(q.expr, values)
            code, body = _api(port, "/api/v1/query", [("query", expr)])
            key = f"{q.dashboard} / {q.panel} / {q.ref_id}"
            if code != 200 or body.get("status") != "success":
                problems[key] = f"HTTP {code}: {body.get('error')} in {expr}"
            elif (q.dashboard, q.panel) in AWAITING_METRICS:
                if _has_finite_sample(body["data"]):
                    notes.append(key)
            elif not _has_finite_sample(body["data"]):
                problems[key] = f"no data: {expr}"
    return problems, notes


# Boards on the instrumentation library's metrics, which the exporter never serves: they are
# evaluated against pushed data in tests/test_instrument_prometheus.py.
CLIENT_BOARDS = frozenset({"qpu-runs"})


def _boards() -> dict[str, dict]:
    return {uid: json.loads((JSON_DIR / name).read_text(encoding="utf-8"))
            for name, uid in UIDS.items() if uid not in CLIENT_BOARDS}


def test_awaiting_list_only_names_panels_on_announced_metrics():
    """The allowlist may not hide a broken panel: each entry exists and uses only announced metrics."""
    boards = _boards()
    for uid, title in AWAITING_METRICS:
        queries = [q for q in panel_queries(boards[uid]) if q.panel == title]
        assert queries, f"{uid} has no panel {title!r}"
        for q in queries:
            names = metric_names(q.expr)
            pending = names & (ANNOUNCED_METRICS | DERIVED_FROM_ANNOUNCED)
            assert pending, f"{uid} / {title}: uses no announced metric, so it must return data: {q.expr}"


def test_every_panel_query_returns_data(start_exporter, start_prometheus):
    rules = [str(p) for p in sorted((ROOT / "alerts" / "rules").glob("*.yml"))]
    exporter = start_exporter(FLEET_CONFIG)
    prom = start_prometheus([f"127.0.0.1:{exporter.port}"], rule_files=rules)
    boards = _boards()

    last: dict = {}

    def all_panels_have_data() -> bool:
        last["problems"], last["notes"] = _evaluate(prom.port, boards)
        return not last["problems"]

    try:
        wait_until(all_panels_have_data, DEADLINE_S, "every dashboard panel to return data", interval=1.0)
    except AssertionError:
        problems = last.get("problems", {"": "never evaluated"})
        raise AssertionError(f"panels without data after {DEADLINE_S}s:\n" + "\n".join(
            f"  {k}: {v}" for k, v in sorted(problems.items()))) from None
    if last["notes"]:
        print("panels in AWAITING_METRICS that now return data (remove them from the list):", *last["notes"], sep="\n  ")
