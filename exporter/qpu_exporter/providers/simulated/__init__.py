"""The embedded simulated fleet (``kind: simulated``): real IBM calibration snapshots evolved
in time, the default when the config names no provider."""

from __future__ import annotations

from ..registry import ProviderSpec, register_provider
from .config import SimulatedProviderConfig


def _build(config: SimulatedProviderConfig, *, origin: float, clock):
    from .provider import SimulatedProvider

    return SimulatedProvider(config, origin=origin, clock=clock, measurement_interval=config.measurement_interval)


def _check_with(config: SimulatedProviderConfig, whole) -> None:
    """Tags the fleet makes up itself must be counted: refused unless a workloads: block reads them."""
    from .workloads import SIM_TAG_KEY

    if config.workload_tags and (whole.workloads is None or whole.workloads.tag != SIM_TAG_KEY):
        raise ValueError(f"workload_tags: the simulated jobs carry {SIM_TAG_KEY!r} tags, which only count with a "
                         f"workloads: block whose tag is {SIM_TAG_KEY!r}")


def _demo() -> dict:
    from .workloads import demo_config

    return demo_config(speedup=60.0)


register_provider(ProviderSpec("simulated", SimulatedProviderConfig, _build,
                               default_config={"kind": "simulated", "speedup": 60.0},
                               check_with_config=_check_with, demo_config=_demo))
