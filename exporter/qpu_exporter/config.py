"""The YAML configuration as pydantic models.

Every error is reported as one line naming the key path and the problem
(``ConfigError``); the CLI turns it into exit code 2. Secrets never come from the YAML in
clear: IBM tokens come from ``QISKIT_IBM_TOKEN`` or a token file, AWS credentials from
the standard AWS chain; the state database's password from ``QPU_EXPORTER_STATE_PASSWORD``,
``PGPASSWORD`` or a libpq password file. A few settings can be overridden from the environment
(``QPU_EXPORTER_STATE_PATH``, ``QPU_EXPORTER_STATE_URL``, ``QPU_EXPORTER_INSTANCE``) so
containers need no config edit.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from .config_types import Duration, Strict, parse_duration  # noqa: F401 - parse_duration is public here
from .drift.monitor import DEFAULT_ARL0, DEFAULT_WARMUP, DriftSettings
from .providers import registry


class ConfigError(Exception):
    """One line: where and what."""


_Strict = Strict


_INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _provider_union() -> Any:
    """The ``providers`` list item: a union of every registered provider's config model,
    told apart by ``kind``. Rebuilt whenever a provider registers (see _rebuild)."""
    models = [spec.config_model for spec in registry.provider_specs()]
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator="kind")]


ProviderConfig = _provider_union()


class ScheduleConfig(_Strict):
    calibration_interval: Duration = 300.0
    jobs_interval: Duration = 60.0
    probe_interval: Duration = 3600.0
    max_concurrent_polls: int = Field(default=4, ge=1, le=256)
    # Bound of every provider call of a poll; a call still running then is abandoned and the
    # poll fails with error kind "timeout" (scheduler.py).
    poll_timeout: Duration = Field(default=60.0, gt=0)


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
    # Deadline of one attempt in the probe worker (generation, simulation, submission), plus
    # twice the provider's probe_timeout for remote jobs; then the worker is killed.
    worker_timeout: Duration = Field(default=600.0, gt=0, le=86400)
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


class WorkloadBudgetConfig(_Strict):
    usd_per_day: float = Field(gt=0)


class WorkloadObjectiveConfig(_Strict):
    """Overrides of the fleet objectives (alerts/config.yaml jobs.*_slo) for one workload."""

    job_success: float | None = Field(default=None, gt=0, lt=1)  # share of jobs that must not fail
    queue_seconds: Duration | None = Field(default=None, gt=0)  # the fleet quantile's queue-time limit


class WorkloadsConfig(_Strict):
    """Per-workload series from the providers' own job tags (docs/workloads.md)."""

    tag: str = Field(default="team", min_length=1, max_length=128)  # Braket tag key; IBM "team:V" / "team=V"
    max: int = Field(default=50, ge=1, le=10_000)  # distinct values kept; beyond: workload="other"
    budgets: dict[str, WorkloadBudgetConfig] = Field(default_factory=dict)
    objectives: dict[str, WorkloadObjectiveConfig] = Field(default_factory=dict)

    @field_validator("tag")
    @classmethod
    def _tag_key(cls, tag: str) -> str:
        if tag != tag.strip() or any(c in tag for c in ":=") or not tag.isprintable():
            raise ValueError(f"{tag!r}: a tag key has no ':', '=', surrounding spaces or control characters")
        return tag

    @field_validator("budgets", "objectives")
    @classmethod
    def _workload_names(cls, entries: dict) -> dict:
        from .workloads import is_clean

        for name in entries:
            if not is_clean(name):
                raise ValueError(f"{name!r} is not a workload label value (letters, digits, '-', '_', '.'; "
                                 f"at most 63 characters; nothing that looks like a credential)")
        return entries

    @model_validator(mode="after")
    def _configured_fit(self) -> WorkloadsConfig:
        named = self.configured()
        if len(named) > self.max:
            raise ValueError(f"budgets and objectives name {len(named)} workloads, more than max ({self.max})")
        return self

    def configured(self) -> list[str]:
        """Workloads the config names (always kept), untagged and other excepted."""
        from .workloads import RESERVED

        return [n for n in dict.fromkeys([*self.budgets, *self.objectives]) if n not in RESERVED]


def _default_providers() -> list[Any]:
    """With no ``providers`` key: the providers registered as the default (the embedded
    simulated fleet)."""
    return [spec.config_model.model_validate(spec.default_config) for spec in registry.provider_specs()
            if spec.default_config is not None]


