"""Provider construction from config."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import Config
from ..model import BackendInfo, BackendStatus, CalibrationSnapshot, JobRecord
from . import registry
from .base import Provider, ProviderError


class UnavailableProvider(Provider):
    """Stands in for a configured provider this build cannot poll; every poll fails with a
    clear reason, so the collector metrics show it instead of the exporter refusing to run."""

    def __init__(self, kind: str, reason: str):
        self.kind = kind
        self.reason = reason

    def _fail(self):
        raise ProviderError("unavailable", self.reason)

    def backends(self) -> list[BackendInfo]:
        self._fail()

    def status(self, backend: str) -> BackendStatus:
        self._fail()

    def calibration(self, backend: str) -> CalibrationSnapshot:
        self._fail()

    def jobs(self, backend: str, since: float | None) -> list[JobRecord]:
        self._fail()


def build_providers(config: Config, origin: float, clock: Callable[[], float] = time.time) -> list[Provider]:
    """One provider per config entry, built by the provider's own package (the registry).
    Construction does no network I/O (network providers connect on their first poll)."""
    out: list[Provider] = []
    for p in config.providers:
        spec = registry.provider_spec(p.kind)
        if spec is None:  # the config was validated against a provider since unregistered
            out.append(UnavailableProvider(p.kind, f"the {p.kind} provider is not registered in this process"))
            continue
        try:
            out.append(spec.build(p, origin=origin, clock=clock))
        except ImportError as exc:
            out.append(UnavailableProvider(p.kind, f"the {p.kind} provider needs {exc.name}, which is not installed"))
    return out
