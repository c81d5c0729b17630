"""Splitting a fleet across exporter instances by a stable hash.

Backend (provider, backend) belongs to shard ``sha256("provider/backend") mod N``. The hash
depends on nothing but the two names, so every instance, on any machine, in any process,
agrees on the owner of every backend: N instances started with ``--shard 0/N`` ...
``--shard N-1/N`` poll disjoint sets whose union is the whole fleet, and a backend keeps its
shard when others come and go. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 0-based
    count: int

    def owns(self, provider: str, backend: str) -> bool:
        return shard_of(provider, backend, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(provider: str, backend: str, count: int) -> int:
    digest = hashlib.sha256(f"{provider}/{backend}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse_shard(spec: str) -> Shard:
    """'i/N' with 0 <= i < N -> Shard; ValueError naming the problem otherwise."""
    m = _SPEC.match(spec) if isinstance(spec, str) else None
    if not m:
        raise ValueError(f"invalid shard {spec!r} (want i/N, e.g. 0/3)")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1:
        raise ValueError(f"invalid shard {spec!r}: N must be at least 1")
    if index >= count:
        raise ValueError(f"invalid shard {spec!r}: i must be between 0 and {count - 1}")
    return Shard(index, count)
