"""Braket price table: what a finished QPU task cost, in USD, from list prices.

Braket bills a QPU task a per-task fee plus a per-shot fee (Amazon Braket pricing page);
tasks that FAILED or were CANCELLED are not billed, and tasks run inside a Braket Direct
reservation are paid by the reservation (per reserved hour), not per task. The shipped
table (``data/prices.json``) names its date and source and is illustrative; a deployment that
cares about money points the provider's ``price_table`` at its own file of the same shape.
A device missing from the table falls back to the price the service publishes in the
device document (``service.deviceCost``, per shot) plus the table's per-task fee; with
neither, the price is unknown. Pure lookups, no I/O after loading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..base import ProviderSetupError

DEFAULT_PRICE_TABLE = Path(__file__).with_name("data") / "prices.json"
_KEYS = {"as_of", "source", "note", "braket"}
_BRAKET_KEYS = {"default_per_task_usd", "devices"}


@dataclass(frozen=True, slots=True)
class TaskPrice:
    per_task_usd: float
    per_shot_usd: float

    def task_cost(self, shots: int) -> float:
        return self.per_task_usd + self.per_shot_usd * max(0, int(shots))


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    source: str
    devices: dict[str, TaskPrice] = field(default_factory=dict)  # lower-cased device name ->
    default_per_task_usd: float | None = None  # Braket's per-task fee, for published per-shot prices

    def price(self, device_name: str, published: tuple[float, str] | None = None) -> TaskPrice | None:
        """The table's price of a device; else the service's published per-shot price plus
        the table's per-task fee; else None (unknown)."""
        listed = self.devices.get(device_name.strip().lower())
        if listed is not None:
            return listed
        if published is not None and published[1] == "shot" and self.default_per_task_usd is not None:
            return TaskPrice(self.default_per_task_usd, published[0])
        return None


class PriceTableError(ProviderSetupError, ValueError):
    pass


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PriceTableError(f"{where}: must be a non-negative number")
    return float(value)


def parse_price_table(data: dict, origin: str = "price table") -> PriceTable:
    if not isinstance(data, dict):
        raise PriceTableError(f"{origin}: top level must be a mapping")
    for key in data:
        if key not in _KEYS:
            hint = " (IBM prices are the ibm provider's billing config)" if key == "ibm" else ""
            raise PriceTableError(f"{origin}: {key}: unknown key{hint}")
    section = data.get("braket") or {}
    if not isinstance(section, dict):
        raise PriceTableError(f"{origin}: braket: must be a mapping")
    for key in section:
        if key not in _BRAKET_KEYS:
            raise PriceTableError(f"{origin}: braket.{key}: unknown key")
    raw_default = section.get("default_per_task_usd")
    default_task = None if raw_default is None else _number(raw_default, f"{origin}: braket.default_per_task_usd")
    devices: dict[str, TaskPrice] = {}
    for name, entry in (section.get("devices") or {}).items():
        where = f"{origin}: braket.devices.{name}"
        if not isinstance(entry, dict) or "per_shot_usd" not in entry:
            raise PriceTableError(f"{where}: needs per_shot_usd")
        unknown = set(entry) - {"provider", "per_task_usd", "per_shot_usd"}
        if unknown:
            raise PriceTableError(f"{where}.{sorted(unknown)[0]}: unknown key")
        if "per_task_usd" not in entry and default_task is None:
            raise PriceTableError(f"{where}: needs per_task_usd (or braket.default_per_task_usd)")
        devices[str(name).strip().lower()] = TaskPrice(
            per_task_usd=_number(entry.get("per_task_usd", default_task), f"{where}.per_task_usd"),
            per_shot_usd=_number(entry["per_shot_usd"], f"{where}.per_shot_usd"),
        )
    return PriceTable(as_of=str(data.get("as_of", "")), source=str(data.get("source", "")), devices=devices,
                      default_per_task_usd=default_task)


def load_price_table(path: str | Path | None = None) -> PriceTable:
    """The table at ``path`` (JSON), or the shipped default."""
    target = Path(path) if path is not None else DEFAULT_PRICE_TABLE
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PriceTableError(f"{target}: cannot read price table: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise PriceTableError(f"{target}: line {exc.lineno}: not valid JSON") from None
    return parse_price_table(data, str(target))
