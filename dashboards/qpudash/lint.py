"""The rules of grafana/dashboard-linter that apply to these dashboards, re-implemented over the
JSON (the linter is a Go binary we cannot install here), plus a few of our own.

Rule names follow dashboard-linter's, so a finding reads the same as the linter's would:
template-datasource-rule, template-job-rule, template-instance-rule,
template-on-time-change-reload-rule, template-label-promql-rule, panel-datasource-rule,
panel-title-description-rule, panel-units-rule, panel-no-targets-rule, target-rate-interval-rule,
target-job-rule, target-instance-rule, target-counter-agg-rule. Ours: no-hardcoded-datasource-uid,
layout (ids unique, panels inside the 24-column grid, no overlaps).

Where a rule does not apply: job/instance matchers are required on raw exporter series only;
recording rules (names with ':') and ALERTS are aggregated over exporter replicas and carry neither.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .promql import selectors

DATASOURCE_UID = "${datasource}"
RATE_INTERVAL = "$__rate_interval"

# Grafana unit ids used or usable here (a subset of Grafana's value formats).
VALID_UNITS = frozenset({
    "none", "short", "string", "percent", "percentunit", "sci", "locale",
    "s", "ms", "µs", "ns", "m", "h", "d", "dtdurations", "dtdurationms", "clocks",
    "hertz", "currencyUSD", "currencyEUR", "bytes", "decbytes",
    "ops", "opm", "reqps", "rps", "cps", "cpm",
    "bool", "bool_yes_no", "bool_on_off", "dateTimeAsIso", "dateTimeFromNow",
})
# Panels that show numbers and so need a unit (dashboard-linter checks stat, table, timeseries
# and gauge; we also require one on bar gauges, state timelines and heatmaps).
NUMERIC_PANELS = frozenset({"stat", "gauge", "bargauge", "table", "timeseries", "state-timeline", "heatmap"})
NO_TARGET_PANELS = frozenset({"text", "row", "dashlist", "news"})
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$")


@dataclass(frozen=True)
class Finding:
    rule: str
    dashboard: str
    panel: str
    message: str

    def __str__(self) -> str:
        where = f"{self.dashboard}" + (f" / {self.panel}" if self.panel else "")
        return f"[{self.rule}] {where}: {self.message}"


def panels(board: dict):
    for panel in board.get("panels", []):
        yield panel
        if panel.get("type") == "row":
            yield from panel.get("panels", [])


def is_raw_metric(name: str) -> bool:
    return bool(name) and ":" not in name and name not in ("ALERTS", "ALERTS_FOR_STATE")


def lint(board: dict) -> list[Finding]:
    title = board.get("title", "?")
    out: list[Finding] = []

    def add(rule: str, panel: str, message: str) -> None:
        out.append(Finding(rule, title, panel, message))

    variables = board.get("templating", {}).get("list", [])
    by_name = {v.get("name"): v for v in variables}

    ds_vars = [v for v in variables if v.get("type") == "datasource"]
    if len(ds_vars) != 1 or ds_vars[0].get("name") != "datasource" or ds_vars[0].get("query") != "prometheus":
        add("template-datasource-rule", "", "needs exactly one Prometheus datasource variable named 'datasource'")
    elif ds_vars[0].get("label") != "Data source":
        add("template-datasource-rule", "", "the datasource variable should be labelled 'Data source'")

    for name in ("job", "instance"):
        v = by_name.get(name)
        rule = f"template-{name}-rule"
        if v is None:
            add(rule, "", f"is missing the {name} variable")
            continue
        if (v.get("datasource") or {}).get("uid") != DATASOURCE_UID:
            add(rule, "", f"{name} variable should use datasource {DATASOURCE_UID}")
        if v.get("type") != "query":
            add(rule, "", f"{name} variable should be a Prometheus query")
        if v.get("label") != name.title():
            add(rule, "", f"{name} variable should be labelled {name.title()!r}")
        if not v.get("multi"):
            add(rule, "", f"{name} variable should be multi-select")
        if v.get("allValue") != ".+":
            add(rule, "", f"{name} variable allValue should be '.+'")

    for v in variables:
        if v.get("type") != "query":
            continue
        if v.get("refresh") != 2:
            add("template-on-time-change-reload-rule", "", f"variable {v.get('name')} should refresh on time range change (2)")
        query = v.get("query")
        query = query.get("query", "") if isinstance(query, dict) else query
        m = LABEL_VALUES.match(query or "")
        if not m:
            add("template-label-promql-rule", "", f"variable {v.get('name')}: {query!r} is not label_values(selector, label)")
        elif m.group("selector"):
            try:
                selectors(m.group("selector"))
            except ValueError as exc:
                add("template-label-promql-rule", "", f"variable {v.get('name')}: {exc}")

    for panel in panels(board):
        ptype, ptitle = panel.get("type"), panel.get("title", "")
        if ptype == "row":
            if not ptitle:
                add("panel-title-description-rule", "", f"row {panel.get('id')} has no title")
            continue
        if not ptitle or not panel.get("description"):
            add("panel-title-description-rule", ptitle, "panel needs a title and a description")
        targets = panel.get("targets") or []
        if ptype not in NO_TARGET_PANELS:
            if not targets:
                add("panel-no-targets-rule", ptitle, "panel has no targets")
            if (panel.get("datasource") or {}).get("uid") != DATASOURCE_UID:
                add("panel-datasource-rule", ptitle, f"panel does not use {DATASOURCE_UID}")
        if ptype in NUMERIC_PANELS:
            unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
            if unit not in VALID_UNITS:
                add("panel-units-rule", ptitle, f"no or invalid unit: {unit!r}")
            for override in panel.get("fieldConfig", {}).get("overrides", []):
                for prop in override.get("properties", []):
                    if prop.get("id") == "unit" and prop.get("value") not in VALID_UNITS:
                        add("panel-units-rule", ptitle, f"invalid override unit {prop.get('value')!r}")
        for idx, target in enumerate(targets):
            if (target.get("datasource") or {}).get("uid", DATASOURCE_UID) != DATASOURCE_UID:
                add("panel-datasource-rule", ptitle, f"target {idx} does not use {DATASOURCE_UID}")
            out += [Finding(f.rule, title, ptitle, f"target {idx}: {f.message}") for f in lint_expr(target.get("expr", ""))]

    out += [Finding("no-hardcoded-datasource-uid", title, "", m) for m in _hardcoded_datasources(board)]
    out += [Finding("layout", title, "", m) for m in _layout_problems(board)]
    return out


def lint_expr(expr: str) -> list[Finding]:
    """Target rules for one PromQL expression (dashboard/panel left empty)."""
    out: list[Finding] = []
    try:
        sels = selectors(expr)
    except ValueError as exc:
        return [Finding("target-promql-rule", "", "", str(exc))]
    if not sels:
        out.append(Finding("target-promql-rule", "", "", f"no series selector in {expr!r}"))
    for s in sels:
        if s.range is not None:
            if s.function in ("rate", "irate") and s.range != RATE_INTERVAL:
                out.append(Finding("target-rate-interval-rule", "", "", f"{s.function}({s.metric}[{s.range}]) should use {RATE_INTERVAL}"))
            if s.range == RATE_INTERVAL and s.function is None:
                out.append(Finding("target-rate-interval-rule", "", "", f"{RATE_INTERVAL} used outside a function on {s.metric}"))
        if s.metric.endswith("_total") and (s.range is None or s.function not in ("rate", "irate", "increase")):
            out.append(Finding("target-counter-agg-rule", "", "", f"counter {s.metric} is not wrapped in rate, irate or increase"))
        if is_raw_metric(s.metric):
            for label in ("job", "instance"):
                if s.matcher(label) != ("=~", f"${label}"):
                    out.append(Finding(f"target-{label}-rule", "", "", f"{s.metric} lacks {label}=~\"${label}\""))
    return out


def _hardcoded_datasources(node, path: str = "") -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if key == "datasource" and isinstance(value, dict) and value.get("uid") not in (None, DATASOURCE_UID):
                found.append(f"{here}: uid {value.get('uid')!r}")
            elif key == "datasource" and isinstance(value, str) and value not in ("", DATASOURCE_UID, "$datasource"):
                found.append(f"{here}: {value!r}")
            found += _hardcoded_datasources(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _hardcoded_datasources(value, f"{path}[{i}]")
    return found


def _layout_problems(board: dict) -> list[str]:
    problems, seen, cells = [], set(), {}
    for panel in panels(board):
        pid = panel.get("id")
        if pid in seen or pid is None:
            problems.append(f"panel {panel.get('title')!r}: missing or duplicate id {pid}")
        seen.add(pid)
        g = panel.get("gridPos") or {}
        if not g or g["x"] < 0 or g["w"] <= 0 or g["x"] + g["w"] > 24:
            problems.append(f"panel {panel.get('title')!r}: gridPos {g} outside the 24-column grid")
            continue
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    problems.append(f"panel {panel.get('title')!r} overlaps {cells[(x, y)]!r}")
                    break
                cells[(x, y)] = panel.get("title")
            else:
                continue
            break
    return problems
