"""Alert quality: precision, recall and time to detect of the shipped alerting rules, scored
against the simulated fleet's ground truth; or, on your own Prometheus history, how often
each alert would fire. Method, fleet and choices: docs/alerts-quality.md.

    .venv/bin/python benchmarks/alert_quality.py                       # calm, default, incidents: a month each
    .venv/bin/python benchmarks/alert_quality.py --scenario default --days 7
    .venv/bin/python benchmarks/alert_quality.py --tsdb SNAPSHOT_DIR    # your history (no ground truth)
    .venv/bin/python benchmarks/alert_quality.py --openmetrics export.om
    .venv/bin/python benchmarks/alert_quality.py --demo                # the demo fleet's first ten minutes

Needs promtool and prometheus (Debian package prometheus). A simulated month takes a few
minutes of CPU per scenario (the simulation dominates); --days shortens it.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dashboards"))

from qpudash.promql import selectors as promql_selectors  # noqa: E402

from qpu_exporter.alertreplay import Episode, Rule, load_rules, read_by_alerts, replay, tsdb_time_range  # noqa: E402
from qpu_exporter.alertscore import ALERTS, Row, explain, median, p90, score, summarize, UNSCORED  # noqa: E402
from qpu_exporter.config import Config, load_config  # noqa: E402
from qpu_exporter.providers.simulated.truth import read_jsonl  # noqa: E402
from qpu_exporter.simhistory import HistoryPlan, OpenMetricsWriter, Selector, generate  # noqa: E402

DAY, HOUR = 86400.0, 3600.0
# The scored fleet: three small real IBM snapshots (two 7-qubit and one 16-qubit Falcon), so a
# month of every series the rules read is ~10 M samples; the dynamics are per qubit and per
# backend, the same as the demo fleet's.
FLEET = ("fake_lagos", "fake_perth", "fake_guadalupe")
SEED = 7
WORKLOAD_TAGS = ("chem", "finance", "ml")  # the demo fleet's teams (providers/simulated/workloads.py)
# The fleet spends ~$8,000 a simulated day per backend (12 jobs an hour, ~17 QPU seconds each
# at $1.60); the budget is three times the fleet's spend, as a team would set it.
DAILY_BUDGET_USD = 75_000.0
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: the written history starts here
# Incidents injected in the "incidents" scenario: kind -> (factor, duration). Ten of each,
# one every ~9 h in turn over the backends, so one backend sees one every ~28 h. Durations are
# what the drift detectors can see: T1 is re-measured hourly while off its level, readout
# every ~5 h, gate errors daily, and a detector needs several measurements.
INCIDENTS = {
    "offline": (None, "30m"),
    "maintenance": (None, "1h"),
    "queue_spike": (20.0, "2h"),
    "job_failures": (0.5, "2h"),
    "t1_drop": (0.2, "6h"),
    "readout_degrade": (3.0, "3d"),
    "gate_error_rise": (3.0, "3d"),
}
PER_KIND = 10


@dataclass(frozen=True)
class Scenario:
    name: str
    dynamics: str
    incidents: bool
    what: str


SCENARIOS = {
    "calm": Scenario("calm", "calm", False, "calm dynamics: per-qubit noise and gate creep, no events"),
    "default": Scenario("default", "realistic", False,
                        "default dynamics: TLS dips, coupler deaths, outages, queue swings, failure bursts"),
    "incidents": Scenario("incidents", "realistic", True,
                          f"default dynamics plus injected incidents of {len(INCIDENTS)} kinds, one every ~9 h "
                          f"({PER_KIND} of each in a month)"),
}


def rule_selectors(rules: list[Rule]) -> tuple[Selector, ...]:
    """The exporter series the rules read (recorded series and `up` excluded: Prometheus makes those)."""
    out = set()
    for r in rules:
        for s in promql_selectors(r.expr):
            if s.metric and ":" not in s.metric and s.metric != "up":
                out.add(Selector(s.metric, tuple(s.matchers)))
    return tuple(sorted(out, key=lambda s: (s.metric, s.matchers)))


def incident_plan(offset: float, days: float, seed: int = SEED) -> list[dict]:
    """The injected incidents, ``at`` counted from the exporter's start (``offset`` = when
    the scored window begins, in those terms)."""
    from qpu_exporter.providers.fake_snapshots import load_snapshot

    from qpu_exporter.providers.ibm.properties import parse_properties

    rng = np.random.default_rng([seed, 19])
    qubits = {b: int(load_snapshot(b)[0]["n_qubits"]) for b in FLEET}
    # Readout degrades on qubits whose error tripled stays under the simulator's 0.5 cap.
    readout_ok = {}
    for b in FLEET:
        snap, _ = parse_properties(load_snapshot(b)[1], provider="simulated", backend=b, fetched_at=0.0)
        readout_ok[b] = [q.qubit for q in snap.qubits if q.values["readout_error"].value < 0.05]
    kinds = list(INCIDENTS)
    # PER_KIND in a month; a shorter run keeps the pace (one every ~9 h) with fewer of each.
    n = max(1, round(PER_KIND * (days - 5) / 25)) * len(kinds)
    spacing = (days - 5) * DAY / n  # from day 1 to four days before the end (a 3-day incident ends a day early)
    out = []
    for i in range(n):
        kind, backend = kinds[i % len(kinds)], FLEET[i % len(FLEET)]
        factor, duration = INCIDENTS[kind]
        inc = {"backend": backend, "kind": kind, "at": f"{int(offset + DAY + i * spacing)}s", "duration": duration}
        if factor is not None:
            inc["factor"] = factor
        if kind == "readout_degrade":
            inc["qubit"] = int(rng.choice(readout_ok[backend]))
        elif kind in ("t1_drop", "gate_error_rise"):
            inc["qubit"] = int(rng.integers(qubits[backend]))
        out.append(inc)
    return out


def workload_budgets() -> dict:
    """Per-workload daily budgets, three times each workload's expected spend on FLEET, as a
    team would set them."""
    from qpu_exporter.providers.simulated.provider import JOBS_PER_HOUR, expected_cost_per_job_usd
    from qpu_exporter.providers.simulated.workloads import UNTAGGED_SHARE, profile

    tags = list(WORKLOAD_TAGS)
    jobs_per_day = JOBS_PER_HOUR * 24 * len(FLEET) * (1 - UNTAGGED_SHARE) / len(tags)
    return {t: {"usd_per_day": round(3 * jobs_per_day * expected_cost_per_job_usd(profile(tags, t).execution))}
            for t in tags}


def exporter_config(scenario: Scenario, warmup: float, lead_in: float, days: float) -> Config:
    provider = {"kind": "simulated", "backends": list(FLEET), "seed": SEED, "speedup": 1.0,
                "dynamics": scenario.dynamics, "workload_tags": list(WORKLOAD_TAGS)}
    if scenario.incidents:
        provider["incidents"] = incident_plan(warmup + lead_in, days)
    # Production schedule (calibration every 5m, status and jobs every 1m) and drift defaults;
    # the demo's workloads, so the per-workload alerts are scored too.
    return Config.model_validate({"providers": [provider], "cost": {"daily_budget_usd": DAILY_BUDGET_USD},
                                  "probes": {"enabled": False},
                                  "workloads": {"tag": "team", "max": 50, "budgets": workload_budgets()}})


# --- tables --------------------------------------------------------------------------------------
def _minutes(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x / 60:.0f} min" if x < 5 * HOUR else f"{x / HOUR:.1f} h"


def _ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def ttd_target(row: Row, eval_interval: float, poll: dict[str, float]) -> float | None:
    """For step changes: for: + two evaluation intervals, after the poll and the scrape that
    bring the change to Prometheus (``poll`` holds both, per collector)."""
    spec = ALERTS.get(row.alert)
    if spec is None or not spec.step or not spec.sizes:
        return None
    source = "calibration" if row.alert in ("QPUDeadCouplersRising",) else "status"
    return row.for_seconds + 2 * eval_interval + poll[source]


def scenario_table(rows: dict, weeks: float, eval_interval: float, poll: dict[str, float]) -> list[str]:
    out = ["| alert | severity | firing | per week | explained | precision | events | detected | recall | "
           "TTD median | TTD p90 |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (alert, sev), r in sorted(rows.items()):
        if not (r.firing or r.events or r.pending_only):
            continue
        out.append(f"| {alert} | {sev or '–'} | {r.firing} | {r.firing / weeks:.1f} | {r.explained} | "
                   f"{_ratio(r.precision)} | {r.events} | {r.detected} | {_ratio(r.recall)} | "
                   f"{_minutes(median(r.ttd))} | {_minutes(p90(r.ttd))} |")
    if len(out) == 2:
        out.append("| (no alert fired or was due) | | | | | | | | | | |")
    quiet = sorted({a for a in ALERTS} - {a for (a, _), r in rows.items() if r.firing or r.events or r.pending_only})
    out.append("")
    out.append(f"No episode: {', '.join(quiet)}." if quiet else "")
    return out


def recall_table(rows: dict, eval_interval: float, poll: dict[str, float]) -> list[str]:
    out = ["| alert | severity | event kind (size) | events | detected | recall | TTD median | TTD p90 | TTD target |",
           "|---|---|---|---|---|---|---|---|---|"]
    for (alert, sev), r in sorted(rows.items()):
        for kind, k in sorted(r.by_kind.items()):
            target = ttd_target(r, eval_interval, poll)
            out.append(f"| {alert} | {sev or '–'} | {kind}{' (injected)' if kind in INCIDENTS else ''} | {k.events} | "
                       f"{k.detected} | {_ratio(k.recall)} | {_minutes(median(k.ttd))} | {_minutes(p90(k.ttd))} | "
                       f"{_minutes(target)} |")
    return out


def targets(name: str, rows: dict, weeks: float, eval_interval: float, poll: dict[str, float]) -> list[str]:
    """The issue's targets, one line each, for this scenario."""
    lines = []
    pages = sum(r.firing for (a, s), r in rows.items() if s == "page")
    tickets = sum(r.firing for (a, s), r in rows.items() if s == "ticket")
    if name == "calm":
        lines.append(f"calm fleet: {pages} pages and {tickets} tickets in {weeks:.1f} weeks (target 0 and 0): "
                     + ("met" if pages == tickets == 0 else "NOT met"))
    else:
        page_rows = [r for (a, s), r in rows.items() if s == "page" and r.firing]
        ok = all(r.explained == r.firing for r in page_rows)
        lines.append(f"pages explained by a true event: {sum(r.explained for r in page_rows)}/{pages} "
                     "(target all): " + ("met" if ok else "NOT met"))
        t_expl = sum(r.explained for (a, s), r in rows.items() if s == "ticket")
        prec = t_expl / tickets if tickets else None
        lines.append(f"ticket precision: {_ratio(prec)} ({t_expl}/{tickets}; target >= 0.9): "
                     + ("met" if prec is None or prec >= 0.9 else "NOT met"))
    if name == "incidents":
        for (alert, sev), r in sorted(rows.items()):
            for kind, k in sorted(r.by_kind.items()):
                if kind not in INCIDENTS or not k.events:
                    continue
                verdict = "met" if (k.recall or 0) >= 0.9 else "NOT met"
                line = f"recall of {kind} by {alert} ({sev}): {_ratio(k.recall)} (target >= 0.9): {verdict}"
                target = ttd_target(r, eval_interval, poll)
                if target is not None and k.ttd:
                    line += (f"; TTD p90 {_minutes(p90(k.ttd))} vs for + 2 evaluations + poll + scrape {_minutes(target)}: "
                             + ("met" if p90(k.ttd) <= target else "NOT met"))
                lines.append(line)
    return lines


