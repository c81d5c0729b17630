"""Probe results recorded by other processes on the same database: replicas, shards' CLI runs.

Probe records are shared state (store/tables.py); the process that ran a probe publishes its
result at once. Every other exporter follows the records by id (they commit in id order) and
publishes the same gauges, feeds the same drift samples and reads the same shared probe
counters, so each replica exports what a single exporter would and ``max by`` over a replica
pair gives a single exporter's answer (docs/state.md).
"""

from __future__ import annotations

from collections.abc import Callable

from ..logs import get_logger
from ..store import StorageError, Store
from .feed import ProbeFeed, drift_samples

log = get_logger(__name__)

FOLLOW_SECONDS = 5.0  # how stale another replica's probe result may be here
_PAGE = 200


class SharedProbes:
    def __init__(self, store: Store, feed: ProbeFeed, *,
                 on_probe_value: Callable[[str, str, str, float, float], None] | None = None,
                 owns: Callable[[str, str], bool] | None = None, on_change: Callable[[], None] = lambda: None):
        self.store = store
        self.feed = feed
        self.on_probe_value = on_probe_value
        self.owns = owns or (lambda provider, backend: True)
        self.on_change = on_change
        self.last_id = 0

    def load(self) -> None:
        """At start: the newest result of every target this exporter polls."""
        self.last_id = self.store.last_probe_run_id()
        self.feed.load([r for r in self.store.latest_probe_results() if self.owns(r["provider"], r["backend"])])

    def follow(self) -> int:
        """Publish the records committed since the last call; returns how many were results."""
        try:
            return self._follow()
        except StorageError as exc:  # the database is away: the next call catches up
            log.warning("probe records not followed", error=str(exc))
            return 0

    def _follow(self) -> int:
        published = 0
        while True:
            rows = self.store.probe_runs_after(self.last_id, limit=_PAGE)
            for row in rows:
                self.last_id = max(self.last_id, row["id"])
                result = row["record"].get("result")
                if row["status"] != "ok" or not result or not self.owns(row["provider"], row["backend"]):
                    continue
                self.feed.load([row])
                if self.on_probe_value:
                    for series, value in drift_samples(row["qubits"], result):
                        self.on_probe_value(row["provider"], row["backend"], series, value, row["finished_at"])
                published += 1
            if len(rows) < _PAGE:
                break
        moved = self.store.refresh_shared_counters()
        if published or moved:
            self.on_change()
        return published
