"""The YAML configuration as pydantic models.

Every error is reported as one line naming the key path and the problem
(``ConfigError``); the CLI turns it into exit code 2. Secrets never come from the YAML in
clear: IBM tokens come from ``QISKIT_IBM_TOKEN`` or a token file, AWS credentials from
the standard AWS chain. A few settings can be overridden from the environment
(``QPU_EXPORTER_STATE_PATH``) so containers need no config edit.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .drift.monitor import DEFAULT_ARL0, DEFAULT_WARMUP, DriftSettings
from .providers.fake_snapshots import DEFAULT_FLEET, available_snapshots


class ConfigError(Exception):
    """One line: where and what."""


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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


IncidentKind = Literal[
    "t1_drop", "readout_degrade", "gate_error_rise", "offline", "queue_spike", "job_failures",
    "maintenance",
]

# What `factor` means per kind when it is not given.
INCIDENT_DEFAULT_FACTOR = {
    "t1_drop": 0.2,  # T1 (and T2) multiplied by this
    "readout_degrade": 3.0,  # readout error multiplied
    "gate_error_rise": 3.0,  # gate error multiplied on gates touching the qubit(s)
    "offline": 1.0,
    "maintenance": 1.0,
    "queue_spike": 20.0,  # pending jobs multiplied
    "job_failures": 0.5,  # probability that a finishing job fails
}


class Incident(_Strict):
    """A deterministic fault injected into the simulated fleet. ``at`` and ``duration``
    are simulated time measured from the exporter's start (so with speedup 60, ``at: 60s``
    happens one wall-clock second after start)."""

    backend: str
    kind: IncidentKind
    qubit: int | None = Field(default=None, ge=0)
    factor: float | None = Field(default=None, ge=0)
    at: Duration = 0.0
    duration: Duration = 3600.0

    @property
    def effective_factor(self) -> float:
        return INCIDENT_DEFAULT_FACTOR[self.kind] if self.factor is None else self.factor


class ScaleConfig(_Strict):
    """A synthetic fleet for load tests and benchmarks: ``backends`` backends named
    ``synthetic_000``... of ``qubits`` qubits each, derived deterministically from the
    provider's first listed snapshot (tiled and resampled, see providers/synthetic.py)."""

    backends: int = Field(ge=1, le=100_000)
    qubits: int = Field(ge=2, le=100_000)


class SimulatedProviderConfig(_Strict):
    kind: Literal["simulated"]
    backends: list[str] = Field(default_factory=lambda: list(DEFAULT_FLEET))
    seed: int = 7
    speedup: float = Field(default=1.0, gt=0, le=1_000_000)
    # How often (simulated time) the fleet re-measures T1, T2 and gate errors; readout is
    # refreshed five times as often. IBM publishes roughly daily.
    measurement_interval: Duration = Field(default=86400.0, ge=60)
    # "calm" keeps the per-qubit noise and gate creep but switches off the random events
    # (TLS dips, outages, new dead couplers), so injected incidents are the only faults:
    # for tests, demos and tuning alert thresholds.
    dynamics: Literal["realistic", "calm"] = "realistic"
    incidents: list[Incident] = Field(default_factory=list)
    # When set, the fleet is the synthetic one instead of the listed backends (the first
    # listed backend is the template).
    scale: ScaleConfig | None = None

    def fleet(self) -> list[str]:
        """Names of the backends this provider simulates."""
        if self.scale is None:
            return list(self.backends)
        from .providers.synthetic import synthetic_names

        return synthetic_names(self.scale.backends)

    @field_validator("backends")
    @classmethod
    def _known_backends(cls, names: list[str]) -> list[str]:
        known = available_snapshots()
        if not names:
            raise ValueError("at least one backend is required")
        for name in names:
            if name not in known:
                close = [k for k in known if name.replace("fake_", "") in k][:3]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ValueError(f"unknown backend {name!r}{hint}")
        if len(set(names)) != len(names):
            raise ValueError("backend names must be unique")
        return names

    @model_validator(mode="after")
    def _incidents_on_known_backends(self) -> SimulatedProviderConfig:
        fleet = set(self.fleet())
        for i, inc in enumerate(self.incidents):
            if inc.backend not in fleet:
                raise ValueError(
                    f"incidents[{i}].backend: {inc.backend!r} is not one of this provider's backends"
                )
        return self


