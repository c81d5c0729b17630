"""Loading alerts/config.yaml, merging an override over it, and reading durations."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


class ConfigError(ValueError):
    """A config value is missing, unknown or malformed; the message names the key."""


def duration_seconds(text: str, key: str = "duration") -> float:
    """Seconds in a Prometheus duration such as "90s", "1h30m" or "3d"."""
    text = str(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{key}: {text!r} is not a Prometheus duration (e.g. 30s, 5m, 2h, 1d)")
    return sum(int(n) * DURATION_UNITS[u] for n, u in parts)


def deep_merge(base: Any, override: Any, path: str = "") -> Any:
    """Override merged over base: maps key by key, anything else replaced.

    Keys the base does not have are rejected, because a typo in an override would otherwise be
    silently ignored and the fast test variant would run with production timings.
    Maps whose keys are data (provider or collector names) accept new keys.
    """
    if isinstance(base, dict) and isinstance(override, dict):
        merged = copy.deepcopy(base)
        open_map = path.endswith(("after_by_provider", "after_by_collector", "dashboards"))
        for key, value in override.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in base:
                if not open_map:
                    raise ConfigError(f"{where}: unknown key")
                merged[key] = copy.deepcopy(value)
            else:
                merged[key] = deep_merge(base[key], value, where)
        return merged
    if isinstance(base, dict) != isinstance(override, dict):
        raise ConfigError(f"{path}: expected {'a mapping' if isinstance(base, dict) else 'a value'}")
    return copy.deepcopy(override)


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data


def load_config(default_path: Path, override_path: Path | None = None) -> dict:
    """The default config, with the override file (if any) merged over it."""
    config = read_yaml(default_path)
    if override_path is not None:
        config = deep_merge(config, read_yaml(override_path))
    return config
