"""Probe execution outside the serving process: the worker and its supervision.

The serving process keeps the schedule, the budget ledger, the lease and the records; what is
heavy about a probe runs in a worker: importing qiskit and Aer, synthesising and generating the
RB circuits, simulating them or submitting them to the provider and waiting for the result.
Circuit generation and Aer conversion hold the GIL for seconds and leave hundreds of MB behind,
and a crash in native code (or the OOM killer) would take the exporter with it; in a separate
process they cost the exporter nothing, and the memory goes back to the system when the worker
exits after its probe.

A worker is a fresh interpreter (``python -c ENTRY``: fork+exec, never a fork of the threaded
server) talking to its supervisor over two pipes (pickled messages):

    supervisor -> worker: ("init", sys.path), ("provider", provider), ("warm", basis, n),
                          ("attempt", AttemptSpec), ("exit",)
    worker -> supervisor: ("ready",), ("progress", stage, done, total), ("generated", metadata),
                          ("done", result), ("error", kind, message)

The provider travels pickled: providers rebuild themselves from their config (``__reduce__``),
so the worker runs the provider's own ``run_circuits`` (Aer, IBM SamplerV2, Braket tasks).
``serve`` is the one execution path; ``ThreadWorker`` runs it on a thread of the calling
process instead (for providers that cannot be rebuilt elsewhere, and for tests that count a
fake provider's calls), with the same messages, but it cannot be killed.

Supervision (``WorkerSession``): start-up (imports, provider rebuild, the basis synthesis every
probe needs) is bounded by ``START_SECONDS``, each attempt by the runner's deadline. While
waiting, the supervisor renews the probe lease every ``heartbeat_every`` seconds; a lost lease,
a deadline passed or the runner stopping kills the worker (SIGKILL) and reaps it. A worker that
dies (a signal, the OOM killer, an exit) is noticed at once: its end of the pipe closes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Pipe

from ..logs import JsonFormatter, get_logger
from ..model import CalibrationSnapshot
from ..providers.base import Provider, ProviderError
from . import fitting

log = get_logger("qpu_exporter.probe")

# Not ``-m``: that would run this module as __main__ beside the copy unpickling imports.
ENTRY = "import sys; from qpu_exporter.probes.worker import main; sys.exit(main(sys.argv[1:]))"
START_SECONDS = 300.0  # import, rebuild the provider, synthesise the basis's Cliffords
WORKER_NICE = 10  # CPU priority below the serving process (weight ~1/10 when both want a core)
POLL_SECONDS = 0.25  # how often a waiting supervisor checks the stop flag
PARENT_CHECK_SECONDS = 1.0  # how often a worker checks that its supervisor still lives

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class AttemptSpec:
    """Everything a worker needs to run one attempt of a probe (plain, picklable data)."""

    backend: str
    qubits: tuple[int, ...]
    design: dict  # rb.design.RBDesign.to_dict()
    basis: tuple[str, ...]
    run_seed: int
    agreement_shots: int
    calibration: CalibrationSnapshot  # the probed qubits' part of the snapshot designed under
    attempt_id: str | None = None  # tags the provider's jobs, so they can be found and cancelled


class WorkerFailure(Exception):
    """The worker gave no answer. ``kind``: died | timeout | lease_lost | stopped."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# --- inside the worker -------------------------------------------------------------------------

def probe_circuits(spec: AttemptSpec, progress: Progress | None = None) -> dict:
    """The probe's RB circuits (``rb.circuits.RBCircuit``) and, for pair probes, the Bell circuit."""
    from ..rb.circuits import rb_circuits
    from .agreement import bell_circuit

    design = spec.design
    out = []
    total = sum(design["samples_per_length"]) * (2 if design["interleaved_gate"] else 1)
    for length, k in zip(design["lengths"], design["samples_per_length"]):
        # One length at a time (same circuits as one call: generation is a pure function of
        # seed, length and sample) so the CLI can show progress.
        out += rb_circuits(spec.qubits, [length], [k], spec.basis, design["seed"], design["interleaved_gate"])
        if progress:
            progress("generate", len(out), total)
    for c in out:
        c.circuit.metadata = {"physical_qubits": list(spec.qubits), "fingerprint": c.fingerprint}
    agreement = bell_circuit(spec.basis, spec.qubits) if spec.agreement_shots else None
    return {"rb": out, "agreement": agreement}


