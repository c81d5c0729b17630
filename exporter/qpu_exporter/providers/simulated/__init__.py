"""The embedded simulated fleet (``kind: simulated``): real IBM calibration snapshots evolved
in time, the default when the config names no provider."""

from __future__ import annotations

from ..registry import ProviderSpec, register_provider
from .config import SimulatedProviderConfig


def _build(config: SimulatedProviderConfig, *, origin: float, clock):
    from .provider import SimulatedProvider

    return SimulatedProvider(config, origin=origin, clock=clock, measurement_interval=config.measurement_interval)


register_provider(ProviderSpec("simulated", SimulatedProviderConfig, _build,
                               default_config={"kind": "simulated", "speedup": 60.0}))
