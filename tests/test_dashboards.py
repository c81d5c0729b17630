"""Static checks of the Grafana dashboards (no Grafana, no Prometheus server needed).

- the committed JSON and docs/dashboards.md equal what the generator renders;
- the JSON round-trips through grafana-foundation-sdk's own model;
- dashboard-linter's rules (dashboards/qpudash/lint.py) find nothing, and do find seeded faults;
- every metric a query uses is one the exporter exports or has announced;
- every query parses (promtool check rules, after variable substitution);
- links: alert dashboard_url uids and var- parameters exist; runbook links match alerts/runbooks.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "dashboards"))

from qpudash import check_files, load_settings, output_files, render_dashboards, render_docs  # noqa: E402
from qpudash.lint import lint, panels  # noqa: E402
from qpudash.promql import metric_names, selectors  # noqa: E402
from qpudash.queries import panel_queries, substitute, variable_queries  # noqa: E402

from qpu_exporter.catalog import CLIENT_SPECS, SPECS  # noqa: E402

JSON_DIR = ROOT / "dashboards" / "json"
DOCS = ROOT / "docs" / "dashboards.md"
RULE_FILES = sorted((ROOT / "alerts" / "rules").glob("*.yml"))
UIDS = {"qpu-executive.json": "qpu-executive", "qpu-oncall.json": "qpu-oncall", "qpu-qubit.json": "qpu-qubit",
        "qpu-workloads.json": "qpu-workloads", "qpu-runs.json": "qpu-runs"}

# Metrics announced but not in the catalog yet (all have landed).
ANNOUNCED_METRICS: frozenset[str] = frozenset()
# Series Prometheus makes itself.
PROMETHEUS_BUILTINS = frozenset({"up", "ALERTS"})
# Values for a static parse of the queries: any syntactically valid stand-ins will do.
STATIC_VALUES = {
    "datasource": "prometheus", "job": ".+", "instance": ".+", "provider": ".*", "backend": ".*", "qubit": ".+",
    "workload": ".*", "circuit": ".*",
    "__rate_interval": "1m", "__interval": "15s", "__interval_ms": "15000", "__range": "1d", "__range_s": "86400",
    "__range_ms": "86400000",
}


def _boards() -> dict[str, dict]:
    return {name: json.loads((JSON_DIR / name).read_text(encoding="utf-8")) for name in UIDS}


def catalog_series() -> set[str]:
    """Series names the exporter's catalog defines, the instrumentation library's included
    (histograms expand to _bucket/_sum/_count)."""
    names = set()
    for spec in [*SPECS.values(), *CLIENT_SPECS.values()]:
        names.add(spec.name)
        if spec.type == "histogram":
            names |= {f"{spec.name}_bucket", f"{spec.name}_sum", f"{spec.name}_count"}
    return names


def recording_rules() -> set[str]:
    return {
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def dashboard_metrics(board: dict) -> set[str]:
    names = set()
    for q in panel_queries(board):
        names |= metric_names(q.expr)
    for _, selector, _ in variable_queries(board):
        if selector:
            names |= metric_names(selector)
    return names


# --- generated files ---------------------------------------------------------------------------

def test_committed_json_and_docs_equal_the_generator():
    rendered = render_dashboards()
    assert sorted(rendered) == sorted(p.name for p in JSON_DIR.glob("*.json")), "dashboards/json has stray or missing files"
    for name, text in rendered.items():
        assert (JSON_DIR / name).read_text(encoding="utf-8") == text, f"{name} is stale: run python dashboards/generate.py"
    assert DOCS.read_text(encoding="utf-8") == render_docs(rendered), "docs/dashboards.md is stale: run python dashboards/generate.py"


def test_generate_check_mode_detects_a_stale_file(tmp_path):
    """`generate.py --check` passes on the committed tree; the same comparison fails on a tampered copy."""
    ok = subprocess.run([sys.executable, str(ROOT / "dashboards" / "generate.py"), "--check"],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    files = output_files(tmp_path / "json", tmp_path / "dashboards.md")
    (tmp_path / "json").mkdir()
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    assert check_files(files, tmp_path / "json") == []
    victim = tmp_path / "json" / "qpu-oncall.json"
    victim.write_text(victim.read_text().replace("Pages firing", "Pages on fire"), encoding="utf-8")
    (tmp_path / "json" / "stray.json").write_text("{}")
    problems = check_files(files, tmp_path / "json")
    assert any("qpu-oncall.json: differs" in p for p in problems) and any("stray.json" in p for p in problems)


def test_json_round_trips_through_the_sdk_model():
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    register_default_plugins()
    for name, board in _boards().items():
        again = JSONEncoder(sort_keys=True, indent=2).encode(Dashboard.from_json(board)) + "\n"
        assert again == (JSON_DIR / name).read_text(encoding="utf-8"), f"{name} does not survive the SDK model"


# --- identity, variables, links ----------------------------------------------------------------

def test_uids_titles_and_variables():
    boards = _boards()
    for name, uid in UIDS.items():
        b = boards[name]
        assert b["uid"] == uid
        names = [v["name"] for v in b["templating"]["list"]]
        assert names[:5] == ["datasource", "job", "instance", "provider", "backend"], names
        assert b["schemaVersion"] >= 39
    qubit_vars = {v["name"]: v for v in boards["qpu-qubit.json"]["templating"]["list"]}
    assert "qubit" in qubit_vars and qubit_vars["qubit"]["multi"]
    # the qubit board is per backend
    assert not qubit_vars["backend"]["multi"] and not qubit_vars["provider"]["multi"]


def test_alert_dashboard_links_resolve():
    """Every dashboard_url in the rules points at one of these boards and only passes variables it has."""
    boards = {b["uid"]: b for b in _boards().values()}
    urls = [
        rule["annotations"]["dashboard_url"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "dashboard_url" in rule.get("annotations", {})
    ]
    assert urls, "the rules carry no dashboard_url: nothing to check"
    for url in urls:
        parsed = urlparse(url)
        uid = parsed.path.split("/d/", 1)[1].split("/")[0]
        assert uid in boards, f"{url}: no dashboard with uid {uid}"
        names = {v["name"] for v in boards[uid]["templating"]["list"]}
        for param in parse_qs(parsed.query):
            if param.startswith("var-"):
                assert param[4:] in names, f"{url}: dashboard {uid} has no variable {param[4:]}"


def test_runbook_links_cover_every_alert():
    settings = load_settings()
    oncall = _boards()["qpu-oncall.json"]
    text = next(p for p in panels(oncall) if p["type"] == "text")["options"]["content"]
    runbooks = sorted(p.stem for p in (ROOT / "alerts" / "runbooks").glob("*.md"))
    assert runbooks
    for alert in runbooks:
        assert f"({settings.runbook_base_url}{alert}.md)" in text
    firing = next(p for p in panels(oncall) if p["title"] == "Firing alerts")
    links = [prop["value"][0]["url"] for o in firing["fieldConfig"]["overrides"] for prop in o["properties"] if prop["id"] == "links"]
    assert f"{settings.runbook_base_url}${{__value.raw}}.md" in links
    with (ROOT / "alerts" / "config.yaml").open() as f:
        assert yaml.safe_load(f)["links"]["runbook_base_url"] == settings.runbook_base_url


def test_no_hard_coded_backend_names():
    from qpu_exporter.providers.fake_snapshots import available_snapshots

    known = set(available_snapshots())
    pattern = re.compile(r"\b(?:fake|ibm|ibmq)_[a-z0-9_]+\b|arn:aws:braket")
    for name in UIDS:
        text = (JSON_DIR / name).read_text(encoding="utf-8")
        assert not pattern.findall(text), f"{name}: {pattern.findall(text)[:5]}"
        assert not [k for k in known if k in text], name


# --- linter ------------------------------------------------------------------------------------

def test_dashboards_pass_the_linter_rules():
    findings = [str(f) for b in _boards().values() for f in lint(b)]
    assert findings == []


def _first(board: dict, ptype: str) -> dict:
    return next(p for p in panels(board) if p["type"] == ptype and p.get("targets"))


def _mutations():
    """(rule that must fire, mutation of a copy of the on-call board)."""

    def drop_unit(b):
        _first(b, "timeseries")["fieldConfig"]["defaults"].pop("unit")

    def fixed_rate_window(b):
        for p in panels(b):
            for t in p.get("targets", []):
                if "[$__rate_interval]" in t["expr"]:
                    t["expr"] = t["expr"].replace("[$__rate_interval]", "[5m]")
                    return

    def drop_job_matcher(b):
        t = _first(b, "timeseries")["targets"][0]
        t["expr"] = t["expr"].replace('job=~"$job", ', "")

    def drop_instance_matcher(b):
        t = _first(b, "timeseries")["targets"][0]
        t["expr"] = t["expr"].replace('instance=~"$instance", ', "")

    def raw_counter(b):
        _first(b, "timeseries")["targets"][0]["expr"] = 'qpu_jobs_total{job=~"$job", instance=~"$instance"}'

    def hard_coded_uid(b):
        _first(b, "stat")["datasource"]["uid"] = "P1809F7CD0C75ACF3"

    def no_description(b):
        _first(b, "stat").pop("description")

    def no_datasource_variable(b):
        b["templating"]["list"] = [v for v in b["templating"]["list"] if v["type"] != "datasource"]

    def job_not_multi(b):
        next(v for v in b["templating"]["list"] if v["name"] == "job")["multi"] = False

    def no_targets(b):
        _first(b, "stat")["targets"] = []

    def overlap(b):
        ps = [p for p in panels(b) if p["type"] != "row"]
        ps[1]["gridPos"] = dict(ps[0]["gridPos"])

    def reload_never(b):
        next(v for v in b["templating"]["list"] if v["name"] == "backend")["refresh"] = 1

    return [
        ("panel-units-rule", drop_unit), ("target-rate-interval-rule", fixed_rate_window),
        ("target-job-rule", drop_job_matcher), ("target-instance-rule", drop_instance_matcher),
        ("target-counter-agg-rule", raw_counter), ("no-hardcoded-datasource-uid", hard_coded_uid),
        ("panel-datasource-rule", hard_coded_uid), ("panel-title-description-rule", no_description),
        ("template-datasource-rule", no_datasource_variable), ("template-job-rule", job_not_multi),
        ("panel-no-targets-rule", no_targets), ("layout", overlap),
        ("template-on-time-change-reload-rule", reload_never),
    ]


@pytest.mark.parametrize("rule,mutate", _mutations(), ids=[r for r, _ in _mutations()])
def test_linter_rules_catch_seeded_faults(rule, mutate):
    board = copy.deepcopy(_boards()["qpu-oncall.json"])
    mutate(board)
    assert rule in {f.rule for f in lint(board)}


# --- metric contract and PromQL ----------------------------------------------------------------

def test_every_metric_is_exported_or_announced():
    allowed = catalog_series() | ANNOUNCED_METRICS | PROMETHEUS_BUILTINS | recording_rules()
    for name, board in _boards().items():
        unknown = dashboard_metrics(board) - allowed
        assert not unknown, f"{name} uses metrics the exporter does not define: {sorted(unknown)}"


def test_metric_contract_catches_a_typo():
    board = copy.deepcopy(_boards()["qpu-executive.json"])
    target = _first(board, "stat")["targets"][0]
    target["expr"] = target["expr"].replace("qpu_backend_up", "qpu_backend_upp")
    allowed = catalog_series() | ANNOUNCED_METRICS | PROMETHEUS_BUILTINS | recording_rules()
    assert dashboard_metrics(board) - allowed == {"qpu_backend_upp"}


def test_recording_rules_used_exist():
    used = {m for b in _boards().values() for m in dashboard_metrics(b) if ":" in m}
    assert used, "expected the dashboards to reuse recording rules"
    assert used <= recording_rules()


def test_scanner_finds_selectors_and_their_functions():
    sels = selectors('sum by (a) (rate(x_total{job=~"$job"}[$__rate_interval])) / on () group_left () y:z:w offset 5m')
    assert [(s.metric, s.function, s.range) for s in sels] == [("x_total", "rate", "$__rate_interval"), ("y:z:w", None, None)]
    assert selectors('{__name__="up"}')[0].metric == "up"


def _promtool() -> str:
    path = shutil.which("promtool")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("promtool is required in CI (apt-get install prometheus)")
    pytest.skip("promtool not installed")


def _all_exprs() -> list[tuple[str, str]]:
    out = []
    for board in _boards().values():
        out += [(f"{q.dashboard} / {q.panel} / {q.ref_id}", substitute(q.expr, STATIC_VALUES)) for q in panel_queries(board)]
        for v, selector, _ in variable_queries(board):
            if selector:
                out.append((f"{board['uid']} / variable {v['name']}", substitute(selector, STATIC_VALUES)))
    return out


def _promtool_check(exprs: list[tuple[str, str]], tmp_path: Path) -> subprocess.CompletedProcess:
    rules = {"groups": [{"name": "dashboards", "rules": [{"record": f"dashboard:query:n{i}", "expr": e} for i, (_, e) in enumerate(exprs)]}]}
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))
    return subprocess.run([_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_every_query_parses(tmp_path):
    exprs = _all_exprs()
    result = _promtool_check(exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(exprs)} rules found" in result.stdout


def test_promtool_parse_check_can_fail(tmp_path):
    result = _promtool_check([("broken", "sum(rate(up[5m])")], tmp_path)
    assert result.returncode != 0


def test_every_metric_a_rule_uses_is_exported_and_documented():
    """The rules side of the contract: alert and recording rules only use series the exporter
    exports (catalog.py, hence docs/metrics.md), Prometheus' own, or other recording rules."""
    allowed = catalog_series() | PROMETHEUS_BUILTINS | recording_rules()
    used = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                used |= metric_names(rule["expr"])
    assert used, "no metric found in the rules: the scanner is broken"
    assert used - allowed == set(), f"rules use unknown series: {sorted(used - allowed)}"
    assert {"qpu_backend_up", "qpu_drift_alarm", "qpu_jobs_failed_total"} <= used
