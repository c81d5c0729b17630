"""Building blocks shared by every concern: rule dicts, links, PromQL fragments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ConfigError, duration_seconds

PB = "provider, backend"
# Held conditions: Braket devices only run inside availability windows, so "down" or "stale"
# outside one is expected. A missing window metric means "no windows" (always open).
WINDOW_CLOSED = "(max by (provider, backend) (qpu_backend_availability_window_open) == 0)"


@dataclass(frozen=True)
class Links:
    runbook_base_url: str
    grafana_base_url: str
    dashboards: dict[str, str]

    @classmethod
    def from_config(cls, config: dict) -> "Links":
        links = config["links"]
        for board in ("executive", "oncall", "qubit"):
            if board not in links["dashboards"]:
                raise ConfigError(f"links.dashboards.{board}: missing")
        return cls(links["runbook_base_url"], links["grafana_base_url"].rstrip("/"), dict(links["dashboards"]))

    def runbook(self, alert: str) -> str:
        return f"{self.runbook_base_url}{alert}.md"

    def dashboard(self, board: str, variables: tuple[str, ...] = ("provider", "backend")) -> str:
        url = f"{self.grafana_base_url}/d/{self.dashboards[board]}"
        query = "&".join(f"var-{name}={{{{ $labels.{name} }}}}" for name in variables)
        return f"{url}?{query}" if query else url


def seconds(text: str, key: str) -> int | float:
    value = duration_seconds(text, key)
    return int(value) if float(value).is_integer() else value


def number(value: Any, key: str) -> str:
    """A config number as PromQL text (no float noise such as 0.30000000000000004)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: expected a number, got {value!r}")
    return repr(value) if isinstance(value, float) else str(value)


def for_duration(section: dict, key: str) -> str:
    value = str(section["for"])
    duration_seconds(value, f"{key}.for")
    return value


def alert(
    name: str,
    expr: str,
    *,
    for_: str,
    severity: str,
    concern: str,
    summary: str,
    description: str,
    links: Links,
    dashboard: str | None = None,
    extra_labels: dict[str, str] | None = None,
    keep_firing_for: str | None = None,
) -> dict:
    if severity not in ("page", "ticket"):
        raise ConfigError(f"{name}: severity must be page or ticket, got {severity!r}")
    labels = {"severity": severity, "concern": concern, **(extra_labels or {})}
    annotations = {"summary": summary, "description": description, "runbook_url": links.runbook(name)}
    if dashboard:
        annotations["dashboard_url"] = dashboard
    rule: dict[str, Any] = {"alert": name, "expr": expr.strip() + "\n" if "\n" in expr.strip() else expr.strip()}
    if duration_seconds(for_) > 0:
        rule["for"] = for_
    if keep_firing_for is not None and duration_seconds(keep_firing_for, f"{name}.keep_firing_for") > 0:
        rule["keep_firing_for"] = keep_firing_for
    rule["labels"] = labels
    rule["annotations"] = annotations
    return rule


def record(name: str, expr: str) -> dict:
    expr = expr.strip()
    return {"record": name, "expr": expr + "\n" if "\n" in expr else expr}


def group(name: str, rules: list[dict]) -> dict:
    return {"groups": [{"name": name, "rules": rules}]}
