"""Price tables: what a finished job cost, in USD, from list prices.

Providers do not report what a job cost: Braket bills a per-task fee plus a per-shot fee
(QPU tasks that FAILED or were CANCELLED are not billed), IBM's pay-as-you-go plan bills
QPU seconds. The shipped default table (``data/prices.json``) names its date and source
and is illustrative; a deployment that cares about money points ``price_table`` at its
own file of the same shape. Pure lookups, no I/O after loading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PRICE_TABLE = Path(__file__).with_name("data") / "prices.json"


@dataclass(frozen=True, slots=True)
class TaskPrice:
    per_task_usd: float
    per_shot_usd: float


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    source: str
    braket: dict[str, TaskPrice] = field(default_factory=dict)  # lower-cased device name ->
    ibm_per_qpu_second_usd: float | None = None

    def braket_price(self, device_name: str) -> TaskPrice | None:
        return self.braket.get(device_name.strip().lower())

    def braket_task_cost(self, device_name: str, shots: int, billed: bool) -> float | None:
        """USD for one QPU task; 0 when not billed; None when the device has no price."""
        if not billed:
            return 0.0
        price = self.braket_price(device_name)
        if price is None:
            return None
        return price.per_task_usd + price.per_shot_usd * max(0, int(shots))

    def ibm_job_cost(self, usage_seconds: float) -> float | None:
        if self.ibm_per_qpu_second_usd is None:
            return None
        return max(0.0, usage_seconds) * self.ibm_per_qpu_second_usd


class PriceTableError(ValueError):
    pass


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise PriceTableError(f"{where}: must be a non-negative number")
    return float(value)


def parse_price_table(data: dict, origin: str = "price table") -> PriceTable:
    if not isinstance(data, dict):
        raise PriceTableError(f"{origin}: top level must be a mapping")
    braket_section = data.get("braket") or {}
    default_task = _number(braket_section.get("default_per_task_usd", 0.0), f"{origin}: braket.default_per_task_usd")
    devices: dict[str, TaskPrice] = {}
    for name, entry in (braket_section.get("devices") or {}).items():
        where = f"{origin}: braket.devices.{name}"
        if not isinstance(entry, dict) or "per_shot_usd" not in entry:
            raise PriceTableError(f"{where}: needs per_shot_usd")
        devices[str(name).strip().lower()] = TaskPrice(
            per_task_usd=_number(entry.get("per_task_usd", default_task), f"{where}.per_task_usd"),
            per_shot_usd=_number(entry["per_shot_usd"], f"{where}.per_shot_usd"),
        )
    ibm_section = data.get("ibm") or {}
    ibm_rate = ibm_section.get("per_qpu_second_usd")
    return PriceTable(
        as_of=str(data.get("as_of", "")),
        source=str(data.get("source", "")),
        braket=devices,
        ibm_per_qpu_second_usd=None if ibm_rate is None else _number(ibm_rate, f"{origin}: ibm.per_qpu_second_usd"),
    )


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
