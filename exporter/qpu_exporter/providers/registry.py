"""Which providers exist: each provider package registers one ``ProviderSpec`` (its kind,
its config model and how to build it), and generic code asks the registry instead of naming
providers. ``providers/__init__.py`` registers the built-in ones; another package (or a test)
registers its own with ``register_provider`` and is then accepted by the config, built by
the factory and exported like the others."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# build(config, origin=<Unix seconds the fleet started>, clock=<time source>) -> Provider.
# Imports the provider's SDK lazily, so an unconfigured provider never loads it; an
# ImportError becomes a provider whose every poll fails as "unavailable".
Builder = Callable[..., Any]


@dataclass(frozen=True)
class ProviderSpec:
    kind: str  # the `kind:` in the config and the `provider` label
    config_model: type  # a pydantic model whose `kind` field is Literal[kind]
    build: Builder
    # Config used when the file has no `providers` key (the embedded default), else None.
    default_config: dict | None = None
    # Checks what the config model cannot (files it names, ...) without building the
    # provider; raises base.ProviderSetupError with one line. Run by check-config and at start.
    check: Callable[[Any], None] | None = None
    # Checks the provider's entry against the rest of the config while it validates:
    # (entry, the whole Config) -> None, raising ValueError("<key of the entry>: problem"),
    # which the config reports as one line at providers[i].<key> (e.g. the simulated fleet's
    # workload tags need a workloads: block that counts them).
    check_with_config: Callable[[Any, Any], None] | None = None
    # The top-level keys of the no-config demo (`serve` without --config) that feature this
    # provider, e.g. its providers entry and a workloads: block; None: default_config only.
    demo_config: Callable[[], dict] | None = None


_lock = threading.Lock()
_specs: dict[str, ProviderSpec] = {}
_listeners: list[Callable[[], None]] = []


def register_provider(spec: ProviderSpec) -> None:
    """Add (or replace) a provider kind; the config union is rebuilt at once."""
    with _lock:
        _specs[spec.kind] = spec
        listeners = list(_listeners)
    for notify in listeners:
        notify()


def unregister_provider(kind: str) -> None:
    with _lock:
        _specs.pop(kind, None)
        listeners = list(_listeners)
    for notify in listeners:
        notify()


def provider_specs() -> tuple[ProviderSpec, ...]:
    with _lock:
        return tuple(_specs.values())


def provider_spec(kind: str) -> ProviderSpec | None:
    with _lock:
        return _specs.get(kind)


def provider_kinds() -> tuple[str, ...]:
    with _lock:
        return tuple(_specs)


def on_change(listener: Callable[[], None]) -> None:
    with _lock:
        _listeners.append(listener)