class IbmProviderConfig(_Strict):
    kind: Literal["ibm"]
    instance: str | None = None  # the instance CRN; strongly recommended (else the SDK picks)
    channel: str = "ibm_quantum_platform"
    url: str | None = None
    token_file: Path | None = None  # alternative to QISKIT_IBM_TOKEN
    backends: list[str] | None = None  # default: every backend visible to the instance
    # Per HTTP call: connect and read timeouts; retries of 5xx inside one poll (the
    # scheduler's backoff handles the rest, so keep this small).
    connect_timeout: Duration = Field(default=5.0, gt=0, le=300)
    request_timeout: Duration = Field(default=30.0, gt=0, le=600)
    retries: int = Field(default=1, ge=0, le=5)
    # Jobs: look-back on the first poll of a process; page cap per poll (100 jobs a page);
    # /jobs/{id}/metrics calls (queue and run timestamps) per poll and backend, 0 = never.
    jobs_lookback: Duration = Field(default=86400.0, ge=0)
    max_job_pages: int = Field(default=20, ge=1, le=1000)
    max_job_metrics_per_poll: int = Field(default=50, ge=0, le=10000)
    price_table: Path | None = None  # default: the shipped illustrative table
    usd_per_qpu_second: float | None = Field(default=None, ge=0)  # overrides the table
    # Probe jobs (SamplerV2, job mode): how long one submission may wait for its job to
    # finish (queue + run) before it is cancelled and reported as a timeout (the probe
    # runner's lease on the backend is renewed to cover it). How often the job's state is
    # polled meanwhile.
    probe_timeout: Duration = Field(default=1800.0, gt=0, le=86400)
    probe_poll_interval: Duration = Field(default=5.0, ge=0.1, le=600)


class BraketProviderConfig(_Strict):
    kind: Literal["braket"]
    region: str = "us-east-1"
    devices: list[str] | None = None  # device ARNs; default: every QPU in the region
    connect_timeout: Duration = Field(default=5.0, gt=0, le=300)
    request_timeout: Duration = Field(default=30.0, gt=0, le=600)
    retries: int = Field(default=1, ge=0, le=5)
    jobs_lookback: Duration = Field(default=86400.0, ge=0)
    max_task_pages: int = Field(default=20, ge=1, le=1000)
    # GetQuantumTask calls per poll and device, to learn why FAILED tasks failed.
    max_failure_lookups_per_poll: int = Field(default=20, ge=0, le=10000)
    price_table: Path | None = None  # default: the shipped illustrative table
    # Probe tasks: results land in
    # s3://probe_s3_bucket/probe_s3_prefix/<device>/<attempt id>/<task id>/results.json
    # (Braket writes every QPU result to S3; no bucket = probes on Braket are unsupported).
    # probe_verbatim: translate to the device's native gates inside a verbatim box so the
    # device compiler cannot merge the RB sequence; false: let Braket compile the program.
    probe_s3_bucket: str | None = Field(default=None, min_length=3, max_length=63)
    probe_s3_prefix: str = "qpu-exporter/probes"
    probe_verbatim: bool = True
    probe_timeout: Duration = Field(default=1800.0, gt=0, le=86400)
    probe_poll_interval: Duration = Field(default=5.0, ge=0.1, le=600)

    @field_validator("devices")
    @classmethod
    def _arns(cls, arns: list[str] | None) -> list[str] | None:
        if arns is None:
            return None
        for arn in arns:
            if not arn.startswith("arn:aws:braket:") or "/" not in arn:
                raise ValueError(f"not a Braket device ARN: {arn!r}")
        return arns


ProviderConfig = Annotated[
    Union[SimulatedProviderConfig, IbmProviderConfig, BraketProviderConfig],
    Field(discriminator="kind"),
]


class ScheduleConfig(_Strict):
    calibration_interval: Duration = 300.0
    jobs_interval: Duration = 60.0
    probe_interval: Duration = 3600.0
    max_concurrent_polls: int = Field(default=4, ge=1, le=256)
    poll_timeout: Duration = 60.0


class BudgetConfig(_Strict):
    """Probe spend caps over a rolling 24 h window (docs/probes.md). ``shots_per_day`` and
    ``usd_per_day`` apply to each backend; the ``global_*`` caps to all backends together
    (null: no cap beyond the per-backend ones)."""

    shots_per_day: int = Field(default=200_000, ge=0)
    usd_per_day: float = Field(default=50.0, ge=0)
    global_shots_per_day: int | None = Field(default=None, ge=0)
    global_usd_per_day: float | None = Field(default=None, ge=0)


class ProbeTargetConfig(_Strict):
    """One probed qubit set: a qubit, or a pair given in the native direction of its 2q gate."""

    backend: str
    qubits: list[int] = Field(min_length=1, max_length=2)
    interleaved: Literal["sx", "x", "ecr", "cz", "cx"] | None = None
    provider: str | None = None  # only needed when two providers share a backend name

    @field_validator("qubits")
    @classmethod
    def _distinct(cls, qubits: list[int]) -> list[int]:
        if any(q < 0 for q in qubits) or len(set(qubits)) != len(qubits):
            raise ValueError("must be one qubit or two distinct non-negative qubits")
        return qubits

    @model_validator(mode="after")
    def _gate_width(self) -> ProbeTargetConfig:
        width = 1 if self.interleaved in ("sx", "x") else 2
        if self.interleaved is not None and width != len(self.qubits):
            raise ValueError(f"interleaved: {self.interleaved} acts on {width} qubit(s), qubits has {len(self.qubits)}")
        return self


