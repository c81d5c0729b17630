"""Backtest: run the exporter's own DriftMonitor over a CSV history. Pure (the CLI reads the
file and prints the JSON).

CSV: header exactly `timestamp,series,value`; timestamp in unix seconds or ISO-8601 (a naive
ISO time is taken as UTC). Within a series, rows are sorted by timestamp (stable: ties keep
file order) and `index` is the 0-based position in that order, counting every row of the
series (also rows the monitor rejects, e.g. T1 <= 0 or a repeated timestamp). For a file
already in time order this is the row's position among the series' rows.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime, timezone

from .monitor import DriftMonitor, DriftSettings, Rejection

HEADER = ["timestamp", "series", "value"]
BACKTEST_PROVIDER = "backtest"
BACKTEST_BACKEND = "backtest"


class DriftInputError(ValueError):
    """Malformed backtest input; the message is one line naming the line number."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    timestamp: float
    series: str
    value: float


def _parse_timestamp(text: str) -> float | None:
    t = text.strip()
    try:
        v = float(t)
        return v if math.isfinite(v) else None
    except ValueError:
        pass
    iso = t[:-1] + "+00:00" if t.endswith(("Z", "z")) else t
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def parse_csv(text: str) -> list[Row]:
    """Parse and validate the whole file; raises DriftInputError on the first bad line."""
    lines = text.splitlines()
    reader = csv.reader(io.StringIO(text))
    rows: list[Row] = []
    header_seen = False
    try:
        for record in reader:
            line = reader.line_num
            if not header_seen:
                if [c.strip() for c in record] != HEADER:
                    raise DriftInputError(
                        f"line {line}: header must be exactly 'timestamp,series,value', got {','.join(record)!r}"
                    )
                header_seen = True
                continue
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # blank line
            if len(record) != 3:
                raise DriftInputError(f"line {line}: expected 3 columns (timestamp,series,value), got {len(record)}")
            ts_text, series, value_text = record
            ts = _parse_timestamp(ts_text)
            if ts is None:
                raise DriftInputError(
                    f"line {line}: timestamp {ts_text.strip()!r} is neither unix seconds nor ISO-8601"
                )
            series = series.strip()
            if not series:
                raise DriftInputError(f"line {line}: series name is empty")
            try:
                value = float(value_text.strip())
            except ValueError:
                raise DriftInputError(f"line {line}: value {value_text.strip()!r} is not a number") from None
            rows.append(Row(line, ts, series, value))
    except csv.Error as exc:
        raise DriftInputError(f"line {reader.line_num}: {exc}") from None
    if not header_seen:
        raise DriftInputError(f"line 1: header 'timestamp,series,value' is missing{' (empty input)' if not lines else ''}")
    return rows


def settings_for(arl0: float | None = None, warmup: int | None = None, transform: str = "auto") -> DriftSettings:
    """The exporter's defaults, with the CLI overrides applied."""
    base = DriftSettings()
    return DriftSettings(
        arl0=base.arl0 if arl0 is None else float(arl0),
        warmup=base.warmup if warmup is None else int(warmup),
        transform=transform,
        cusum_k=base.cusum_k,
        ewma_lambda=base.ewma_lambda,
    )


def run_backtest_detailed(
    rows: list[Row], arl0: float | None = None, warmup: int | None = None, transform: str = "auto"
) -> tuple[dict, list[dict]]:
    """As run_backtest, plus the rejected rows: [{"line", "series", "reason"}]."""
    monitor = DriftMonitor(settings_for(arl0, warmup, transform))
    by_series: dict[str, list[Row]] = {}
    for row in rows:
        by_series.setdefault(row.series, []).append(row)
    ordered = {s: sorted(rs, key=lambda r: r.timestamp) for s, rs in by_series.items()}
    # Round r feeds the r-th row of every series: series are independent, so this is the same
    # as series-by-series feeding, and vectorised.
    names = list(ordered)
    longest = max((len(rs) for rs in ordered.values()), default=0)
    alarms: list[tuple[float, str, int, str, str]] = []
    rejected: list[dict] = []
    for r in range(longest):
        batch = [(s, ordered[s][r]) for s in names if r < len(ordered[s])]
        keys = [(BACKTEST_PROVIDER, BACKTEST_BACKEND, s) for s, _ in batch]
        result = monitor.observe_many(keys, [row.value for _, row in batch], [row.timestamp for _, row in batch])
        for rej in result.rejected:
            _, row = batch[rej.position]
            rejected.append({"line": row.line, "series": row.series, "reason": rej.reason})
        for alarm in result.alarms:
            alarms.append((alarm.timestamp, alarm.key[2], r, alarm.detector, alarm.direction))
    alarms.sort(key=lambda a: (a[0], a[1], a[3]))
    out = {
        "alarms": [
            {"series": s, "index": i, "timestamp": ts, "detector": d, "direction": direction}
            for ts, s, i, d, direction in alarms
        ]
    }
    rejected.sort(key=lambda r: r["line"])
    return out, rejected


def run_backtest(
    rows: list[Row], arl0: float | None = None, warmup: int | None = None, transform: str = "auto"
) -> dict:
    """{"alarms": [{"series", "index", "timestamp", "detector", "direction"}, ...]} sorted by
    timestamp, then series, then detector."""
    return run_backtest_detailed(rows, arl0, warmup, transform)[0]


__all__ = ["DriftInputError", "Row", "Rejection", "parse_csv", "run_backtest", "run_backtest_detailed", "settings_for"]
