"""Amazon Braket (``kind: braket``) through boto3 and the Braket SDK."""

from __future__ import annotations

from ..registry import ProviderSpec, register_provider
from .config import BraketProviderConfig


def _build(config: BraketProviderConfig, *, origin: float, clock):
    from .provider import BraketProvider  # loads boto3 and the Braket SDK only when configured

    return BraketProvider(config, clock=clock)


def _check(config: BraketProviderConfig) -> None:
    from .prices import load_price_table  # raises PriceTableError naming the file and key

    load_price_table(config.price_table)


register_provider(ProviderSpec("braket", BraketProviderConfig, _build, check=_check))
