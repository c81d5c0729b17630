"""Config reload without a restart: SIGHUP and ``POST /-/reload``, as Prometheus does.

A reload reads the config file again and, when it is valid and changes nothing that needs a
restart, replaces the polling half of the running exporter: providers (only those whose
config changed are rebuilt, the others keep their connections and state), their backends
and incidents, the schedule, probe settings and budgets, the cost budget, and the whole
``workloads`` block (tag, max, budgets, objectives: the workload book is rebuilt from the new
block and the kept set in the state, so values kept stay kept and counters never move between
labels; adding the block starts per-workload series, removing it stops them, as a restart
would). The store, the drift detectors, the HTTP servers and what is already served stay. A
bad file or a change to a key in ``RESTART_ONLY`` keeps the running config and says why; the
outcome is exported as ``qpu_exporter_config_last_reload_successful`` and
``qpu_exporter_config_last_reload_success_timestamp_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client.core import GaugeMetricFamily

from .catalog import SPECS
from .config import Config, ConfigError
from .logs import get_logger

log = get_logger(__name__)

# Top-level keys a running exporter cannot take over: where state lives and under which
# instance name, which shard of the fleet this instance owns, and the drift detectors' design
# (their state was built for it). `workloads` is reloadable (see above).
RESTART_ONLY = ("state_path", "state_url", "instance", "shard", "drift")


class ReloadError(Exception):
    """One line: why the new config was not applied."""


def restart_only_changes(running: Config, new: Config) -> list[str]:
    return [key for key in RESTART_ONLY if getattr(running, key, None) != getattr(new, key, None)]


class Reloader:
    """Serialises reloads of one exporter and remembers how the last one went."""

    def __init__(self, exporter, load: Callable[[], Config], clock: Callable[[], float] = time.time):
        self.exporter = exporter
        self.load = load  # reads the config as at start (file, env overrides, --shard)
        self.clock = clock
        self.last_successful = True  # the config loaded at start counts, as in Prometheus
        self.last_success_at = clock()
        self.applied = 0  # reloads applied since start
        self._lock = threading.Lock()

    def reload(self) -> tuple[bool, str]:
        """(True, summary) or (False, why); never raises."""
        with self._lock:
            try:
                new = self.load()
                changed = restart_only_changes(self.exporter.config, new)
                if changed:
                    raise ReloadError(f"{', '.join(changed)}: cannot change without a restart; running config kept")
                summary = apply_config(self.exporter, new)
            except (ConfigError, ReloadError) as exc:
                self.last_successful = False
                self.exporter.view.touch()
                log.error("config reload failed; running config kept", error=str(exc))
                return False, str(exc)
            except Exception as exc:  # noqa: BLE001 - a reload must never take the exporter down
                self.last_successful = False
                self.exporter.view.touch()
                log.exception("config reload failed; running config kept", error=f"{type(exc).__name__}: {exc}")
                return False, f"internal error: {type(exc).__name__}"
            self.last_successful = True
            self.last_success_at = self.clock()
            self.applied += 1
            self.exporter.view.touch()
            log.info("config reloaded", **summary)
            return True, "config reloaded"

    def families(self) -> list[GaugeMetricFamily]:
        ok = GaugeMetricFamily("qpu_exporter_config_last_reload_successful",
                               SPECS["qpu_exporter_config_last_reload_successful"].help)
        ok.add_metric([], 1.0 if self.last_successful else 0.0)
        at = GaugeMetricFamily("qpu_exporter_config_last_reload_success_timestamp_seconds",
                               SPECS["qpu_exporter_config_last_reload_success_timestamp_seconds"].help)
        at.add_metric([], self.last_success_at)
        return [ok, at]


def apply_config(exporter, new: Config) -> dict:
    """Swap the polling half of ``exporter`` for one built from ``new``. Providers whose
    config is unchanged are kept as they are."""
    from .providers.factory import build_providers

    old_config, old_providers = exporter.config, list(exporter.providers)
    # Build first: if a provider cannot be built, nothing has been stopped yet.
    unchanged = {id(cfg): prov for cfg, prov in zip(old_config.providers, old_providers)}
    kept: list = []
    providers = []
    for cfg in new.providers:
        same = next((unchanged.pop(id(old)) for old in old_config.providers
                     if id(old) in unchanged and old == cfg), None)
        if same is not None:
            kept.append(same)
            providers.append(same)
        else:
            providers.extend(build_providers(new.model_copy(update={"providers": [cfg]}), origin=exporter.origin))
    exporter.stop_polling()
    for p in old_providers:
        if not any(p is k for k in kept):
            p.close()
    exporter.config = new
    exporter.providers = providers
    kinds = {p.kind for p in providers}
    exporter.view.retain_providers(kinds)
    exporter.build_polling()
    exporter.start_polling()
    exporter.http.set(provider_kinds=[p.kind for p in providers])
    return {"providers": ",".join(p.kind for p in providers), "rebuilt": len(providers) - len(kept),
            "kept": len(kept)}
