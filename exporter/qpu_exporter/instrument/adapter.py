"""What the instrumentation needs from a wrapped SDK object, one subclass per SDK family.

The core (``core.py``) never looks inside an SDK: it asks an adapter who the backend is, when
it was calibrated, which circuits a ``run(...)`` call submits, and what came back. Adapters
never record metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

# Outcomes of a result() call, as adapters report them.
OK, FAILED, PENDING = "ok", "failed", "pending"


@dataclass
class CircuitRun:
    """One circuit execution of a submission (a pub element, a Braket task): what was sent."""

    name: str | None  # the user's name for it, if any
    fingerprint: str | None  # rb.circuits canonical fingerprint (or a program hash, see adapters)
    circuit: Any = None  # the qiskit QuantumCircuit it stands for: reference and expected metadata
    label: str = ""  # the metric label value, assigned by the core (capped)
    extra: dict = field(default_factory=dict)  # adapter-private (e.g. Braket's measured qubits)


@dataclass
class Outcome:
    status: str  # OK | FAILED | PENDING (result() returned before the job ended, e.g. a timeout)
    counts: list[dict[str, int] | None] = field(default_factory=list)  # per CircuitRun, qiskit bit order


def epoch(value: Any) -> float | None:
    """A datetime (naive = UTC, as the Braket schemas give them) as Unix seconds."""
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


class Adapter:
    provider: str = "local"
    backend: str = "unknown"

    def __init__(self, target: Any, calibration_refresh: float):
        self.target = target
        self.calibration_refresh = calibration_refresh
        self._calibration: float | None = None
        self._calibration_fetched: float | None = None  # monotonic

    # --- the backend -------------------------------------------------------------------------
    def calibration_time(self) -> float | None:
        """The backend's calibration time (Unix seconds) now, refreshed from the provider at most
        every ``calibration_refresh`` seconds; None when the backend publishes none."""
        now = time.monotonic()
        if self._calibration_fetched is None or now - self._calibration_fetched >= self.calibration_refresh:
            refresh = self._calibration_fetched is not None or self.refresh_on_first_use
            self._calibration_fetched = now
            self._calibration = self.fetch_calibration_time(refresh)
        return self._calibration

    refresh_on_first_use = False

    def fetch_calibration_time(self, refresh: bool) -> float | None:
        return None

    def seed(self, args: tuple, kwargs: dict) -> int | None:
        return None

    # --- a run(...) call ---------------------------------------------------------------------
    def prepare(self, args: tuple, kwargs: dict) -> tuple[tuple, dict, Callable[[], None] | None]:
        """The arguments to call the SDK's run with (the workload tag added, iterables made
        lists so they can be read twice) and a function undoing any change to the target."""
        return args, kwargs, None

    def circuits(self, args: tuple, kwargs: dict) -> list[CircuitRun]:
        raise NotImplementedError

    def outcome(self, job: Any, result: Any, runs: list[CircuitRun]) -> Outcome:
        raise NotImplementedError

    def finished(self, job: Any) -> bool:
        """After result() raised: has the job ended (so it failed), or is it still running?"""
        return True

    def job_id(self, job: Any) -> str | None:
        return None
