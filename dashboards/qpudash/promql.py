"""A small PromQL scanner: the series selectors of an expression and the function each range
selector sits in. Enough for lint rules and the metric contract; whether an expression parses
is left to Prometheus itself (promtool in the static test, the HTTP API in the live one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<var>\$\{[^}]+\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]+\]\])
  | (?P<number>(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)(?:ms|[smhdwy])?(?:[0-9]+(?:ms|[smhdwy]))*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=@,(){}\[\]:])
    """,
    re.VERBOSE,
)

# Words that are never metric names; label lists follow the first group.
_LABEL_LIST_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = _LABEL_LIST_WORDS | {"and", "or", "unless", "bool", "offset", "atan2", "start", "end", "inf", "nan"}


@dataclass(frozen=True)
class Selector:
    metric: str  # "" when selected by matchers only
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)
    range: str | None  # text inside [...] for range selectors, else None
    function: str | None  # innermost enclosing function or aggregation, None at top level or in parentheses

    def matcher(self, label: str) -> tuple[str, str] | None:
        for name, op, value in self.matchers:
            if name == label:
                return op, value
        return None


def tokenize(expr: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot scan PromQL at column {pos + 1}: {expr[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            tokens.append((m.lastgroup, m.group()))
    return tokens


def _unquote(s: str) -> str:
    return s[1:-1]


def selectors(expr: str) -> list[Selector]:
    """Every series selector in ``expr``, left to right."""
    tokens = tokenize(expr)
    out: list[Selector] = []
    stack: list[str | None] = []  # function owning each open parenthesis
    pending_call: str | None = None  # aggregation whose "by (...)" came before its "("
    i = 0
    n = len(tokens)
    while i < n:
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < n else None
        if kind == "ident" and text in _LABEL_LIST_WORDS and nxt == "(":
            depth, i = 0, i + 1
            while i < n:  # skip the label list
                if tokens[i][1] == "(":
                    depth += 1
                elif tokens[i][1] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            i += 1
            continue
        if kind == "ident" and text not in _KEYWORDS and nxt == "(":
            stack.append(text)
            pending_call = None
            i += 2
            continue
        if kind == "ident" and text not in _KEYWORDS and nxt in ("by", "without") and i + 2 < n and tokens[i + 2][1] == "(":
            pending_call = text  # "sum by (a) (x)": the call's own parenthesis comes after the label list
            i += 1
            continue
        if text == "(":
            stack.append(pending_call)
            pending_call = None
            i += 1
            continue
        if text == ")":
            if stack:
                stack.pop()
            i += 1
            continue
        if (kind == "ident" and text not in _KEYWORDS) or text == "{":
            metric = text if kind == "ident" else ""
            j = i + 1 if kind == "ident" else i
            matchers: list[tuple[str, str, str]] = []
            if j < n and tokens[j][1] == "{":
                j += 1
                while j < n and tokens[j][1] != "}":
                    if tokens[j][1] == ",":
                        j += 1
                        continue
                    label, op, value = tokens[j][1], tokens[j + 1][1], tokens[j + 2][1]
                    matchers.append((label, op, _unquote(value)))
                    j += 3
                j += 1
            if not metric:
                metric = next((v for lab, op, v in matchers if lab == "__name__" and op == "="), "")
            rng = None
            if j < n and tokens[j][1] == "[":
                k = j + 1
                while k < n and tokens[k][1] != "]":
                    k += 1
                rng = "".join(t for _, t in tokens[j + 1:k])
                j = k + 1
            out.append(Selector(metric, tuple(matchers), rng, stack[-1] if stack else None))
            i = j
            continue
        if kind == "ident" and text == "offset":
            i += 2  # the duration that follows
            continue
        i += 1
    return out


def metric_names(expr: str) -> set[str]:
    return {s.metric for s in selectors(expr) if s.metric}
