"""IBM Quantum (``kind: ibm``) through qiskit-ibm-runtime."""

from __future__ import annotations

from ..registry import ProviderSpec, register_provider
from .config import IbmProviderConfig


def _build(config: IbmProviderConfig, *, origin: float, clock):
    from .provider import IbmProvider  # loads qiskit-ibm-runtime only when configured

    return IbmProvider(config, clock=clock)


register_provider(ProviderSpec("ibm", IbmProviderConfig, _build))
