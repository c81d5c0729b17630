"""The probe budget ledger: a hard cap under concurrency, retries and restarts (no Aer here)."""

from __future__ import annotations

import threading

import pytest

from qpu_exporter.config import BudgetConfig
from qpu_exporter.probes.budget import WINDOW_SECONDS, ProbeBudget
from qpu_exporter.store import Store


class Clock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def _used(store: Store, clock: Clock, backend: str = "b1") -> tuple[float, ...]:
    return store.probe_budget_used("simulated", backend, clock() - WINDOW_SECONDS)


def test_concurrent_triggers_never_exceed_the_cap(tmp_path):
    """40 threads on two Store connections to one file (as exporter + CLI) race for 10 slots."""
    clock = Clock()
    cfg = BudgetConfig(shots_per_day=1000, usd_per_day=1e9)
    stores = [Store(tmp_path / "s.db"), Store(tmp_path / "s.db")]
    budgets = [ProbeBudget(s, cfg, clock) for s in stores]
    granted, start = [], threading.Barrier(40)

    def worker(i: int) -> None:
        start.wait()
        rid, _ = budgets[i % 2].reserve("simulated", "b1", 100, 0.0)
        if rid is not None:
            granted.append(rid)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(granted) == 10 and len(set(granted)) == 10
    assert _used(stores[0], clock)[0] == 1000
    assert budgets[1].remaining_ratio("simulated", "b1") == 0.0
    for s in stores:
        s.close()


def test_restart_mid_window_keeps_the_spend_and_the_window_rolls(tmp_path):
    clock = Clock()
    cfg = BudgetConfig(shots_per_day=1000, usd_per_day=10.0)
    store = Store(tmp_path / "s.db")
    budget = ProbeBudget(store, cfg, clock)
    assert budget.reserve("simulated", "b1", 600, 1.0)[0] is not None
    store.close()

    clock.t += 3600  # restart an hour later: the reservation still counts
    store = Store(tmp_path / "s.db")
    budget = ProbeBudget(store, cfg, clock)
    assert budget.remaining_ratio("simulated", "b1") == pytest.approx(0.4)
    rid, cap = budget.reserve("simulated", "b1", 600, 1.0)
    assert rid is None and cap == "shots_per_day"
    assert budget.reserve("simulated", "b1", 400, 1.0)[0] is not None
    assert budget.reserve("simulated", "b1", 1, 0.0)[1] == "shots_per_day"

    clock.t += WINDOW_SECONDS - 3600 + 1  # the first reservation leaves the rolling window
    assert budget.remaining_ratio("simulated", "b1") == pytest.approx(0.6)
    assert budget.reserve("simulated", "b1", 600, 1.0)[0] is not None
    assert _used(store, clock)[0] <= 1000
    store.close()


def test_usd_and_global_caps_and_remaining_is_the_minimum(tmp_path):
    clock = Clock()
    cfg = BudgetConfig(shots_per_day=10_000, usd_per_day=5.0, global_shots_per_day=15_000, global_usd_per_day=8.0)
    store = Store(tmp_path / "s.db")
    budget = ProbeBudget(store, cfg, clock)
    assert budget.reserve("simulated", "b1", 1000, 4.0)[0] is not None
    # USD binds b1 (0.2 left) although shots are at 0.9.
    assert budget.remaining_ratio("simulated", "b1") == pytest.approx(0.2)
    assert budget.reserve("simulated", "b1", 10, 1.5)[1] == "usd_per_day"
    # b2 has its own per-backend caps but shares the global ones.
    assert budget.reserve("simulated", "b2", 1000, 4.5)[1] == "global_usd_per_day"
    assert budget.remaining_ratio("simulated", "b2") == pytest.approx(0.5)  # global USD: 4 of 8 used
    assert budget.reserve("simulated", "b2", 1000, 3.0)[0] is not None
    assert budget.remaining_ratio("simulated", "b2") == pytest.approx(1 / 8)
    store.close()


def test_zero_budget_blocks_everything(tmp_path):
    store = Store(tmp_path / "s.db")
    budget = ProbeBudget(store, BudgetConfig(shots_per_day=0, usd_per_day=0), Clock())
    assert budget.reserve("simulated", "b1", 1, 0.0)[0] is None
    assert budget.remaining_ratio("simulated", "b1") == 0.0
    store.close()