class ProbesConfig(_Strict):
    enabled: bool = True
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    # Explicit targets; backends without any get automatic ones (auto_qubits single qubits
    # spread over the device and auto_pairs native pairs, the first pair interleaved with
    # its 2q gate).
    targets: list[ProbeTargetConfig] = Field(default_factory=list)
    auto_qubits: int = Field(default=3, ge=0, le=20)
    auto_pairs: int = Field(default=1, ge=0, le=5)
    # Each probe_interval tick runs this many targets of a backend, round robin.
    targets_per_tick: int = Field(default=1, ge=1, le=100)
    start_delay: Duration = 30.0  # after start-up, before a backend's first probe
    max_concurrent: int = Field(default=1, ge=1, le=16)  # probes running at once, all backends
    retries: int = Field(default=1, ge=0, le=5)  # resubmissions after a failed submission
    # Design of one probe (rb.design.design_rb); shots are the probe's whole shot budget.
    shots_per_probe: int = Field(default=2000, ge=10, le=10_000_000)
    target_rel_precision: float = Field(default=0.05, gt=0, lt=1)
    min_shots: int = Field(default=400, ge=1)
    max_circuits: int = Field(default=60, ge=6, le=2000)
    max_length: int | None = Field(default=None, ge=2)
    # A fixed Bell circuit run with every pair probe, for cross-device agreement.
    agreement_shots: int = Field(default=200, ge=0, le=100_000)


class DriftConfig(_Strict):
    """Detector design; the defaults are the drift package's (docs/drift.md explains them)."""

    arl0: float = Field(default=DEFAULT_ARL0, gt=1)
    warmup: int = Field(default=DEFAULT_WARMUP, ge=10)
    transform: Literal["none", "log", "auto"] = "auto"

    def settings(self) -> DriftSettings:
        return DriftSettings(arl0=self.arl0, warmup=self.warmup, transform=self.transform)


class CostConfig(_Strict):
    daily_budget_usd: float = Field(default=5000.0, ge=0)


def _default_providers() -> list[ProviderConfig]:
    return [SimulatedProviderConfig(kind="simulated", speedup=60.0)]


class Config(_Strict):
    providers: list[ProviderConfig] = Field(default_factory=_default_providers)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    state_path: Path = Path("./qpu-exporter.db")
    # "i/N": this instance polls only the backends whose stable hash falls in shard i of N
    # (0 <= i < N), so N instances split a fleet with no overlap and no gap (--shard).
    shard: str | None = None

    @field_validator("shard")
    @classmethod
    def _shard_spec(cls, value: str | None) -> str | None:
        if value is not None:
            from .sharding import parse_shard

            parse_shard(value)  # raises ValueError naming the problem
        return value

    @field_validator("providers")
    @classmethod
    def _not_empty(cls, providers: list[ProviderConfig]) -> list[ProviderConfig]:
        if not providers:
            raise ValueError("at least one provider is required")
        return providers


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    # Keys from the file are user data: quote anything that is not a plain name, so a key
    # holding a newline or control character cannot break the one-line message.
    where = ".".join(
        str(p) if re.fullmatch(r"[A-Za-z0-9_-]+", str(p)) else repr(str(p))
        for p in first["loc"] if not str(p).startswith("function-")
    )
    # pydantic puts the union tag into the location ("providers.0.simulated.seed"): drop it.
    where = re.sub(r"\.(simulated|ibm|braket)(?=\.|$)", "", where)
    where = re.sub(r"\.(\d+)", r"[\1]", where)
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    msg = msg.removeprefix("Value error, ")
    extra = "" if len(err.errors()) == 1 else f" (and {len(err.errors()) - 1} more)"
    line = f"{source}: {where or 'top level'}: {msg}{extra}"
    return line.replace("\r", "\\r").replace("\n", "\\n")


def load_config(path: str | Path | None) -> Config:
    """Load and validate; raise ConfigError with one line. None gives the default fleet."""
    if path is None:
        # The built-in demo polls faster than the production defaults so `make run` visibly
        # moves within a minute. Its budget is in wall-clock terms: at speedup 60 the three
        # backends spend ~$25,000 a simulated day, ~$1.5M a wall-clock day; three times that
        # keeps the cost alerts for real overspend (docs/alerts-quality.md).
        data: Any = {"schedule": {"calibration_interval": "30s", "jobs_interval": "15s"},
                     "cost": {"daily_budget_usd": 4_500_000}}
        source = "default config"
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config file: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{source}: config file is not UTF-8 text") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f"line {mark.line + 1}: " if mark else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise ConfigError(f"{source}: {line}{problem}") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: top level must be a mapping of keys, not {type(data).__name__}")
    env_state = os.environ.get("QPU_EXPORTER_STATE_PATH")
    if env_state:
        data = {**data, "state_path": env_state}
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None
