"""Drift monitor: one self-starting EWMA + CUSUM pair per series. Pure: no I/O, no clock.

Per series (key = (provider, backend, series)):
1. transform (log / logit / none, by kind or forced); invalid values and timestamps not after
   the series' last accepted one are rejected without touching state;
2. warm-up: the first `warmup` accepted values are buffered; then a robust mean, sigma and
   lag-1 autocorrelation are estimated once and frozen (until `rebaseline`);
3. monitoring: u = clip((y - mu)/sigma, +-INPUT_CLIP) feeds both charts; limits come from
   design.design_chart (ARL0, estimation correction for the warm-up size, AR(1) widening).

State is struct-of-arrays so a poll of 100k series is a handful of numpy operations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from . import transforms
from .baseline import design_phi, robust_baseline
from .design import ChartDesign, design_chart
from .detectors import DIRECTION_NAMES, NO_SIGNAL, cusum_step, ewma_step

Key = tuple[str, str, str]

# Standardized inputs are winsorized before charting: one wild value moves the CUSUM by at
# most INPUT_CLIP - k and cannot signal alone at production limits, while a 3-sigma shift
# (a TLS dip) is untouched.
INPUT_CLIP = 4.0

# Fleet arithmetic for the default ARL0 (docs/drift.md): 1000 series x 288 polls/day (5 min)
# x 2 detectors = 576,000 chart updates a day at most; ARL0 = 600,000 per series and
# detector gives <= 0.96 false alarms a day, averaged over warm-up draws.
DEFAULT_ARL0 = 600_000.0
DEFAULT_WARMUP = 100
# lambda = 0.2: the CUSUM (k = 0.5) is already near-optimal for 1-sigma shifts; EWMA 0.2
# complements it on 2-3 sigma shifts (TLS dips) while matching it at 1 sigma (ARL1 10.5 vs
# 10.4 at ARL0 500; Lucas & Saccucci, Technometrics 32, 1 (1990)).
DEFAULT_EWMA_LAMBDA = 0.2
DEFAULT_CUSUM_K = 0.5

STATE_VERSION = 1
_WARM, _MONITOR = 0, 1


@dataclass(frozen=True, slots=True)
class DriftSettings:
    arl0: float = DEFAULT_ARL0
    warmup: int = DEFAULT_WARMUP
    transform: str = "auto"
    cusum_k: float = DEFAULT_CUSUM_K
    ewma_lambda: float = DEFAULT_EWMA_LAMBDA

    def __post_init__(self) -> None:
        if not (math.isfinite(self.arl0) and self.arl0 > 1.0):
            raise ValueError(f"arl0 must be a number > 1, got {self.arl0!r}")
        if int(self.warmup) != self.warmup or self.warmup < 10:
            raise ValueError(f"warmup must be an integer >= 10, got {self.warmup!r}")
        if self.transform not in transforms.TRANSFORM_MODES:
            raise ValueError(f"transform must be one of none|log|auto, got {self.transform!r}")
        if not 0.0 < self.ewma_lambda <= 1.0:
            raise ValueError(f"ewma_lambda must be in (0, 1], got {self.ewma_lambda!r}")
        if not (math.isfinite(self.cusum_k) and self.cusum_k >= 0.0):
            raise ValueError(f"cusum_k must be >= 0, got {self.cusum_k!r}")


@dataclass(frozen=True, slots=True)
class Alarm:
    key: Key
    index: int  # 0-based position within the series, counting accepted samples (warm-up too)
    timestamp: float
    detector: str  # "ewma" | "cusum"
    direction: str  # "up" | "down"


class Rejection(NamedTuple):
    position: int  # position in the batch
    key: Key
    reason: str  # transforms.REJECT_*


@dataclass(slots=True)
class BatchResult:
    alarms: list[Alarm]
    rejected: list[Rejection]
    indices: np.ndarray  # per batch entry: accepted sample index, -1 when rejected


class StatisticRow(NamedTuple):
    provider: str
    backend: str
    series: str
    detector: str
    statistic: float  # EWMA: z / asymptotic sd (signed); CUSUM: max(C+, C-); sigma units
    alarm_active: bool


class LimitRow(NamedTuple):
    provider: str
    backend: str
    series: str
    detector: str
    limit: float  # the statistic's signalling threshold in the same units


class CountRow(NamedTuple):
    provider: str
    backend: str
    series: str
    detector: str
    count: int


# Per-slot numeric columns and their dtypes; the state dict stores exactly these.
_COLUMNS: dict[str, type] = {
    "count": np.int64,
    "last_ts": np.float64,
    "phase": np.int8,
    "tcode": np.int8,
    "warm_n": np.int64,
    "mu": np.float64,
    "sigma": np.float64,
    "phi": np.float64,
    "z": np.float64,
    "cp": np.float64,
    "cm": np.float64,
    "alarm_ewma": np.bool_,
    "alarm_cusum": np.bool_,
    "n_ewma": np.int64,
    "n_cusum": np.int64,
}
# Derived from the design, rebuilt on restore (so a new ARL0 applies without a new warm-up).
_DESIGN_COLUMNS = ("ewma_sd", "ewma_bound", "k", "h")


class DriftMonitor:
    def __init__(self, settings: DriftSettings | None = None) -> None:
        self.settings = settings or DriftSettings()
        self._keys: list[Key] = []
        self._slot: dict[Key, int] = {}
        self._warm: dict[int, list[float]] = {}
        self._rejections: dict[tuple[int, str], int] = {}
        self._cap = 0
        self._cols: dict[str, np.ndarray] = {}
        self._grow(16)

    # ------------------------------------------------------------------ storage
    def _grow(self, capacity: int) -> None:
        old = self._cols
        cols: dict[str, np.ndarray] = {}
        for name, dtype in _COLUMNS.items():
            cols[name] = np.zeros(capacity, dtype=dtype)
        for name in _DESIGN_COLUMNS:
            cols[name] = np.zeros(capacity, dtype=np.float64)
        cols["last_ts"][:] = -np.inf
        for name in ("mu", "sigma", "phi"):
            cols[name][:] = np.nan
        for name, arr in old.items():
            cols[name][: self._cap] = arr[: self._cap]
        self._cols = cols
        self._cap = capacity

    def _slot_of(self, key: Key) -> int:
        slot = self._slot.get(key)
        if slot is None:
            key = (str(key[0]), str(key[1]), str(key[2]))
            slot = len(self._keys)
            if slot >= self._cap:
                self._grow(max(16, 2 * self._cap))
            self._keys.append(key)
            self._slot[key] = slot
            self._cols["tcode"][slot] = transforms.transform_code(key[2], self.settings.transform)
            self._warm[slot] = []
        return slot

    def __len__(self) -> int:
        return len(self._keys)

    # ---------------------------------------------------------------- observing
    def observe(self, key: Key, value: float, timestamp: float) -> list[Alarm]:
        """Feed one new measurement. Rejected samples return [] and change nothing (see
        observe_many for the reason)."""
        return self.observe_many([key], [value], [timestamp]).alarms

    def observe_many(
        self, keys: Sequence[Key], values: Sequence[float] | np.ndarray, timestamps: Sequence[float] | np.ndarray
    ) -> BatchResult:
        """Feed a batch. Equivalent to calling observe on each entry in order (entries of the
        same key are applied in batch order); vectorised across keys."""
        n = len(keys)
        vals = np.asarray(values, dtype=np.float64).reshape(-1) if n else np.zeros(0)
        ts = np.asarray(timestamps, dtype=np.float64).reshape(-1) if n else np.zeros(0)
        if vals.size != n or ts.size != n:
            raise ValueError("keys, values and timestamps must have the same length")
        slots = np.fromiter((self._slot_of(k) for k in keys), dtype=np.int64, count=n)
        indices = np.full(n, -1, dtype=np.int64)
        alarms: list[tuple[int, Alarm]] = []
        rejected: list[Rejection] = []
        # Repeated keys must be applied in order: split the batch into rounds in which each
        # slot appears at most once (round r = the r-th occurrence of each slot).
        if np.unique(slots).size == n:
            rounds = [np.arange(n)]
        else:
            seen: dict[int, int] = {}
            occurrence = np.empty(n, dtype=np.int64)
            for i, s in enumerate(slots.tolist()):
                occurrence[i] = seen.get(s, 0)
                seen[s] = occurrence[i] + 1
            rounds = [np.flatnonzero(occurrence == r) for r in range(int(occurrence.max()) + 1)]
        for positions in rounds:
            self._apply_round(positions, slots[positions], vals[positions], ts[positions], indices, alarms, rejected)
        alarms.sort(key=lambda pa: pa[0])
        rejected.sort(key=lambda r: r.position)
        return BatchResult(alarms=[a for _, a in alarms], rejected=rejected, indices=indices)

    def _apply_round(self, positions, slots, vals, ts, indices, alarms, rejected) -> None:
        c = self._cols
        y, ok, domain = transforms.apply_array(c["tcode"][slots], vals)
        fresh = np.isfinite(ts) & (ts > c["last_ts"][slots])
        accepted = ok & fresh
        if not accepted.all():
            for j in np.flatnonzero(~accepted).tolist():
                if not ok[j]:
                    reason = transforms.REJECT_DOMAIN if domain[j] else transforms.REJECT_NON_FINITE
                else:
                    reason = transforms.REJECT_STALE
                s = int(slots[j])
                self._rejections[(s, reason)] = self._rejections.get((s, reason), 0) + 1
                rejected.append(Rejection(int(positions[j]), self._keys[s], reason))
            positions, slots, y, ts = positions[accepted], slots[accepted], y[accepted], ts[accepted]
        if slots.size == 0:
            return
        index = c["count"][slots]
        indices[positions] = index
        c["count"][slots] = index + 1
        c["last_ts"][slots] = ts

        monitoring = c["phase"][slots] == _MONITOR
        if not monitoring.all():
            self._warm_up(slots[~monitoring], y[~monitoring])
        if monitoring.any():
            self._chart(positions[monitoring], slots[monitoring], y[monitoring], ts[monitoring], index[monitoring], alarms)

    def _warm_up(self, slots: np.ndarray, y: np.ndarray) -> None:
        need = self.settings.warmup
        complete: list[int] = []
        for s, v in zip(slots.tolist(), y.tolist()):
            buf = self._warm[s]
            buf.append(v)
            if len(buf) >= need:
                complete.append(s)
        if complete:
            self._finish_warm_up(np.asarray(complete, dtype=np.int64))

    def _finish_warm_up(self, slots: np.ndarray) -> None:
        c = self._cols
        data = np.array([self._warm.pop(s) for s in slots.tolist()], dtype=np.float64)
        mu, sigma, phi = robust_baseline(data)
        c["mu"][slots], c["sigma"][slots], c["phi"][slots] = mu, sigma, phi
        c["warm_n"][slots] = data.shape[1]
        c["phase"][slots] = _MONITOR
        for name in ("z", "cp", "cm"):
            c[name][slots] = 0.0
        c["alarm_ewma"][slots] = False
        c["alarm_cusum"][slots] = False
        self._apply_designs(slots)

    def _design_for(self, phi: float, warm_n: int) -> ChartDesign:
        st = self.settings
        return design_chart(
            float(st.arl0), float(st.ewma_lambda), float(st.cusum_k), design_phi(float(phi), int(warm_n)), int(warm_n)
        )

    def _apply_designs(self, slots: np.ndarray) -> None:
        c = self._cols
        phis = c["phi"][slots]
        warm_ns = c["warm_n"][slots]
        for s, phi, wn in zip(slots.tolist(), phis.tolist(), warm_ns.tolist()):
            d = self._design_for(phi, wn)
            c["ewma_sd"][s] = d.ewma_sd
            c["ewma_bound"][s] = d.ewma_limit * d.ewma_sd
            c["k"][s] = d.cusum_k
            c["h"][s] = d.cusum_h

    def _chart(self, positions, slots, y, ts, index, alarms) -> None:
        c = self._cols
        u = np.clip((y - c["mu"][slots]) / c["sigma"][slots], -INPUT_CLIP, INPUT_CLIP)
        z, sig_e = ewma_step(c["z"][slots], u, self.settings.ewma_lambda, c["ewma_bound"][slots])
        cp, cm, sig_c = cusum_step(c["cp"][slots], c["cm"][slots], u, c["k"][slots], c["h"][slots])
        c["z"][slots], c["cp"][slots], c["cm"][slots] = z, cp, cm
        fired_e = sig_e != NO_SIGNAL
        fired_c = sig_c != NO_SIGNAL
        c["alarm_ewma"][slots] = fired_e
        c["alarm_cusum"][slots] = fired_c
        if fired_e.any():
            np.add.at(c["n_ewma"], slots[fired_e], 1)
        if fired_c.any():
            np.add.at(c["n_cusum"], slots[fired_c], 1)
        for detector, fired, sig in (("ewma", fired_e, sig_e), ("cusum", fired_c, sig_c)):
            for j in np.flatnonzero(fired).tolist():
                alarm = Alarm(
                    key=self._keys[int(slots[j])],
                    index=int(index[j]),
                    timestamp=float(ts[j]),
                    detector=detector,
                    direction=DIRECTION_NAMES[int(sig[j])],
                )
                alarms.append((int(positions[j]) * 2 + (detector == "cusum"), alarm))

    # -------------------------------------------------------------- re-baseline
    def rebaseline(self, key: Key) -> None:
        """Forget the baseline of one series and start a new warm-up (explicit re-baseline or a
        provider recalibration that moves the level). The sample index and alarm counts go on."""
        slot = self._slot.get(tuple(key))
        if slot is None:
            return
        c = self._cols
        c["phase"][slot] = _WARM
        for name in ("mu", "sigma", "phi"):
            c[name][slot] = np.nan
        for name in ("z", "cp", "cm", *_DESIGN_COLUMNS):
            c[name][slot] = 0.0
        c["warm_n"][slot] = 0
        c["alarm_ewma"][slot] = False
        c["alarm_cusum"][slot] = False
        self._warm[slot] = []

    # ----------------------------------------------------------------- reading
    def in_warm_up(self, key: Key) -> bool:
        slot = self._slot.get(tuple(key))
        return slot is None or self._cols["phase"][slot] == _WARM

    def baseline(self, key: Key) -> dict | None:
        """The frozen baseline of a series (transformed space), or None during warm-up."""
        slot = self._slot.get(tuple(key))
        if slot is None or self._cols["phase"][slot] != _MONITOR:
            return None
        c = self._cols
        d = self._design_for(float(c["phi"][slot]), int(c["warm_n"][slot]))
        return {
            "mu": float(c["mu"][slot]),
            "sigma": float(c["sigma"][slot]),
            "phi": float(c["phi"][slot]),
            "transform": transforms.CODE_NAMES[int(c["tcode"][slot])],
            "design": asdict(d),
        }

    def statistics(self) -> Iterator[StatisticRow]:
        c = self._cols
        for slot, (p, b, s) in enumerate(self._keys):
            if c["phase"][slot] != _MONITOR:
                continue
            yield StatisticRow(p, b, s, "ewma", float(c["z"][slot] / c["ewma_sd"][slot]), bool(c["alarm_ewma"][slot]))
            yield StatisticRow(
                p, b, s, "cusum", float(max(c["cp"][slot], c["cm"][slot])), bool(c["alarm_cusum"][slot])
            )

    def limits(self) -> Iterator[LimitRow]:
        c = self._cols
        for slot, (p, b, s) in enumerate(self._keys):
            if c["phase"][slot] != _MONITOR:
                continue
            yield LimitRow(p, b, s, "ewma", float(c["ewma_bound"][slot] / c["ewma_sd"][slot]))
            yield LimitRow(p, b, s, "cusum", float(c["h"][slot]))

    def alarms_total(self) -> Iterator[CountRow]:
        c = self._cols
        for slot, (p, b, s) in enumerate(self._keys):
            yield CountRow(p, b, s, "ewma", int(c["n_ewma"][slot]))
            yield CountRow(p, b, s, "cusum", int(c["n_cusum"][slot]))

    def rejections_total(self) -> Iterator[tuple[str, str, str, str, int]]:
        """(provider, backend, series, reason, count) for every series with rejections."""
        for (slot, reason), count in sorted(self._rejections.items()):
            p, b, s = self._keys[slot]
            yield (p, b, s, reason, count)

    # ------------------------------------------------------------------- state
    def state(self) -> dict:
        """JSON-serialisable snapshot. Floats are stored as Python floats (repr round-trips
        exactly); NaN/-inf become None."""
        n = len(self._keys)
        cols: dict[str, list] = {}
        for name, dtype in _COLUMNS.items():
            arr = self._cols[name][:n]
            if dtype is np.float64:
                cols[name] = [v if math.isfinite(v) else None for v in arr.tolist()]
            elif dtype is np.bool_:
                cols[name] = [int(v) for v in arr.tolist()]
            else:
                cols[name] = arr.tolist()
        return {
            "version": STATE_VERSION,
            "settings": {
                "arl0": self.settings.arl0,
                "warmup": self.settings.warmup,
                "transform": self.settings.transform,
                "cusum_k": self.settings.cusum_k,
                "ewma_lambda": self.settings.ewma_lambda,
            },
            "keys": [list(k) for k in self._keys],
            "columns": cols,
            "warm": {str(s): list(v) for s, v in self._warm.items() if v},
            "rejections": [[s, r, cnt] for (s, r), cnt in sorted(self._rejections.items())],
        }

    @classmethod
    def from_state(cls, d: dict, settings: DriftSettings | None = None) -> DriftMonitor:
        """Restore a monitor. Baselines and chart statistics continue (no new warm-up). With
        new settings: a changed ARL0/k/lambda re-derives the limits from the stored baseline; a
        series whose transform changed starts a new warm-up (its baseline is in another space)."""
        if d.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported drift state version {d.get('version')!r}")
        mon = cls(settings)
        keys = [tuple(k) for k in d["keys"]]
        n = len(keys)
        cap = 16
        while cap < n:
            cap *= 2
        mon._grow(cap)
        mon._keys = [(str(p), str(b), str(s)) for p, b, s in keys]
        mon._slot = {k: i for i, k in enumerate(mon._keys)}
        for name, dtype in _COLUMNS.items():
            raw = d["columns"][name]
            if dtype is np.float64:
                fill = -np.inf if name == "last_ts" else np.nan
                mon._cols[name][:n] = np.array([fill if v is None else v for v in raw], dtype=np.float64)
            else:
                mon._cols[name][:n] = np.array(raw, dtype=dtype)
        mon._warm = {i: [] for i in range(n) if mon._cols["phase"][i] == _WARM}
        for s, values in d.get("warm", {}).items():
            mon._warm[int(s)] = [float(v) for v in values]
        mon._rejections = {(int(s), str(r)): int(cnt) for s, r, cnt in d.get("rejections", [])}
        old = d.get("settings", {})
        c = mon._cols
        for slot, key in enumerate(mon._keys):
            code = transforms.transform_code(key[2], mon.settings.transform)
            if code != c["tcode"][slot]:
                c["tcode"][slot] = code
                mon.rebaseline(key)
        if old.get("ewma_lambda") != mon.settings.ewma_lambda or old.get("cusum_k") != mon.settings.cusum_k:
            c["z"][:n] = 0.0  # statistics of another chart: restart in control
            c["cp"][:n] = 0.0
            c["cm"][:n] = 0.0
        # Slots still in warm-up whose buffer already holds a full (new, smaller) warm-up.
        full = [s for s, buf in mon._warm.items() if len(buf) >= mon.settings.warmup]
        for s in full:
            mon._warm[s] = mon._warm[s][-mon.settings.warmup :]
        if full:
            mon._finish_warm_up(np.asarray(full, dtype=np.int64))
        monitoring = np.flatnonzero(c["phase"][:n] == _MONITOR)
        mon._apply_designs(monitoring)
        return mon

    def keys(self) -> Iterable[Key]:
        return list(self._keys)
