"""Building blocks of the YAML configuration shared by the generic config and every
provider's own config model: durations and the strict, frozen base model."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> float:
    """'30s', '5m', '2h', '1d' (also ms, w) -> seconds. Bare numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(f"invalid duration {value!r} (use e.g. 30s, 5m, 2h, 1d)")
    if seconds < 0:
        raise ValueError(f"invalid duration {value!r}: negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class Strict(BaseModel):
    """Unknown keys are errors (a typo never silently keeps a default); values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
