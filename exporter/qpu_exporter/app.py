"""The running exporter: builds the parts from config, starts them, stops them cleanly."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from functools import partial
from pathlib import Path

from . import __version__
from .config import Config
from .drift_feed import DriftFeed
from .logs import get_logger
from .exposition import CalibrationCache, HistogramCache, Renderer, families, workload_config_families
from .providers.factory import build_providers
from .scheduler import Poller, Scheduler
from .probes.shared import FOLLOW_SECONDS, SharedProbes
from .server import HTTPServers
from .sharding import parse_shard
from .store import StateError, StorageError, Store
from .view import FleetView
from .websecurity import WebConfig
from .workloads import WorkloadBook

log = get_logger(__name__)


def revision() -> str:
    env = os.environ.get("QPU_EXPORTER_REVISION")
    if env:
        return env
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
            text=True, timeout=2, check=False,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def only_backends(fams, backends: set[tuple[str, str]]):
    """The families with samples of backends not in ``backends`` left out."""
    for fam in fams:
        fam.samples = [s for s in fam.samples
                       if not s.labels.get("backend") or (s.labels.get("provider"), s.labels["backend"]) in backends]
    return fams


class Exporter:
    def __init__(self, config: Config, listen: tuple[str, int] | list[tuple[str, int]], web: WebConfig | None = None,
                 telemetry_path: str = "/metrics"):
        self.config = config
        self.store = Store.from_config(config)
        try:
            self.store.claim_instance()  # two exporters with one instance name would share counters
        except StateError:
            self.store.close()
            raise
        # The simulated fleet's origin is persisted so a restart continues the same history.
        self.origin = origin = float(self.store.meta_default("simulation_origin", repr(time.time())))
        self.providers = build_providers(config, origin=origin)
        self.view = FleetView()
        # A shard shows only its own backends, also from state other exporters share.
        self.owns = parse_shard(config.shard).owns if config.shard else None
        self.drift = DriftFeed(config.drift.settings(), self.store, owns=self.owns)
        self._calibration_cache: CalibrationCache = {}  # only the renderer thread uses these two
        self._histogram_cache: HistogramCache = {}
        self.workloads: WorkloadBook | None = None  # build_polling sets it
        self.reloader = None  # set by the CLI (reload.Reloader): SIGHUP and POST /-/reload
        build = partial(self._families, version=__version__, revision=revision())
        self.renderer = Renderer(self.view, build)
        self.build_polling()
        self.http = HTTPServers(
            listen if isinstance(listen, list) else [listen], self.renderer, self.view,
            [p.kind for p in self.providers], __version__, web, telemetry_path,
        )
        self._stopped = threading.Event()

    def build_polling(self) -> None:
        """The part a config reload replaces (reload.py): workload book, poller, probe runner,
        scheduler."""
        self.workloads = self._workload_book()
        self.poller = Poller(self.providers, self.store, self.view, on_calibration=[self.drift.on_calibration],
                             timeout=self.config.schedule.poll_timeout, workloads=self.workloads)
        self.probes = self._probe_runner() if self.config.probes.enabled else None
        self.scheduler = Scheduler(self.poller, self.config, self.probes)

    def start_polling(self) -> None:
        self.scheduler.start()
        # Detector state is saved every 30 s and at shutdown: a crash loses at most 30 s of
        # detector updates, never the baseline.
        self.scheduler.every(30.0, self.drift.save, "save-drift-state")
        self.scheduler.every(30.0, self.store.keep_instance_claim, "state-instance-claim")
        if self.probes is not None:  # the rolling budget window frees budget as time passes
            self.scheduler.every(60.0, self.probes.refresh_budget, "probe-budget")
            self.scheduler.every(FOLLOW_SECONDS, self.shared_probes.follow, "probe-follow")

    def stop_polling(self) -> None:
        self.scheduler.shutdown(wait=False)
        self.poller.close()
        if self.probes is not None:
            self.probes.stop(timeout=2.0)  # waits briefly; an unfinished probe is recorded as never run

    def _workload_book(self) -> WorkloadBook | None:
        """The workloads: block's book, its cache seeded with the kept set of the state (shared
        by every exporter on the database). Without the state at hand (a reload while the
        database is away) the previous book's cache serves: the store reads the kept set
        itself before it keeps a value, so a stale cache can only cost a read."""
        cfg = self.config.workloads
        if cfg is None:
            return None
        try:
            kept = self.store.kept_workloads()
        except StorageError as exc:
            log.warning("kept workloads not read; the store reads them when needed", error=str(exc))
            kept = [] if self.workloads is None else self.workloads.kept()
        return WorkloadBook(cfg.tag, cfg.max, kept, cfg.configured())

    def _families(self, snapshot, *, version: str, revision: str):
        config = self.config  # one reading: a reload swaps it whole
        extra = self.drift.families() + (self.probes.feed.families() if self.probes else [])
        if self.reloader is not None and self.reloader.applied:
            # A reload may have removed backends the detectors and probe records still know.
            extra = only_backends(extra, set(snapshot.backends))
        if config.workloads is not None:
            extra += workload_config_families(config.workloads)
        return families(snapshot, self.store.counters(), version=version, revision=revision,
                        daily_budget_usd=config.cost.daily_budget_usd,
                        extra=extra + (self.reloader.families() if self.reloader else []),
                        calibration_cache=self._calibration_cache, workloads=config.workloads is not None,
                        histogram_cache=self._histogram_cache)

    def _probe_runner(self):
        from .probes.feed import ProbeFeed
        from .probes.runner import ProbeRunner

        def status_of(provider, backend):
            return self.view.copy().status.get((provider.kind, backend)) or provider.status(backend)

        def calibration_of(provider, backend):
            # The snapshot the last poll validated and stored; the provider's when none yet.
            return self.view.copy().calibration.get((provider.kind, backend)) or provider.calibration(backend)

        feed = ProbeFeed()
        # Results of probes any exporter on this database ran: now, and as they are recorded.
        self.shared_probes = SharedProbes(self.store, feed, on_probe_value=self.drift.on_probe, owns=self.owns,
                                          on_change=self.view.touch)
        self.shared_probes.load()
        return ProbeRunner(self.providers, self.store, self.config.probes, status_of=status_of,
                           calibration_of=calibration_of, feed=feed, on_probe_value=self.drift.on_probe,
                           on_change=self.view.touch)

    @property
    def address(self) -> tuple[str, int]:
        return self.http.server_address[:2]

    def start(self) -> None:
        self.renderer.start()
        self.http.serve_in_thread()
        self.start_polling()
        log.info("serving", address=",".join(self.http.addresses), state=self.store.display,
                 instance=self.store.instance, providers=",".join(p.kind for p in self.providers),
                 tls=self.http.web.tls_enabled)

    def stop(self) -> None:
        """Stop accepting work, let in-flight polls finish briefly, flush state."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        started = time.monotonic()
        self.http.shutdown()
        self.renderer.stop()
        self.stop_polling()
        self.drift.save()
        for p in self.providers:
            p.close()
        self.store.close()
        log.info("stopped", duration_seconds=round(time.monotonic() - started, 2))