# --- runs ------------------------------------------------------------------------------------------
def run_scenario(scenario: Scenario, rules: list[Rule], days: float, warmup_days: float, lead_in_days: float,
                 scrape: float, work: Path) -> dict:
    """Generate the scenario's history, replay the rules over it, and leave events.jsonl and
    episodes.jsonl in ``work``. Returns timings and volume."""
    warmup, lead_in = warmup_days * DAY, lead_in_days * DAY
    cfg = exporter_config(scenario, warmup, lead_in, days)
    plan = HistoryPlan(cfg, start=START, duration=lead_in + days * DAY, scrape_interval=scrape, warmup=warmup,
                       selectors=rule_selectors(rules))
    work.mkdir(parents=True, exist_ok=True)
    stats = {}
    t0 = time.process_time()
    writer = OpenMetricsWriter(lambda i: str(work / f"history-{i:02d}.om"), chunk=7 * DAY)
    try:
        events = generate(plan, writer)
    finally:
        writer.close()
    stats["generate_cpu_s"] = time.process_time() - t0
    stats["samples"] = writer.samples
    with (work / "events.jsonl").open("w") as f:
        for e in events:
            f.write(e.to_json() + "\n")
    t1 = time.monotonic()
    episodes = replay(writer.paths, rules, work / "tsdb")
    stats["replay_s"] = time.monotonic() - t1
    with (work / "episodes.jsonl").open("w") as f:
        for ep in episodes:
            f.write(json.dumps({"alertname": ep.alertname, "labels": ep.label, "active_at": ep.active_at,
                                "fired_at": ep.fired_at, "resolved_at": ep.resolved_at,
                                "for": ep.for_seconds}) + "\n")
    return stats


