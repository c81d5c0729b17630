"""Config of the simulated fleet (``kind: simulated``): backends, seed, speedup, dynamics and
deterministic incidents."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ...config_types import Duration, Strict
from ..fake_snapshots import DEFAULT_FLEET, available_snapshots


IncidentKind = Literal[
    "t1_drop", "readout_degrade", "gate_error_rise", "offline", "queue_spike", "job_failures",
    "maintenance",
]

# What `factor` means per kind when it is not given.
INCIDENT_DEFAULT_FACTOR = {
    "t1_drop": 0.2,  # T1 (and T2) multiplied by this
    "readout_degrade": 3.0,  # readout error multiplied
    "gate_error_rise": 3.0,  # gate error multiplied on gates touching the qubit(s)
    "offline": 1.0,
    "maintenance": 1.0,
    "queue_spike": 20.0,  # pending jobs multiplied
    "job_failures": 0.5,  # probability that a finishing job fails
}


class Incident(Strict):
    """A deterministic fault injected into the simulated fleet. ``at`` and ``duration``
    are simulated time measured from the exporter's start (so with speedup 60, ``at: 60s``
    happens one wall-clock second after start)."""

    backend: str
    kind: IncidentKind
    qubit: int | None = Field(default=None, ge=0)
    factor: float | None = Field(default=None, ge=0)
    at: Duration = 0.0
    duration: Duration = 3600.0

    @property
    def effective_factor(self) -> float:
        return INCIDENT_DEFAULT_FACTOR[self.kind] if self.factor is None else self.factor


class ScaleConfig(Strict):
    """A synthetic fleet for load tests and benchmarks: ``backends`` backends named
    ``synthetic_000``... of ``qubits`` qubits each, derived deterministically from the
    provider's first listed snapshot (tiled and resampled, see providers/simulated/synthetic.py)."""

    backends: int = Field(ge=1, le=100_000)
    qubits: int = Field(ge=2, le=100_000)


class SimulatedProviderConfig(Strict):
    kind: Literal["simulated"]
    backends: list[str] = Field(default_factory=lambda: list(DEFAULT_FLEET))
    seed: int = 7
    speedup: float = Field(default=1.0, gt=0, le=1_000_000)
    # How often (simulated time) the fleet re-measures T1, T2 and gate errors; readout is
    # refreshed five times as often. IBM publishes roughly daily.
    measurement_interval: Duration = Field(default=86400.0, ge=60)
    # "calm" keeps the per-qubit noise and gate creep but switches off the random events
    # (TLS dips, outages, new dead couplers), so injected incidents are the only faults:
    # for tests, demos and tuning alert thresholds.
    dynamics: Literal["realistic", "calm"] = "realistic"
    incidents: list[Incident] = Field(default_factory=list)
    # When set, the fleet is the synthetic one instead of the listed backends (the first
    # listed backend is the template).
    scale: ScaleConfig | None = None
    # Workload tag values its jobs carry as a `team` tag (about a tenth stay untagged), each
    # with its own failure rate, queue time and job size (providers/simulated/workloads.py).
    workload_tags: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("workload_tags")
    @classmethod
    def _workload_tag_values(cls, names: list[str]) -> list[str]:
        from ...workloads import RESERVED, is_clean

        for name in names:
            if not is_clean(name) or name in RESERVED:
                raise ValueError(f"{name!r} is not a usable workload name (letters, digits, '-', '_', '.'; "
                                 f"not {' or '.join(RESERVED)})")
        if len(set(names)) != len(names):
            raise ValueError("workload tags must be unique")
        return names

    def fleet(self) -> list[str]:
        """Names of the backends this provider simulates."""
        if self.scale is None:
            return list(self.backends)
        from .synthetic import synthetic_names

        return synthetic_names(self.scale.backends)

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, names: list[str]) -> list[str]:
        known = available_snapshots()
        if not names:
            raise ValueError("at least one backend is required")
        for name in names:
            if name not in known:
                close = [k for k in known if name.replace("fake_", "") in k][:3]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ValueError(f"unknown backend {name!r}{hint}")
        if len(set(names)) != len(names):
            raise ValueError("backend names must be unique")
        return names

    @model_validator(mode="after")
    def _incidents_on_known_backends(self) -> SimulatedProviderConfig:
        fleet = set(self.fleet())
        for i, inc in enumerate(self.incidents):
            if inc.backend not in fleet:
                raise ValueError(
                    f"incidents[{i}].backend: {inc.backend!r} is not one of this provider's backends"
                )
        return self
