"""The execution log: one JSON object per line and per circuit execution, appended and flushed
as results come back, so a run can be reproduced (fingerprint, backend, calibration, shots,
seed) and diffed later. Each line is also a valid ``qpu-exporter compare`` input (it has
``counts``)."""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat().replace("+00:00", "Z")


class ExecutionLog:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._file = self.path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=False, separators=(",", ":"))
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()
