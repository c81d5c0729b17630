"""Alert quality against the simulator's ground truth (docs/alerts-quality.md): the ground-truth
log, offline history through the serve pipeline, the rule manager's state machine, scoring, and
the production rules replayed in the real Prometheus over generated history."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, http_get, require_binary, wait_until
from qpu_exporter.alertreplay import Episode, Rule, episodes_from_points, load_rules, read_by_alerts, replay
from qpu_exporter.alertscore import derived_events, explain, score
from qpu_exporter.cli import main as cli_main
from qpu_exporter.config import Config, load_config
from qpu_exporter.providers.simulated.config import SimulatedProviderConfig
from qpu_exporter.providers.simulated.provider import JOB_FAIL_P, SimulatedProvider
from qpu_exporter.providers.simulated.truth import TrueEvent, read_jsonl
from qpu_exporter.simhistory import HistoryError, HistoryPlan, OpenMetricsWriter, generate, parse_selector

ORIGIN = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAY = 86400.0
PRODUCTION_RULES = sorted((REPO / "alerts" / "rules").glob("*.yml"))


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def provider(backends=("fake_lagos",), incidents=(), dynamics="realistic", speedup=1.0, seed=7):
    cfg = SimulatedProviderConfig(kind="simulated", backends=list(backends), seed=seed, speedup=speedup,
                                  dynamics=dynamics, incidents=list(incidents))
    clock = Clock(ORIGIN)
    return SimulatedProvider(cfg, origin=ORIGIN, clock=clock, record_truth=True), clock


# --- ground truth -----------------------------------------------------------------------------
def test_an_injected_incident_is_recorded_with_its_wall_clock_window_and_size():
    p, _ = provider(incidents=[{"backend": "fake_lagos", "kind": "t1_drop", "qubit": 2, "factor": 0.25,
                                "at": "2h", "duration": "30m"}], speedup=60.0)
    (ev,) = p.truth.events()
    assert (ev.kind, ev.backend, ev.qubit, ev.size, ev.source) == ("t1_drop", "fake_lagos", 2, 0.25, "injected")
    # 2 simulated hours at speedup 60 are 2 wall-clock minutes after the origin.
    assert (ev.start, ev.end) == (ORIGIN + 120, ORIGIN + 150)


def test_recorded_events_are_what_the_provider_shows():
    """Twenty simulated days of one backend: the recorded outages, TLS dips and failure bursts
    are where a second, identical provider shows them."""
    p, clock = provider(seed=23)
    clock.t = ORIGIN + 20 * DAY
    p.status("fake_lagos")
    events = p.truth.events(until_sim=20 * DAY)
    assert {"tls_dip", "gate_creep", "queue_swing", "outage", "failure_burst"} <= {e.kind for e in events}
    q, qclock = provider(seed=23)
    q.truth = None
    dip = next(e for e in events if e.kind == "tls_dip" and e.end - e.start > 3600)
    checks = [(e.start + 1, "down", e) for e in events if e.kind == "outage"]
    checks += [((e.start + e.end) / 2, "down", e) for e in events if e.kind == "outage"]
    checks += [(e.end + 1, "up", e) for e in events if e.kind == "outage"]
    checks += [(dip.start + 1, "dip", dip)]
    for t, what, e in sorted(checks, key=lambda c: c[0]):  # the simulation only moves forward
        qclock.t = t
        status = q.status("fake_lagos")
        if what == "dip":  # the true T1 of the qubit is scaled by the dip's size
            assert q._backends["fake_lagos"].tls[e.qubit] == pytest.approx(e.size)
        else:
            assert status.operational is (what == "up"), (e, t)
    # Jobs created in a failure burst fail at its rate; the others at the healthy rate.
    (burst,) = [e for e in events if e.kind == "failure_burst"]
    qclock.t = burst.end + DAY
    jobs = q.jobs("fake_lagos", None)
    created = np.array([j.created_at for j in jobs])
    failed = np.array([j.status == "failed" for j in jobs])
    in_burst = (created >= burst.start) & (created < burst.end)
    assert JOB_FAIL_P < 0.01 and failed[~in_burst].mean() < 0.01
    assert in_burst.sum() >= 10 and abs(failed[in_burst].mean() - burst.size) < 0.25


# --- the rule manager's state machine and scoring (pure) ----------------------------------------------
def _rule(for_seconds: float) -> Rule:
    return Rule("g", 60.0, "A", "x", True, for_seconds, (("severity", "page"),))


def test_state_machine_pending_firing_resolved_and_dropped():
    times = [float(t) for t in range(0, 1200, 60)]
    series = {
        (("backend", "b1"),): [(t, 1.0) for t in times if 120 <= t < 600],  # 8 evaluations: fires after 5m
        (("backend", "b2"),): [(t, 1.0) for t in times if 120 <= t < 300],  # 3 evaluations: pending, dropped
    }
    eps = {e.label["backend"]: e for e in episodes_from_points(_rule(300), series, times)}
    assert (eps["b1"].active_at, eps["b1"].fired_at, eps["b1"].resolved_at) == (120, 420, 600)
    assert (eps["b2"].active_at, eps["b2"].fired_at, eps["b2"].resolved_at) == (120, None, 300)
    assert eps["b1"].severity == "page" and eps["b1"].label["alertname"] == "A"
    (zero,) = episodes_from_points(_rule(0), {(): [(60.0, 1.0)]}, times)
    assert zero.fired_at == 60.0  # for: 0 fires at the first evaluation
    (ongoing,) = episodes_from_points(_rule(0), {(): [(t, 1.0) for t in times[-3:]]}, times)
    assert ongoing.resolved_at is None
    # keep_firing_for: a firing alert outlives a gap shorter than it; a pending one does not.
    kept = Rule("g", 60.0, "A", "x", True, 120.0, (), keep_firing_for=300.0)
    gap = {(): [(t, 1.0) for t in times if 60 <= t <= 240 or 420 <= t <= 480]}  # 3-minute gap at 300-360
    (one,) = episodes_from_points(kept, gap, times)
    assert (one.active_at, one.fired_at, one.resolved_at) == (60, 180, 540 + 300)
    (short,) = episodes_from_points(kept, {(): [(60.0, 1.0), (120.0, 1.0)]}, times)
    assert (short.fired_at, short.resolved_at) == (None, 180)


def _episode(alert: str, fired: float, **labels) -> Episode:
    merged = tuple(sorted({**labels, "alertname": alert, "severity": "ticket"}.items()))
    return Episode(alert, merged, fired, fired, fired + 600, 0.0)


def test_scoring_matches_events_by_backend_qubit_and_time():
    dip = TrueEvent("t1_drop", "b", start=1000.0, end=1000.0 + 7 * 3600, size=0.2, qubit=3, source="injected")
    episodes = [
        _episode("QPUQubitCoherenceDrift", 1000.0 + 3600, provider="simulated", backend="b", qubit="3"),  # detects it
        _episode("QPUQubitCoherenceDrift", 1000.0 + 3600, provider="simulated", backend="b", qubit="4"),  # other qubit
        _episode("QPUQubitCoherenceDrift", 1000.0 + 2 * 86400, provider="simulated", backend="b", qubit="3"),  # too late
        _episode("QPUGateErrorDrift", 1000.0 + 600, provider="simulated", backend="b", gate="cx", qubits="3_5"),
    ]
    rows = score(episodes, [dip], 0.0, 10 * 86400.0)
    coherence = rows[("QPUQubitCoherenceDrift", "ticket")]
    assert (coherence.firing, coherence.explained, coherence.precision) == (3, 1, 1 / 3)
    assert (coherence.events, coherence.detected, coherence.ttd) == (1, 1, [3600.0])
    assert rows[("QPUGateErrorDrift", "ticket")].explained == 1  # T1 sets the coherence limit of its gates
    assert explain(episodes[0], [dip]) == [dip] and explain(episodes[1], [dip]) == []


def test_derived_and_window_explanations():
    deaths = [TrueEvent("coupler_death", "b", 0.0, 100.0, 1.0, qubits="1_2"),
              TrueEvent("coupler_death", "b", 50.0, 200.0, 1.0, qubits="3_4"),
              TrueEvent("coupler_death", "b", 300.0, 400.0, 1.0, qubits="5_6")]
    (two,) = derived_events(deaths)  # only the first two overlap
    assert (two.kind, two.start, two.end, two.size) == ("couplers_dead", 50.0, 100.0, 2.0)
    burst = TrueEvent("failure_burst", "b", 0.0, 3600.0, 0.4)
    later = 2 * 86400.0  # a burn-rate episode two days after the burst
    for window, explained in (("3d", True), ("1d", False)):
        ep = _episode("QPUJobErrorBudgetBurn", later, provider="simulated", backend="b", long_window=window)
        assert bool(explain(ep, [burst])) is explained, window


# --- offline history --------------------------------------------------------------------------------
def test_history_plan_refuses_what_it_cannot_simulate():
    with pytest.raises(HistoryError, match=r"providers\[0\]: kind ibm"):
        HistoryPlan(Config.model_validate({"providers": [{"kind": "ibm"}]}), start=ORIGIN, duration=60)
    with pytest.raises(ValueError):
        parse_selector('up{job=qpu}')
    sel = parse_selector('qpu_gate_operational{qubits=~"[0-9]+_[0-9]+",gate!="x"}')
    assert sel.matches("qpu_gate_operational", {"qubits": "3_4", "gate": "cx"})
    assert not sel.matches("qpu_gate_operational", {"qubits": "3", "gate": "cx"})
    assert not sel.matches("qpu_gate_operational", {"qubits": "13_4x", "gate": "cx"})  # anchored
    assert not sel.matches("qpu_gate_error_ratio", {"qubits": "3_4", "gate": "cx"})


def test_simulate_history_cli_writes_openmetrics_and_events(tmp_path, capsys):
    """In-process (the console script is the same main): two interpreter start-ups saved."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("providers: [{kind: simulated, backends: [fake_lagos], speedup: 60,"
                   " incidents: [{backend: fake_lagos, kind: offline, at: 2h, duration: 1h}]}]\n")
    out, events = tmp_path / "h.om", tmp_path / "e.jsonl"
    code = cli_main(["simulate-history", "--config", str(cfg), "--duration", "5m", "--start", "2026-01-01T00:00:00Z",
                     "--scrape-interval", "30s", "--select", "qpu_backend_up", "--out", str(out), "--events", str(events)])
    assert code == 0, capsys.readouterr().err
    lines = out.read_text().splitlines()
    assert lines[-1] == "# EOF"
    ups = [ln for ln in lines if ln.startswith("qpu_backend_up{")]
    assert len(ups) == 11 and all('job="qpu-exporter"' in ln for ln in ups)
    # The outage starts 2 simulated hours (2 wall minutes) in and lasts one wall minute.
    values = {float(ln.split()[-1]) - ORIGIN: float(ln.split()[-2]) for ln in ups}
    assert [t for t, v in sorted(values.items()) if v == 0] == [120.0, 150.0]
    (ev,) = [e for e in read_jsonl(events) if e.source == "injected"]
    assert (ev.kind, ev.start, ev.end) == ("offline", ORIGIN + 120, ORIGIN + 180)
    capsys.readouterr()
    code = cli_main(["simulate-history", "--duration", "5m", "--scrape-interval", "6m"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "scrape interval" in err, err


# --- the production rules in the real Prometheus ------------------------------------------------------------
def _rule_selectors(rules):
    """The exporter series the rules read, found by the dashboards' PromQL scanner."""
    sys.path.insert(0, str(REPO / "dashboards"))
    from qpudash.promql import selectors as promql_selectors

    from qpu_exporter.simhistory import Selector

    return tuple({Selector(s.metric, tuple(s.matchers)) for r in rules for s in promql_selectors(r.expr)
                  if s.metric and ":" not in s.metric and s.metric != "up"})


def _replay(plan: HistoryPlan, rules, tmp_path: Path):
    writer = OpenMetricsWriter(lambda i: str(tmp_path / f"h{i}.om"))
    try:
        events = generate(plan, writer)
    finally:
        writer.close()
    return events, replay(writer.paths, rules, tmp_path / "tsdb")


@pytest.mark.integration
def test_one_injected_outage_gives_exactly_one_backend_down_page(tmp_path):
    require_binary("promtool"), require_binary("prometheus")
    incident = {"backend": "fake_perth", "kind": "offline", "at": "2h", "duration": "30m"}
    cfg = Config.model_validate({"providers": [{"kind": "simulated", "backends": ["fake_lagos", "fake_perth"],
                                                "seed": 3, "speedup": 1, "dynamics": "calm",
                                                "incidents": [incident]}],
                                 "probes": {"enabled": False}, "cost": {"daily_budget_usd": 100000}})
    rules = read_by_alerts(load_rules(PRODUCTION_RULES))
    events, episodes = _replay(HistoryPlan(cfg, start=ORIGIN, duration=3.5 * 3600, scrape_interval=30), rules, tmp_path)
    pages = [e for e in episodes if e.severity == "page"]
    assert len(pages) == 1, pages
    (down,) = pages
    assert (down.alertname, down.label["backend"]) == ("QPUBackendDown", "fake_perth")
    start, end = ORIGIN + 2 * 3600, ORIGIN + 2.5 * 3600
    # Active at the first evaluation after the first status poll of the outage; fires 10m
    # (its for:) later; resolves at the first evaluation after the backend is back.
    assert start <= down.active_at <= start + 60 + 60
    assert down.fired_at == down.active_at + 600
    assert end <= down.resolved_at <= end + 60 + 60
    (truth,) = [e for e in events if e.source == "injected"]
    assert explain(down, events) == [truth]


@pytest.mark.integration
def test_default_demo_fleet_with_production_rules_pages_nothing_in_ten_minutes(tmp_path):
    """Ten wall-clock minutes of the no-config fleet (speedup 60: ten simulated hours) written
    as a 30 s scrape, the production rules evaluated every 30 s as in deploy/prometheus."""
    require_binary("promtool"), require_binary("prometheus")
    rules = read_by_alerts(load_rules(PRODUCTION_RULES, default_interval=30.0))
    plan = HistoryPlan(load_config(None), start=ORIGIN, duration=600, scrape_interval=30,
                       selectors=_rule_selectors(rules))
    events, episodes = _replay(plan, rules, tmp_path)
    episodes = [e for e in episodes if e.alertname != "Watchdog"]
    pages = [(e.alertname, e.label.get("backend")) for e in episodes if e.severity == "page"]
    assert not pages, f"pages pending or firing on a healthy demo fleet: {pages}"
    for ep in episodes:  # tickets, pending or firing: each one names the simulator event behind it
        causes = explain(ep, events)
        assert causes, f"{ep.alertname} {ep.label} has no simulator event behind it"
        print(ep.alertname, ep.label.get("backend"), "<-", [f"{c.kind} {c.qubits or c.qubit or ''}" for c in causes])


def _last_evaluations(prom) -> list[float]:
    code, body, _ = http_get(f"http://127.0.0.1:{prom.port}/api/v1/rules")
    assert code == 200
    stamps = [g["lastEvaluation"] for g in json.loads(body)["data"]["groups"]]
    # RFC 3339 with nanoseconds: keep microseconds for fromisoformat.
    return [datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", s).replace("Z", "+00:00")).timestamp() for s in stamps]


@pytest.mark.integration
def test_live_demo_fleet_with_production_rules_has_no_page(start_exporter, start_prometheus):
    ex = start_exporter()  # no config: the embedded demo fleet
    prom = start_prometheus([f"127.0.0.1:{ex.port}"], rule_files=[str(p) for p in PRODUCTION_RULES])
    # Jobs, failures and spend in the data (the first failure at a 0.3 % rate may take long:
    # the ratio rules are evaluated on zero failures, the cost rules on real spend).
    wait_until(lambda: prom.query("sum(qpu_cost_usd_total) > 0 and sum(qpu_jobs_total) > 10"), 90, "demo jobs in Prometheus")
    data_seen = time.time()
    wait_until(lambda: min(_last_evaluations(prom)) > data_seen, 30, "every rule group evaluated on that data")
    assert prom.query('ALERTS{severity="page"}') == []
    assert prom.query('ALERTS{alertname=~"QPUCostBudgetBurn|QPUJobErrorBudgetBurn"}') == []


def test_incident_example_is_a_valid_config_whose_incidents_outlast_the_page_rules(capsys):
    assert cli_main(["check-config", str(REPO / "deploy/examples/simulated-incident.yaml")]) == 0, capsys.readouterr()
    cfg = load_config(REPO / "deploy/examples/simulated-incident.yaml")
    (sim,) = cfg.providers
    for inc in sim.incidents:  # wall-clock minutes past the longest page `for:` (10m)
        assert inc.duration / sim.speedup > 15 * 60, inc
