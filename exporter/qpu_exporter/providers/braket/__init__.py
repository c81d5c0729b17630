"""Amazon Braket (``kind: braket``) through boto3 and the Braket SDK."""

from __future__ import annotations

from ..registry import ProviderSpec, register_provider
from .config import BraketProviderConfig


def _build(config: BraketProviderConfig, *, origin: float, clock):
    from .provider import BraketProvider  # loads boto3 and the Braket SDK only when configured

    return BraketProvider(config, clock=clock)


register_provider(ProviderSpec("braket", BraketProviderConfig, _build))
