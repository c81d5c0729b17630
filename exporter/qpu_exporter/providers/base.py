"""The one interface every provider implements.

A provider turns one vendor's API (or the embedded simulation) into the records of
``qpu_exporter.model``. It knows nothing of storage, statistics or exposition. Calls may
block on the network; the scheduler runs them on worker threads with bounded concurrency,
one backend at a time per call, so one slow or broken backend never holds up the others.

Each provider lives in its own package (``providers/<kind>/``) with its config model,
discovery, pricing and error classes, and registers itself in ``registry``; generic code
(config, scheduler, budget, exposition) only ever talks to this interface.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from ..model import BackendInfo, BackendStatus, CalibrationSnapshot, JobRecord


class ProviderError(Exception):
    """A poll failed. ``kind`` is a short, bounded class used as a metric label
    (timeout, http_5xx, rate_limited, auth, malformed, unavailable, ...). The message must
    never contain a credential."""

    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after  # seconds the provider asked us to wait (HTTP 429)


class ProviderSetupError(Exception):
    """A provider cannot start with its config (e.g. an unreadable price table): one line
    naming the file or key; the CLI exits 2 with it."""


class Provider(abc.ABC):
    #: the value of the ``provider`` label on every series this provider produces
    kind: str

    @abc.abstractmethod
    def backends(self) -> list[BackendInfo]:
        """Backends this provider watches. Cheap after the first call."""

    @abc.abstractmethod
    def status(self, backend: str) -> BackendStatus:
        """Operational state and queue depth, now."""

    @abc.abstractmethod
    def calibration(self, backend: str) -> CalibrationSnapshot:
        """The provider's current calibration table for the backend."""

    @abc.abstractmethod
    def jobs(self, backend: str, since: float | None) -> list[JobRecord]:
        """Jobs that reached a final state after ``since`` (Unix seconds; None: the
        provider's default look-back). May return jobs already seen: the store deduplicates
        by job id, so providers may err on the side of overlap, never of gaps."""

    def availability_window_open(self, backend: str) -> bool:
        """Whether the backend is inside its provider's availability window now (from data
        the last status poll fetched; no request). Providers without windows: always."""
        return True

    def oldest_unfinished(self, backend: str) -> float | None:
        """Creation time (Unix seconds) of the oldest job the last ``jobs`` call saw still
        queued or running, None when there was none. The scheduler persists it and lists
        jobs from there after a restart, so a job queued since before the restart is still
        recorded when it finishes."""
        return None

    def probe_cost_usd(self, backend: str, usage_seconds: float, shots_per_circuit: Sequence[int]) -> float | None:
        """What running probe circuits would cost (USD) at this provider's prices: one
        circuit per entry of ``shots_per_circuit``, ``usage_seconds`` the estimated billed QPU
        time of them all. None when the price cannot be known (the budget then refuses to
        spend: a cap it cannot check is no cap)."""
        return None

    def instance_usage(self) -> dict | None:
        """The account's QPU-time allowance ({consumed_seconds, limit_seconds,
        remaining_seconds, ...}), or None when the provider has no such notion."""
        return None

    def run_circuits(
        self,
        backend: str,
        circuits: Sequence[Any],
        shots: int,
        seed: int,
        calibration: CalibrationSnapshot | None = None,
    ) -> list[dict[str, int]]:
        """Execute probe circuits (qiskit ``QuantumCircuit`` on 1-2 logical qubits whose
        ``metadata["physical_qubits"]`` names the device qubits) and return counts per circuit
        in input order (qiskit bitstring keys). ``calibration`` is the snapshot the probe was
        designed under (a simulator builds its noise from it); ``seed`` makes a simulator
        reproducible. Blocking. Providers that cannot execute raise ProviderError("unsupported")."""
        raise ProviderError("unsupported", f"the {self.kind} provider cannot run probe circuits in this version")

    def probe_wait_seconds(self) -> float:
        """The longest one ``run_circuits`` call may wait for remote jobs (queue and run), so
        the probe runner holds the backend's lease at least that long. 0: nothing remote."""
        return 0.0

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions or threads."""
