"""Turning dashboard queries into plain PromQL, the way Grafana would before sending them.

Used by the tests: variables resolved to chosen values (multi-value variables become a regex
alternation, All becomes the variable's allValue) and Grafana's built-ins ($__rate_interval,
$__range, ...) replaced by fixed durations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .lint import LABEL_VALUES, panels

_VAR = re.compile(r"\$\{(?P<braced>[A-Za-z0-9_]+)(?::[A-Za-z]+)?\}|\$(?P<plain>[A-Za-z0-9_]+)|\[\[(?P<old>[A-Za-z0-9_]+)\]\]")

# Grafana's built-in variables, in the order longer names first so $__range_s wins over $__range.
BUILTINS = ("__rate_interval", "__interval_ms", "__interval", "__range_s", "__range_ms", "__range")


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str  # uid
    panel: str  # title
    ref_id: str
    expr: str
    instant: bool


def panel_queries(board: dict) -> list[PanelQuery]:
    out = []
    for panel in panels(board):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                out.append(PanelQuery(board["uid"], panel["title"], target.get("refId", "?"), target["expr"],
                                      bool(target.get("instant"))))
    return out


def variable_queries(board: dict) -> list[tuple[dict, str | None, str]]:
    """(variable, selector or None, label) for every label_values query variable, in order."""
    out = []
    for v in board.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        query = v["query"]["query"] if isinstance(v.get("query"), dict) else v.get("query", "")
        m = LABEL_VALUES.match(query)
        if not m:
            raise ValueError(f"variable {v.get('name')}: unsupported query {query!r}")
        out.append((v, m.group("selector"), m.group("label")))
    return out


def regex_escape(value: str) -> str:
    """Escape a label value for a regex matcher inside a PromQL string: a regex backslash must be
    doubled, because PromQL string escapes come first (re.escape's "\\-" would be rejected)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\\\1", value)


def variable_value(variable: dict, values: list[str], use_all: bool = True) -> str:
    """What Grafana puts into a regex matcher for this variable: allValue when All is selected,
    else the (escaped) values as an alternation."""
    if use_all and variable.get("includeAll") and variable.get("allValue"):
        return variable["allValue"]
    chosen = values if variable.get("multi") and use_all else values[:1]
    escaped = [regex_escape(v) for v in chosen]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace $var, ${var}, ${var:format} and [[var]] by values[var]; unknown variables raise."""

    def repl(m: re.Match) -> str:
        name = m.group("braced") or m.group("plain") or m.group("old")
        if name not in values:
            raise KeyError(f"no value for variable ${name} in {expr!r}")
        return values[name]

    return _VAR.sub(repl, expr)