def execute_attempt(provider: Provider, spec: AttemptSpec, progress: Progress | None = None,
                    circuits: dict | None = None) -> dict:
    """Generate (unless given), run and fit one attempt: {"sequences": [metadata + counts],
    "agreement": {fingerprint, counts, shots} | None, "fit": (result | None, reason)}.
    Raises ProviderError."""
    from ..rb.circuits import circuit_fingerprint

    circuits = circuits if circuits is not None else probe_circuits(spec, progress)
    sequences = [c.metadata() for c in circuits["rb"]]
    if progress:
        progress("run", 0, 1)
    counts = provider.run_circuits(spec.backend, [c.circuit for c in circuits["rb"]], spec.design["shots"],
                                   spec.run_seed, spec.calibration, attempt_id=spec.attempt_id)
    agreement = None
    if spec.agreement_shots:
        bell = circuits["agreement"]
        [bell_counts] = provider.run_circuits(spec.backend, [bell], spec.agreement_shots, spec.run_seed + 1,
                                              spec.calibration, attempt_id=spec.attempt_id)
        agreement = {"fingerprint": circuit_fingerprint(bell, bell.metadata["physical_qubits"]),
                     "counts": bell_counts, "shots": spec.agreement_shots}
    if progress:
        progress("run", 1, 1)
    if len(counts) != len(sequences):
        raise ProviderError("malformed", f"{len(counts)} results for {len(sequences)} circuits")
    for seq, c in zip(sequences, counts):
        seq["counts"] = c
    return {"sequences": sequences, "agreement": agreement,
            "fit": fitting.fit_record({"design": spec.design, "sequences": sequences})}


# qiskit's plugin namespaces that transpile() loads in full on first use.
_TRANSPILER_PLUGIN_GROUPS = tuple(f"qiskit.transpiler.{stage}" for stage in
                                  ("init", "layout", "routing", "translation", "optimization", "scheduling")) + (
    "qiskit.unitary_synthesis", "qiskit.synthesis")


def builtin_transpiler_plugins_only() -> None:
    """Let the worker's transpiler see qiskit's own plugins only. transpile() loads every
    installed plugin of every stage (stevedore), and other packages' plugins import their whole
    package (qiskit-ibm-runtime's translation plugins, qiskit-experiments' synthesis plugins):
    seconds of CPU and ~100 MB per worker. Our Clifford synthesis names no plugin, so it runs
    qiskit's defaults either way (tests/test_probe_worker.py checks the circuits are the same).
    Uses stevedore's per-namespace entry point cache; without it, nothing changes."""
    try:
        from stevedore import _cache
        from stevedore.extension import ExtensionManager
    except ImportError:
        return
    cache = getattr(ExtensionManager, "ENTRY_POINT_CACHE", None)
    if not isinstance(cache, dict):
        return
    for group in _TRANSPILER_PLUGIN_GROUPS:
        eps = list(_cache.get_group_all(group))
        cache[group] = [ep for ep in eps if ep.value.split(":")[0].split(".")[0] == "qiskit"]


def warm(basis: tuple[str, ...], num_qubits: int) -> None:
    """Load qiskit's transpiler plugins and synthesise the basis's Cliffords (seconds, once per
    worker), so an attempt's deadline measures the probe, not the imports."""
    from ..rb.circuits import rb_circuits

    rb_circuits(tuple(range(num_qubits)), [1], [1], basis, 0, None)


