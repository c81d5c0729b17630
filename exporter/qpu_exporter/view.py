"""The latest known state of the fleet, held in memory.

Pollers write into it, exposition reads a consistent copy of it. Every change bumps
``version`` and wakes the renderer, which rebuilds the exposition once per change burst.
Nothing here does I/O.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .model import BackendInfo, BackendStatus, CalibrationSnapshot

BackendKey = tuple[str, str]  # (provider, backend)


@dataclass(slots=True)
class CollectorHealth:
    success: bool
    last_success: float | None
    duration: float
    last_attempt: float
    error_kind: str = ""
    error_message: str = ""


@dataclass(slots=True)
class ViewCopy:
    version: int
    backends: dict[BackendKey, BackendInfo]
    status: dict[BackendKey, BackendStatus]
    calibration: dict[BackendKey, CalibrationSnapshot]
    health: dict[tuple[str, str, str], CollectorHealth]
    providers_failed: dict[str, str] = field(default_factory=dict)
    usage: dict[str, dict] = field(default_factory=dict)  # provider -> instance usage


class FleetView:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.version = 0
        self._backends: dict[BackendKey, BackendInfo] = {}
        self._status: dict[BackendKey, BackendStatus] = {}
        self._calibration: dict[BackendKey, CalibrationSnapshot] = {}
        self._health: dict[tuple[str, str, str], CollectorHealth] = {}
        self._providers_failed: dict[str, str] = {}
        self._usage: dict[str, dict] = {}

    def _changed(self) -> None:
        self.version += 1
        self._cond.notify_all()

    def set_backend(self, info: BackendInfo) -> None:
        with self._cond:
            self._backends[(info.provider, info.backend)] = info
            self._changed()

    def set_status(self, key: BackendKey, status: BackendStatus) -> None:
        with self._cond:
            self._status[key] = status
            self._changed()

    def set_calibration(self, key: BackendKey, snap: CalibrationSnapshot) -> None:
        with self._cond:
            self._calibration[key] = snap
            self._changed()

    def set_health(self, key: tuple[str, str, str], health: CollectorHealth) -> None:
        with self._cond:
            self._health[key] = health
            self._changed()

    def set_provider_failed(self, provider: str, message: str | None) -> None:
        with self._cond:
            if message is None:
                self._providers_failed.pop(provider, None)
            else:
                self._providers_failed[provider] = message
            self._changed()

    def set_usage(self, provider: str, usage: dict) -> None:
        with self._cond:
            self._usage[provider] = usage
            self._changed()

    def retain_providers(self, kinds: set[str]) -> None:
        """Forget every backend of a provider no longer configured (after a reload)."""
        self._retain(lambda provider, backend: provider in kinds)
        with self._cond:
            for kind in [k for k in self._providers_failed if k not in kinds]:
                del self._providers_failed[kind]
            for kind in [k for k in self._usage if k not in kinds]:
                del self._usage[kind]
            self._changed()

    def retain_backends(self, provider: str, backends: set[str]) -> None:
        """Forget the provider's backends it no longer lists (discovery after a reload)."""
        self._retain(lambda p, b: p != provider or b in backends or b == "")

    def _retain(self, keep) -> None:
        with self._cond:
            for table in (self._backends, self._status, self._calibration, self._health):
                for key in [k for k in table if not keep(k[0], k[1])]:
                    del table[key]
            self._changed()

    def touch(self) -> None:
        """Something outside the view (persisted counters) changed."""
        with self._cond:
            self._changed()

    def copy(self) -> ViewCopy:
        with self._cond:
            return ViewCopy(
                self.version,
                dict(self._backends),
                dict(self._status),
                dict(self._calibration),
                dict(self._health),
                dict(self._providers_failed),
                dict(self._usage),
            )

    def wait_for_change(self, seen_version: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self.version != seen_version, timeout=timeout)
            return self.version
