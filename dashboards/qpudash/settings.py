"""What the dashboards take from the alerting config, so thresholds and links have one source.

alerts/config.yaml holds every alert threshold, the runbook base URL and the dashboard uids; the
dashboards draw the same lines (cost levels, SLO objective, staleness limits) and link to the same
runbooks, so changing a threshold there and re-rendering moves both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
ALERTS_CONFIG = REPO / "alerts" / "config.yaml"
RUNBOOKS = REPO / "alerts" / "runbooks"

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(text: str) -> float:
    """Seconds in a Prometheus duration such as "90s", "1h30m" or "3d"."""
    parts = _DURATION_PART.findall(str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ValueError(f"{text!r} is not a Prometheus duration")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


@dataclass(frozen=True)
class Settings:
    runbook_base_url: str
    uids: dict[str, str]  # executive, oncall, qubit, workloads, runs
    runbook_alerts: tuple[str, ...]  # alert names that have a runbook file
    slo_objective: float  # job success objective, e.g. 0.99
    slo_period: str  # the SLO period the burn-rate factors were computed for
    page_burn_factor: float  # the fastest page burn-rate factor (14.4)
    cost_levels: tuple[float, ...]  # budget shares that raise an alert (0.5, 0.75, 0.9)
    calibration_stale_after: float  # seconds (provider default)
    collector_stale_after: dict[str, float]  # collector -> seconds
    probe_stale_after: float  # seconds
    queue_time_threshold: float  # seconds: the queue-time SLO threshold
    queue_time_quantile: float


def load_settings(config_path: Path = ALERTS_CONFIG, runbooks: Path = RUNBOOKS) -> Settings:
    cfg = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    slo = cfg["jobs"]["failure_slo"]
    return Settings(
        runbook_base_url=cfg["links"]["runbook_base_url"],
        uids=dict(cfg["links"]["dashboards"]),
        runbook_alerts=tuple(sorted(p.stem for p in runbooks.glob("*.md"))),
        slo_objective=float(slo["objective"]),
        # The burn-rate factors in alerts/config.yaml are the SRE-workbook ones for a 30-day period.
        slo_period="30d",
        page_burn_factor=max(float(w["factor"]) for w in slo["windows"] if w["severity"] == "page"),
        cost_levels=tuple(sorted(float(level["percent"]) / 100 for level in cfg["cost"]["levels"])),
        calibration_stale_after=duration_seconds(cfg["calibration"]["stale"]["default_after"]),
        collector_stale_after={
            name: duration_seconds(after) for name, after in cfg["exporter"]["data_stale"]["after_by_collector"].items()
        },
        probe_stale_after=duration_seconds(cfg["probes"]["stale"]["after"]),
        queue_time_threshold=duration_seconds(cfg["jobs"]["queue_time_slo"]["threshold"]),
        queue_time_quantile=float(cfg["jobs"]["queue_time_slo"]["quantile"]),
    )
