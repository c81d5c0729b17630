"""Spend against the daily budget (rules/cost.yml).

Each level fires in its own band [level, next level) so that spend crossing 75% replaces the 50%
ticket instead of adding a second one; the last level is open-ended.
"""

from __future__ import annotations

from .common import PB, Links, alert, for_duration, group, number, record
from .config import ConfigError


def build(config: dict, links: Links) -> dict:
    cfg = config["cost"]
    window = str(cfg["window"])
    spent = f"fleet:qpu_cost_usd:increase{window}"
    used = f"fleet:qpu_cost_budget_used:ratio{window}"
    levels = sorted(cfg["levels"], key=lambda level: level["percent"])
    rules = [
        record(f"provider_backend:qpu_cost_usd:increase{window}", f"max by ({PB}) (increase(qpu_cost_usd_total[{window}]))"),
        record(spent, f"sum(max by ({PB}) (increase(qpu_cost_usd_total[{window}])))"),
        # A zero budget means "no budget configured", not "always over budget".
        record(used, f"{spent}\n/ on ()\n(max(qpu_cost_budget_daily_usd) > 0)"),
    ]
    for i, level in enumerate(levels):
        key = f"cost.levels[{i}]"
        for field in ("percent", "severity", "for"):
            if field not in level:
                raise ConfigError(f"{key}.{field}: missing")
        lower = number(level["percent"] / 100, f"{key}.percent")
        expr = f"{used} >= {lower}"
        if i + 1 < len(levels):
            expr += f" < {number(levels[i + 1]['percent'] / 100, f'cost.levels[{i + 1}].percent')}"
        rules.append(
            alert(
                "QPUCostBudgetBurn",
                expr,
                for_=for_duration(level, key),
                severity=str(level["severity"]),
                concern="cost",
                summary=f"QPU spend over the last {window} passed {level['percent']}% of the daily budget.",
                description=(
                    "QPU jobs spent {{ $value | humanizePercentage }} of the daily budget "
                    f"(qpu_cost_budget_daily_usd) over the last {window}."
                ),
                links=links,
                dashboard=links.dashboard("executive", ()),
                extra_labels={"budget_percent": str(level["percent"])},
            )
        )
    rules.append(_cost_unknown(cfg, links))
    return group("qpu-cost", rules)


def _cost_unknown(cfg: dict, links: Links) -> dict:
    """Jobs counted in qpu_jobs_cost_unknown_total within the window. A series that appears
    with its first count has no earlier sample for increase() to compare with, so a series
    that did not exist one window ago counts too."""
    section = cfg["unknown"]
    window = str(section["window"])
    by = f"{PB}, reason"
    expr = (
        f"max by ({by}) (increase(qpu_jobs_cost_unknown_total[{window}])) > 0\n"
        f"or\n"
        f"max by ({by}) (qpu_jobs_cost_unknown_total unless qpu_jobs_cost_unknown_total offset {window}) > 0"
    )
    return alert(
        "QPUJobCostUnknown",
        expr,
        for_=for_duration(section, "cost.unknown"),
        severity="ticket",
        concern="cost",
        summary="Jobs on {{ $labels.provider }}/{{ $labels.backend }} have a cost the exporter cannot know "
                "({{ $labels.reason }}).",
        description=(
            "{{ $value | humanize }} job(s) on {{ $labels.provider }}/{{ $labels.backend }} finished within the last "
            f"{window} with a cost that is not in qpu_cost_usd_total (reason {{{{ $labels.reason }}}}): spend and "
            "budget alerts under-count them until a price is added."
        ),
        links=links,
        dashboard=links.dashboard("executive", ()),
    )