class Config(_Strict):
    providers: list[ProviderConfig] = Field(default_factory=_default_providers)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    probes: ProbesConfig = Field(default_factory=ProbesConfig)
    cost: CostConfig = Field(default_factory=CostConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    workloads: WorkloadsConfig | None = None  # None: no per-workload series at all
    state_path: Path = Path("./qpu-exporter.db")
    # PostgreSQL instead of the state_path file, shareable by replicas and shards (docs/state.md).
    # Never with a password in the file: see load_config.
    state_url: str | None = None
    # This exporter's name among those sharing one database: its job records and counters are
    # its own. Default: the host name on PostgreSQL, "default" on SQLite.
    instance: str | None = None
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

    @field_validator("state_url")
    @classmethod
    def _state_url(cls, value: str | None) -> str | None:
        if value is not None:
            from .store.engine import parse_target

            if "://" not in value:
                raise ValueError("not a URL of the form postgresql://user@host:port/database")
            parse_target(value)  # raises ValueError naming the problem
        return value

    @field_validator("instance")
    @classmethod
    def _instance_name(cls, value: str | None) -> str | None:
        if value is not None and not _INSTANCE.fullmatch(value):
            raise ValueError(f"invalid instance name {value!r} (letters, digits, '.', '_', '-'; at most 128)")
        return value

    def state_target(self) -> str | Path:
        """Where the state lives: the state_url when one is set, else the state_path file."""
        return self.state_url or self.state_path

    @field_validator("providers")
    @classmethod
    def _not_empty(cls, providers: list[ProviderConfig]) -> list[ProviderConfig]:
        if not providers:
            raise ValueError("at least one provider is required")
        return providers

    @model_validator(mode="after")
    def _providers_fit_the_config(self) -> Config:
        """Each provider's own check of what its entry needs from the rest of the config."""
        for i, p in enumerate(self.providers):
            spec = registry.provider_spec(p.kind)
            if spec is not None and spec.check_with_config is not None:
                try:
                    spec.check_with_config(p, self)
                except ValueError as exc:
                    raise ValueError(f"providers[{i}].{exc}") from None
        return self


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    # Keys from the file are user data: quote anything that is not a plain name, so a key
    # holding a newline or control character cannot break the one-line message.
    where = ".".join(
        str(p) if re.fullmatch(r"[A-Za-z0-9_-]+", str(p)) else repr(str(p))
        for p in first["loc"] if not str(p).startswith("function-")
    )
    # pydantic puts the union tag (the provider kind) into the location ("providers.0.<kind>.seed"): drop it.
    kinds = "|".join(re.escape(k) for k in registry.provider_kinds())
    if kinds:
        where = re.sub(rf"(\.\d+)\.({kinds})(?=\.|$)", r"\1", where)
    where = re.sub(r"\.(\d+)", r"[\1]", where)
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    msg = msg.removeprefix("Value error, ")
    extra = "" if len(err.errors()) == 1 else f" (and {len(err.errors()) - 1} more)"
    line = f"{source}: {where or 'top level'}: {msg}{extra}"
    return line.replace("\r", "\\r").replace("\n", "\\n")


def _check_state_keys(data: dict, source: str) -> None:
    url = data.get("state_url")
    if "state_url" in data and "state_path" in data and url is not None:
        raise ConfigError(f"{source}: state_url: give state_path (SQLite) or state_url (PostgreSQL), not both")
    if isinstance(url, str):
        from .store.engine import url_password

        if url_password(url):
            raise ConfigError(
                f"{source}: state_url: a password in the config file is refused; give it in "
                f"QPU_EXPORTER_STATE_PASSWORD, PGPASSWORD or a libpq password file"
            )


def load_config(path: str | Path | None) -> Config:
    """Load and validate; raise ConfigError with one line. None gives the default fleet."""
    if path is None:
        # The built-in demo polls faster than the production defaults so `make run` visibly
        # moves within a minute.
        data: Any = {"schedule": {"calibration_interval": "30s", "jobs_interval": "15s"}}
        # ... and features what the providers' demos show (the simulated fleet: per-workload
        # SLOs and budgets, a fleet budget in wall-clock terms; a user config gets them only
        # from its own workloads: and cost: blocks).
        for spec in registry.provider_specs():
            if spec.demo_config is not None:
                data.update(spec.demo_config())
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
    _check_state_keys(data, source)
    env_state = os.environ.get("QPU_EXPORTER_STATE_PATH")
    if env_state:
        data = {**data, "state_path": env_state}
    # A URL from the environment (a Kubernetes Secret, say) may carry the password; one in a
    # file may not. Set, it is used instead of the state_path file.
    for env, key in (("QPU_EXPORTER_STATE_URL", "state_url"), ("QPU_EXPORTER_INSTANCE", "instance")):
        if os.environ.get(env):
            data = {**data, key: os.environ[env]}
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def _rebuild() -> None:
    """A provider registered after this module was imported: widen the union."""
    global ProviderConfig
    ProviderConfig = _provider_union()
    Config.model_fields["providers"].annotation = list[ProviderConfig]
    Config.model_rebuild(force=True)


registry.on_change(_rebuild)