def score_run(work: Path, lead_in_days: float, days: float) -> tuple[dict, dict]:
    """Rows and event counts of a run's events.jsonl and episodes.jsonl."""
    events = read_jsonl(work / "events.jsonl")
    episodes = []
    with (work / "episodes.jsonl").open() as f:
        for line in f:
            j = json.loads(line)
            episodes.append(Episode(j["alertname"], tuple(sorted(j["labels"].items())), j["active_at"],
                                    j["fired_at"], j["resolved_at"], j.get("for", 0.0)))
    score_start = START + lead_in_days * DAY
    score_end = score_start + days * DAY
    rows = score(episodes, events, score_start, score_end, recall_until=score_end - DAY)
    counts = {k: sum(1 for e in events if e.kind == k and score_start <= e.start < score_end)
              for k in sorted({e.kind for e in events})}
    return rows, counts


def print_scenario(scenario: Scenario, rows: dict, stats: dict, days: float, eval_interval: float,
                   poll: dict[str, float]) -> bool:
    weeks = days / 7
    print(f"\n### {scenario.name}: {scenario.what}\n")
    print(f"{days:g} simulated days of {', '.join(FLEET)}; true events in them: "
          + ", ".join(f"{k} {n}" for k, n in stats["events"].items() if n) + ".\n")
    for line in scenario_table(rows, weeks, eval_interval, poll):
        print(line)
    if any(r.by_kind for r in rows.values()):
        print("\nRecall and time to detect by kind of true event:\n")
        for line in recall_table(rows, eval_interval, poll):
            print(line)
    verdicts = targets(scenario.name, rows, weeks, eval_interval, poll)
    print()
    for line in verdicts:
        print(f"- {line}")
    for (alert, sev), r in sorted(rows.items()):
        for ep in r.unexplained[:3]:
            print(f"  - unexplained {alert} ({sev}) {ep.label.get('backend', '')} "
                  + " ".join(f"{k}={v}" for k, v in ep.label.items()
                             if k in ("qubit", "series", "gate", "qubits", "long_window", "budget_percent"))
                  + f" at +{(ep.fired_at - START) / DAY:.2f} d")
    if "samples" in stats:
        print(f"\n({stats['samples'] / 1e6:.1f} M samples; generation {stats['generate_cpu_s']:.0f} s CPU, "
              f"backfill and replay {stats['replay_s']:.0f} s)")
    return not any("NOT met" in v for v in verdicts)


