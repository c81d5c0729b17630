"""The real calibration snapshots that qiskit-ibm-runtime ships with its fake backends.

Read straight from the package's JSON files (the raw ``/properties`` and
``/configuration`` payloads), which is far faster than instantiating 68 FakeBackendV2
objects and is the same wire format the IBM provider parses.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

# One Eagle r3, one Heron r2 and one Heron r3 snapshot: the embedded default fleet.
DEFAULT_FLEET = ("fake_sherbrooke", "fake_fez", "fake_boston")


@functools.lru_cache(maxsize=1)
def _backends_dir() -> Path:
    # find_spec locates the package without importing it (importing qiskit_ibm_runtime
    # costs seconds, which every CLI invocation validating a config would pay).
    spec = importlib.util.find_spec("qiskit_ibm_runtime")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("qiskit-ibm-runtime is not installed")
    return Path(spec.submodule_search_locations[0]) / "fake_provider" / "backends"


@functools.lru_cache(maxsize=1)
def available_snapshots() -> tuple[str, ...]:
    """Names like 'fake_sherbrooke' for every snapshot with properties (some very old
    fakes ship a configuration only)."""
    names = []
    for d in sorted(_backends_dir().iterdir()):
        if d.is_dir() and (d / f"props_{d.name}.json").exists() and (d / f"conf_{d.name}.json").exists():
            names.append(f"fake_{d.name}")
    return tuple(names)


def load_snapshot(name: str) -> tuple[dict, dict]:
    """(configuration payload, properties payload) for a fake backend name."""
    short = name.removeprefix("fake_")
    d = _backends_dir() / short
    with open(d / f"conf_{short}.json", encoding="utf-8") as f:
        conf = json.load(f)
    with open(d / f"props_{short}.json", encoding="utf-8") as f:
        props = json.load(f)
    return conf, props


def processor_name(conf: dict) -> str:
    """'Eagle r3', 'Heron r2', ... from a configuration payload ('' when absent)."""
    pt = conf.get("processor_type") or {}
    family = pt.get("family")
    if not family:
        return ""
    rev = pt.get("revision")
    return f"{family} r{rev}" if rev not in (None, "") else str(family)