def serve(inbox: Connection, outbox: Connection, provider: Provider) -> None:
    """The worker loop (in a worker process, or on a ThreadWorker's thread)."""
    cached: tuple[tuple, dict] | None = None  # a retry reuses the attempt's circuits

    def progress(stage: str, done: int, total: int) -> None:
        outbox.send(("progress", stage, done, total))

    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            return
        try:
            if msg[0] == "exit":
                return
            if msg[0] == "warm":
                try:
                    warm(msg[1], msg[2])
                except ValueError as exc:  # a basis we cannot synthesise Cliffords in: retrying cannot help
                    outbox.send(("error", "unsupported", str(exc)))
                    continue
                outbox.send(("ready",))
            elif msg[0] == "attempt":
                spec: AttemptSpec = msg[1]
                key = (spec.qubits, spec.basis, spec.design["seed"], tuple(spec.design["lengths"]), spec.agreement_shots)
                if cached is None or cached[0] != key:
                    cached = None  # free the previous probe's circuits before generating
                    cached = (key, probe_circuits(spec, progress))
                    outbox.send(("generated", [c.metadata() for c in cached[1]["rb"]]))
                try:
                    outbox.send(("done", execute_attempt(provider, spec, progress, cached[1])))
                except ProviderError as exc:
                    outbox.send(("error", exc.kind, str(exc)))
        except (BrokenPipeError, EOFError, OSError):
            return  # the supervisor is gone
        except Exception as exc:  # noqa: BLE001 - reported as the attempt's failure, the worker lives on
            log.exception("probe worker error", error=type(exc).__name__)
            try:
                outbox.send(("error", "internal", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"))
            except OSError:
                return


def _watch_parent(parent: int) -> None:
    """A worker whose supervisor died (SIGKILL, crash) exits instead of running on: its attempt
    is recorded in the state file and cancelled by the next process that takes the backend."""
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            os._exit(3)


def main(argv: list[str]) -> int:
    """Entry point of a worker process (``ENTRY``); argv: IN_FD OUT_FD LOG_LEVEL LOG_FORMAT."""
    inbox, outbox = Connection(int(argv[0]), writable=False), Connection(int(argv[1]), readable=False)
    # The serving process blocks SIGTERM/SIGINT in its threads and the mask survives exec.
    # Ctrl-C at a terminal reaches the whole process group: the supervisor stops the worker.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # when memory runs out, the kernel kills the worker, never the exporter
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    # A probe is a batch job: on a small machine the serving process's scrapes come first.
    os.nice(WORKER_NICE)
    from .. import logs

    logs.setup(argv[2], argv[3])
    logging.getLogger("qiskit").setLevel(logging.WARNING)
    builtin_transpiler_plugins_only()
    threading.Thread(target=_watch_parent, args=(os.getppid(),), name="watch-parent", daemon=True).start()
    try:
        kind, path = inbox.recv()
        if kind == "init":
            sys.path[:] = path  # the supervisor's import path, as multiprocessing's spawn does
        kind, provider = inbox.recv()
    except Exception as exc:  # noqa: BLE001 - e.g. a provider module that does not import here
        outbox.send(("error", "unsupported", f"cannot rebuild the provider in the worker: {type(exc).__name__}: {exc}"))
        return 1
    serve(inbox, outbox, provider)
    return 0


# --- the supervisor's side --------------------------------------------------------------------------

def _log_settings() -> tuple[str, str]:
    level = logging.getLevelName(logging.getLogger("qpu_exporter").getEffectiveLevel()).lower()
    level = {"warning": "warn", "critical": "error", "notset": "info"}.get(level, level)
    json_logs = any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
    return level, "json" if json_logs else "logfmt"


def _exit_description(returncode: int | None) -> str:
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class _Pipes:
    """The supervisor's ends of a worker's two pipes: ``_out`` to it, ``_in`` from it."""

    _out: Connection
    _in: Connection

    def send(self, msg: tuple) -> None:
        self._out.send(msg)

    def poll(self, timeout: float) -> bool:
        return self._in.poll(timeout)

    def recv(self) -> tuple:
        return self._in.recv()


class ProcessWorker(_Pipes):
    """A worker process. Construction starts it and hands it the provider."""

    def __init__(self, provider: Provider):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        level, fmt = _log_settings()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", ENTRY, str(to_child_r), str(from_child_w), level, fmt],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, close_fds=True,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.pid: int | None = self.proc.pid
        self._out = Connection(to_child_w, readable=False)
        self._in = Connection(from_child_r, writable=False)
        try:
            self._out.send(("init", list(sys.path)))
            self._out.send(("provider", provider))  # pickled: the worker rebuilds it from its config
        except Exception as exc:
            self.kill()
            if isinstance(exc, OSError):
                raise
            # Deterministic (a provider holding a lock or a session): retrying cannot help.
            raise ProviderError("unsupported", f"the {provider.kind} provider cannot be sent to a probe worker: "
                                               f"{type(exc).__name__}: {exc}") from None

    def died(self) -> str:
        """Why the worker is gone (waits briefly for its exit status)."""
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()
            return "closed its pipe and was killed"
        return _exit_description(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL and reap (no zombie)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._close_pipes()

    def close(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit; kill it if it does not within ``timeout``. Always reaps."""
        if self.proc.poll() is None:
            try:
                self._out.send(("exit",))
                self.proc.wait(timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def _close_pipes(self) -> None:
        for conn in (self._out, self._in):
            try:
                conn.close()
            except OSError:
                pass


class ThreadWorker(_Pipes):
    """``serve`` on a thread of this process, with the same messages. It cannot be
    killed: a deadline or a lost lease abandons it (the thread ends when its provider call
    returns). For providers that cannot be rebuilt in another process, and tests."""

    # Long-lived threads, never one thread per probe: a thread that used qiskit's native
    # circuit code and exits while another thread builds circuits crashed the process
    # (segfault in QuantumCircuit.__init__, qiskit 2.6). An abandoned worker keeps its thread
    # until its provider call returns, hence more threads than probes run at once.
    _threads = ThreadPoolExecutor(max_workers=16, thread_name_prefix="probe-worker")

    def __init__(self, provider: Provider):
        self.pid: int | None = None
        child_in, self._out = Pipe(duplex=False)
        self._in, child_out = Pipe(duplex=False)
        self._done = self._threads.submit(self._run, child_in, child_out, provider)

    @staticmethod
    def _run(inbox: Connection, outbox: Connection, provider: Provider) -> None:
        try:
            serve(inbox, outbox, provider)
        finally:
            outbox.close()
            inbox.close()

    def died(self) -> str:
        return "thread ended"

    def kill(self) -> None:
        # The thread's next send or recv fails and ends it; its results are not read.
        self._out.close()
        self._in.close()

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._out.send(("exit",))
        except OSError:
            pass
        try:
            self._done.result(timeout)
        except Exception:  # noqa: BLE001 - a worker that does not end is abandoned
            pass
        self.kill()


WORKER_KINDS = {"process": ProcessWorker, "thread": ThreadWorker}


@dataclass
class WorkerSession:
    """One probe's worker, supervised: start-up, attempts, heartbeats, deadline, clean-up."""

    worker: ProcessWorker | ThreadWorker
    heartbeat: Callable[[], bool]  # renews the probe lease; False when it is lost
    heartbeat_every: float
    stopped: threading.Event
    progress: Progress | None = None
    sequences: list[dict] | None = field(default=None, init=False)  # the circuits' metadata, once generated
    _closed: bool = field(default=False, init=False)

    def start(self, basis: tuple[str, ...], num_qubits: int) -> None:
        try:
            self.worker.send(("warm", tuple(basis), num_qubits))
        except OSError:
            pass  # the worker is gone: why (its last message, or its exit) is read below
        self._wait(time.monotonic() + START_SECONDS, "start")

    def attempt(self, spec: AttemptSpec, timeout: float) -> dict:
        """Run one attempt: its result, or ProviderError (reported by the worker), or WorkerFailure."""
        try:
            self.worker.send(("attempt", spec))
        except OSError:
            raise self._died() from None
        reply = self._wait(time.monotonic() + timeout, "attempt")
        if reply[0] == "error":
            raise ProviderError(reply[1], reply[2])
        return reply[1]

    def _wait(self, deadline: float, what: str) -> tuple:
        next_beat = time.monotonic() + self.heartbeat_every
        renewed = time.monotonic()
        while True:
            now = time.monotonic()
            if self.stopped.is_set():
                self._kill()
                raise WorkerFailure("stopped", "the runner is stopping")
            if now >= deadline:
                self._kill()
                limit = START_SECONDS if what == "start" else None
                raise WorkerFailure("timeout", f"worker killed: no answer within its deadline"
                                               + (f" of {limit:g} s for start-up" if limit else ""))
            if now >= next_beat:
                renewed = self._beat(renewed, now)
                next_beat = now + self.heartbeat_every
            try:
                ready = self.worker.poll(max(0.0, min(deadline, next_beat, now + POLL_SECONDS) - now))
                if not ready:
                    continue
                reply = self.worker.recv()
            except (EOFError, OSError):
                raise self._died() from None
            if reply[0] == "progress":
                if self.progress:
                    self.progress(*reply[1:])
                continue
            if reply[0] == "generated":
                self.sequences = reply[1]
                continue
            if reply[0] == "error" and what == "start":
                raise ProviderError(reply[1], reply[2])
            return reply

    def _beat(self, renewed: float, now: float) -> float:
        """Renew the lease; kill the worker once it is lost, or when renewals have failed (the
        state file unreachable) for three heartbeats, i.e. before the lease could expire."""
        try:
            ok: bool | None = self.heartbeat()
        except Exception as exc:  # noqa: BLE001 - a store fault; the lease still runs for a while
            log.warning("probe lease renewal failed", error=type(exc).__name__)
            ok = None
        if ok:
            return now
        if ok is False or now - renewed >= 3 * self.heartbeat_every:
            self._kill()
            raise WorkerFailure("lease_lost", "worker killed: " + ("another process took the backend's probe lease"
                                                                  if ok is False else "the probe lease could not be renewed"))
        return renewed

    def _died(self) -> WorkerFailure:
        how = self.worker.died()
        self._closed = True
        self.worker.kill()
        return WorkerFailure("died", f"worker {how}")

    def _kill(self) -> None:
        self._closed = True
        self.worker.kill()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.worker.close()

