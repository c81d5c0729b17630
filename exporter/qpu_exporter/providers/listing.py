"""Where a network provider's next job listing starts (pure bookkeeping, shared by the IBM and
Braket providers, whose APIs list jobs by creation time)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ListingWindow:
    primed: bool = False  # a listing of this backend completed in this process
    floor_hint: float | None = None  # created time of the oldest job still unfinished or deferred
    oldest_unfinished: float | None = None  # created time of the oldest queued/running job seen

    def floor(self, now: float, since: float | None, lookback: float) -> float:
        """Creation time to list from: ``lookback`` before now on a first poll, and once more
        before ``since`` after a restart (which jobs were queued is not known yet), never
        after a job the last listing left unfinished or deferred."""
        if since is None:
            floor = now - lookback
        elif not self.primed:
            floor = since - lookback
        else:
            floor = since
        return floor if self.floor_hint is None else min(floor, self.floor_hint)

    def listed(self, unfinished: float | None, deferred: float | None) -> None:
        """After a listing: the oldest unfinished job and the oldest one left for later."""
        hints = [t for t in (unfinished, deferred) if t is not None]
        self.floor_hint = min(hints) if hints else None
        self.oldest_unfinished = unfinished
        self.primed = True
