"""Provider construction from config."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import Config, SimulatedProviderConfig
from ..model import BackendInfo, BackendStatus, CalibrationSnapshot, JobRecord
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
    from .simulated.provider import SimulatedProvider

    out: list[Provider] = []
    for p in config.providers:
        if isinstance(p, SimulatedProviderConfig):
            out.append(SimulatedProvider(p, origin=origin, clock=clock, measurement_interval=p.measurement_interval))
            continue
        # Imported only when configured: the simulated fleet never loads boto3 or the
        # runtime service. Construction does no network I/O (both connect on first poll).
        try:
            if p.kind == "ibm":
                from .ibm.provider import IbmProvider

                out.append(IbmProvider(p, clock=clock))
            elif p.kind == "braket":
                from .braket.provider import BraketProvider

                out.append(BraketProvider(p, clock=clock))
            else:
                out.append(UnavailableProvider(p.kind, f"the {p.kind} provider is not implemented in this version"))
        except ImportError as exc:
            out.append(UnavailableProvider(p.kind, f"the {p.kind} provider needs {exc.name}, which is not installed"))
    return out