def user_history(args, rules: list[Rule]) -> int:
    with tempfile.TemporaryDirectory(prefix="qpu-alert-history-") as work:
        episodes = replay([args.openmetrics] if args.openmetrics else [], rules, Path(work), tsdb=args.tsdb)
        first, last = tsdb_time_range(Path(work) / "data")
    start, end = (args.start or first), (args.end or last)
    weeks = (end - start) / (7 * DAY)
    rows = summarize(episodes, start, end)
    print(f"{(end - start) / DAY:.1f} days of history, {len(rules)} rules from {args.rules}\n")
    print("| alert | severity | firing episodes | per week | median duration | p90 duration | pending only |")
    print("|---|---|---|---|---|---|---|")
    for (alert, sev), r in sorted(rows.items()):
        print(f"| {alert} | {sev or '–'} | {r.firing} | {r.firing / weeks:.1f} | {_minutes(median(r.durations))} | "
              f"{_minutes(p90(r.durations))} | {r.pending_only} |")
    if not rows:
        print("| (no alert became active) | | | | | | |")
    return 0


def demo(rules_dir: Path, minutes: float = 10.0) -> int:
    """The issue's first-impression check: the no-config demo fleet (speedup 60) from a fresh
    start for ``minutes`` of wall-clock time, scraped and evaluated every 30 s as in the
    Compose stack; every alert episode, pending or firing, with the simulator events behind it."""
    rules = read_by_alerts(load_rules(sorted(rules_dir.glob("*.yml")), default_interval=30.0))
    cfg = load_config(None)
    plan = HistoryPlan(cfg, start=START, duration=minutes * 60, scrape_interval=30.0, selectors=rule_selectors(rules))
    with tempfile.TemporaryDirectory(prefix="qpu-alert-demo-") as work:
        writer = OpenMetricsWriter(lambda i: str(Path(work) / f"history-{i:02d}.om"))
        try:
            events = generate(plan, writer)
        finally:
            writer.close()
        episodes = replay(writer.paths, rules, Path(work) / "tsdb")
    shown_dir = rules_dir.relative_to(ROOT) if rules_dir.is_relative_to(ROOT) else rules_dir
    print(f"## The no-config demo fleet, {minutes:g} wall-clock minutes from start (rules: {shown_dir})\n")
    print("| alert | severity | labels | state | since | simulator events behind it |")
    print("|---|---|---|---|---|---|")
    shown = [ep for ep in episodes if ep.alertname != "Watchdog"]
    for ep in sorted(shown, key=lambda e: (e.severity or "", e.alertname, e.active_at)):
        labels = " ".join(f"{k}={ep.label[k]}" for k in ("backend", "workload", "long_window", "budget_percent")
                          if k in ep.label)
        causes = ", ".join(f"{c.kind} {c.qubits or c.qubit or ''}".strip() for c in explain(ep, events)) or "none"
        state = "firing" if ep.fired_at is not None else "pending"
        print(f"| {ep.alertname} | {ep.severity} | {labels} | {state} | +{(ep.active_at - START) / 60:.1f} min | {causes} |")
    if not shown:
        print("| (no alert pending or firing) | | | | | |")
    pages = [ep for ep in shown if ep.severity == "page"]
    unexplained = [ep for ep in shown if not explain(ep, events)]
    print(f"\n{len(pages)} pages, {len(shown) - len(pages)} tickets pending or firing; {len(unexplained)} without a "
          "simulator event behind them")
    return 0 if not pages and not unexplained else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    ap.add_argument("--days", type=float, default=30.0, help="scored simulated days (default 30)")
    ap.add_argument("--warmup-days", type=float, default=100.0,
                    help="unwritten history first, so drift detectors finish their warm-up (default 100)")
    ap.add_argument("--lead-in-days", type=float, default=3.0,
                    help="written but unscored history, so the rules' 1d and 3d windows are full (default 3)")
    ap.add_argument("--scrape-interval", type=float, default=60.0)
    ap.add_argument("--rules", type=Path, default=ROOT / "alerts" / "rules", help="directory of rule files")
    ap.add_argument("--eval-interval", type=float, default=60.0, help="rule groups without an interval (default 60 s)")
    ap.add_argument("--keep", type=Path, help="keep history, events and episodes in this directory")
    ap.add_argument("--rescore", type=Path, help="score the events and episodes a --keep run left, without rerunning")
    ap.add_argument("--tsdb", type=Path, help="score your own TSDB (a snapshot directory) instead")
    ap.add_argument("--openmetrics", type=Path, help="score your own OpenMetrics export instead")
    ap.add_argument("--start", type=float, help="with --tsdb/--openmetrics: first unix second to count")
    ap.add_argument("--end", type=float, help="with --tsdb/--openmetrics: last unix second to count")
    ap.add_argument("--demo", action="store_true",
                    help="instead: the no-config demo fleet's first ten wall-clock minutes, every alert episode")
    args = ap.parse_args(argv)
    logging.disable(logging.WARNING)  # the exporter's own drift-alarm lines, thousands of them
    if args.demo:
        return demo(args.rules)
    loaded = load_rules(sorted(args.rules.glob("*.yml")), default_interval=args.eval_interval)
    if not (args.tsdb or args.openmetrics):  # alerts the simulation cannot score are not evaluated
        loaded = [r for r in loaded if not (r.alert and r.name.startswith(UNSCORED))]
    rules = read_by_alerts(loaded)
    if args.tsdb or args.openmetrics:
        return user_history(args, rules)
    cfg = Config()
    poll = {"status": cfg.schedule.jobs_interval + args.scrape_interval,
            "calibration": cfg.schedule.calibration_interval + args.scrape_interval}
    print("## Alert quality on the simulated fleet\n")
    print(f"Rules: {args.rules.relative_to(ROOT) if args.rules.is_relative_to(ROOT) else args.rules}, evaluated every "
          f"{args.eval_interval:g} s; scrapes every {args.scrape_interval:g} s; production poll schedule; "
          f"{args.warmup_days:g} days of warm-up and {args.lead_in_days:g} days of lead-in before the scored window.")
    ok = True
    for name in (SCENARIOS if args.scenario == "all" else [args.scenario]):
        if args.rescore:
            stats = {}
            if not (args.rescore / name / "episodes.jsonl").exists():
                continue
            work = args.rescore / name
        else:
            work = (args.keep / name) if args.keep else Path(tempfile.mkdtemp(prefix=f"qpu-alert-quality-{name}-"))
            stats = run_scenario(SCENARIOS[name], rules, args.days, args.warmup_days, args.lead_in_days,
                                 args.scrape_interval, work)
        rows, stats["events"] = score_run(work, args.lead_in_days, args.days)
        if not (args.keep or args.rescore):
            shutil.rmtree(work, ignore_errors=True)
        ok &= print_scenario(SCENARIOS[name], rows, stats, args.days, args.eval_interval, poll)
        sys.stdout.flush()
    print("\nall targets met" if ok else "\nsome targets NOT met (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
