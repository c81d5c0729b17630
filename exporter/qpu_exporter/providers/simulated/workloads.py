"""Workloads of the simulated fleet: who submits its jobs, and how their jobs differ.

With ``workload_tags: [chem, finance, ml]`` a simulated job carries a ``team`` tag drawn
from those values (equal shares), about a tenth carry none. Each tag, by its position in
the list, gets a profile that scales the backend's own behaviour, so the per-workload board
tells a story while the backend totals stay what the fleet's dynamics make them:

===  =========  ==========  ==========  ============================================
pos  failures   queue time  job length  story (for the default names)
===  =========  ==========  ==========  ============================================
0    x1.0       x1.0        x1.0        chem: the pipeline whose circuits fail most,
                                        mostly as invalid_input (a client problem)
1    x0.3       x0.5        x0.5        finance: small, reliable, prioritised jobs
2    x0.6       x1.8        x1.5        ml: big batches that wait longest and spend most
===  =========  ==========  ==========  ============================================

Positions beyond the third reuse the profiles in turn. No workload fails more often than the
backend's base failure probability, so a fleet within its job-success objective keeps every
workload within it, whatever that base is (the backend's own failure rate drops to about 0.7x
the base with the three default tags). Over the three tags plus the untagged tenth the
job-length factors average 1, so spend is the base one.

Draws come from their own generator (seeded by seed, backend and step), so a fleet without
workload tags evolves exactly as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SIM_TAG_KEY = "team"
UNTAGGED_SHARE = 0.1
DEMO_TAGS = ("chem", "finance", "ml")


@dataclass(frozen=True, slots=True)
class Profile:
    failure: float  # multiplies the backend's failure probability (at most 1: see above)
    queue: float  # multiplies the drawn queue time
    execution: float  # multiplies the drawn execution time (and so usage and cost)
    invalid_input_share: float = 0.0  # share of its failures reported as invalid_input


UNTAGGED_PROFILE = Profile(1.0, 1.0, 1.0)
PROFILES = (
    Profile(1.0, 1.0, 1.0, invalid_input_share=0.7),
    Profile(0.3, 0.5, 0.5),
    Profile(0.6, 1.8, 1.5),
)
# Budget headroom of the demo config: expected daily spend x this (ml runs closest to its budget).
DEMO_HEADROOM = (4.0, 5.0, 2.5)
# ... and of the fleet's own daily budget: three times its expected spend alerts on real
# overspend only (docs/alerts-quality.md).
DEMO_FLEET_HEADROOM = 3.0


def profile(tags: list[str], workload: str | None) -> Profile:
    return UNTAGGED_PROFILE if workload is None else PROFILES[tags.index(workload) % len(PROFILES)]


def draw_workload(tags: list[str], rng: np.random.Generator) -> str | None:
    """The team of one job: untagged with probability UNTAGGED_SHARE, else a tag uniformly."""
    if not tags or rng.random() < UNTAGGED_SHARE:
        return None
    return tags[int(rng.integers(len(tags)))]


def demo_config(speedup: float) -> dict:
    """The `providers`, `workloads` and `cost` entries of the no-config demo fleet: the default
    backends with DEMO_TAGS, a daily budget per workload at DEMO_HEADROOM times what it is
    expected to spend per wall-clock day at ``speedup`` (Prometheus measures spend per
    wall-clock day: at 60x that is sixty simulated days), the fleet's at DEMO_FLEET_HEADROOM
    times, and an ml queue objective of 3 h (batch work) where the fleet's is 2 h."""
    from ..fake_snapshots import DEFAULT_FLEET
    from .provider import JOBS_PER_HOUR, expected_cost_per_job_usd

    tags = list(DEMO_TAGS)
    fleet_jobs_per_day = JOBS_PER_HOUR * 24 * speedup * len(DEFAULT_FLEET)
    jobs_per_day = fleet_jobs_per_day * (1 - UNTAGGED_SHARE) / len(tags)
    budgets = {}
    for i, tag in enumerate(tags):
        spend = jobs_per_day * expected_cost_per_job_usd(profile(tags, tag).execution)
        budgets[tag] = {"usd_per_day": _round2(spend * DEMO_HEADROOM[i])}
    # The job-length factors average 1 over the tags and the untagged share: spend is the base one.
    fleet_spend = fleet_jobs_per_day * expected_cost_per_job_usd()
    return {
        "providers": [{"kind": "simulated", "speedup": speedup, "workload_tags": tags}],
        "cost": {"daily_budget_usd": _round2(fleet_spend * DEMO_FLEET_HEADROOM)},
        "workloads": {"tag": SIM_TAG_KEY, "max": 50, "budgets": budgets,
                      "objectives": {"ml": {"queue_seconds": 3 * 3600}}},
    }


def _round2(x: float) -> float:
    """Two significant digits: a budget someone would write."""
    digits = 1 - int(math.floor(math.log10(x)))
    return float(round(x, digits))
