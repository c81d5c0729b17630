"""``qpu-exporter probe`` and ``qpu-exporter check``: run probes now, from the command line.

They share the running exporter's state (``state_path`` or ``state_url``): the same budget ledger, the same
per-backend lease (a CLI probe and a scheduled one never overlap) and the same probe records.
They do not move the probe counters, which count the exporters' scheduled probes (their results
are published by the running exporters, which follow the shared records).
Exit codes: probe 0 = every probe succeeded, 1 = a probe failed or was skipped; check 0 = EPC at
or below --max-epc, 1 = above it or not measurable; both 2 = bad arguments or config.
"""

from __future__ import annotations

import math
import sys
import time

from .targets import ProbeTarget


class UsageError(Exception):
    """Bad arguments: one line, exit 2."""


def parse_qubits(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        qubits = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--qubits: expected e.g. 3 or 3,4, got {text!r}") from None
    if not 1 <= len(qubits) <= 2 or len(set(qubits)) != len(qubits) or min(qubits) < 0:
        raise UsageError("--qubits: one qubit or two distinct non-negative qubits")
    return qubits


class _Progress:
    """tqdm on stderr when installed, else a plain counter line."""

    def __init__(self, label: str):
        self.label = label
        self.bar = None
        try:
            from tqdm import tqdm  # optional

            self._tqdm = tqdm
        except ImportError:
            self._tqdm = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._tqdm is not None:
            if self.bar is None or self.bar.desc != f"{self.label} {stage}":
                if self.bar is not None:
                    self.bar.close()
                self.bar = self._tqdm(total=total, desc=f"{self.label} {stage}", file=sys.stderr, leave=False)
            self.bar.n = done
            self.bar.refresh()
            return
        sys.stderr.write(f"\r{self.label}: {stage} {done}/{total}   ")
        if stage == "run" and done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _setup(args):
    from ..config import load_config
    from ..providers.factory import build_providers
    from ..store import Store

    config = load_config(args.config)
    store = Store.from_config(config)
    origin = float(store.meta_default("simulation_origin", repr(time.time())))
    providers = build_providers(config, origin=origin)
    return config, store, providers


def _find_backend(providers, backend: str, provider_kind: str | None):
    for p in providers:
        if provider_kind and p.kind != provider_kind:
            continue
        try:
            names = [b.backend for b in p.backends()]
        except Exception:  # noqa: BLE001 - an unreachable provider just does not have it
            continue
        if backend in names:
            return p
    raise UsageError(f"--backend: no configured provider has a backend named {backend!r}")


def run_probes(args) -> tuple[list, object]:
    """Probe ``args.backend`` now; returns (outcomes, store). Raises UsageError."""
    from ..config import ConfigError
    from ..providers.base import ProviderSetupError
    from ..store import StateError
    from .runner import ProbeRunner
    from .targets import targets_for

    qubits = parse_qubits(args.qubits)
    if args.interleaved and qubits is None:
        raise UsageError("--interleaved needs --qubits")
    try:
        config, store, providers = _setup(args)
    except (ConfigError, StateError, ProviderSetupError) as exc:
        raise UsageError(str(exc)) from None
    provider = _find_backend(providers, args.backend, getattr(args, "provider", None))
    snap = provider.calibration(args.backend)
    if qubits is not None:
        targets = [ProbeTarget(provider.kind, args.backend, qubits, args.interleaved)]
    else:
        targets = targets_for(config.probes, snap)
    runner = ProbeRunner(providers, store, config.probes, count=False,
                         calibration_of=lambda p, b: snap)
    progress = _Progress(args.backend)
    outcomes = []
    for target in targets:
        progress.label = f"{args.backend} {target.qubits_label}"
        got = runner.probe_backend(provider, args.backend, targets=[target], progress=progress)
        if not got:  # skipped before any target ran (busy, backend down)
            outcomes.append(_skipped_outcome(target))
        outcomes += got
    progress.close()
    return outcomes, store


def _skipped_outcome(target):
    from .runner import ProbeOutcome

    return ProbeOutcome(target, "skipped", "busy or backend down (see log)")


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3g}"


def print_table(outcomes, out=sys.stdout) -> None:
    header = ("qubits", "gate", "status", "epc", "epc_stderr", "gate_error", "stderr", "shots", "usd", "seconds", "run_id")
    rows = [header]
    for o in outcomes:
        rows.append((o.target.qubits_label, o.target.interleaved or "-", o.status, _fmt(o.epc), _fmt(o.epc_stderr),
                     _fmt(o.gate_error), _fmt(o.gate_error_stderr), str(o.shots), f"{o.cost_usd:.2f}",
                     f"{o.seconds:.1f}", str(o.run_id or "-")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
    for o in outcomes:
        if o.status != "ok":
            out.write(f"{o.target.qubits_label}: {o.status}: {o.reason}\n")


def _probe_and_print(args) -> list | None:
    """Run the probes and print the result table; None (after one error line) on bad usage."""
    try:
        outcomes, store = run_probes(args)
    except UsageError as exc:
        sys.stderr.write(f"qpu-exporter: error: {exc}\n")
        return None
    print_table(outcomes)
    store.close()
    return outcomes


def probe_command(args) -> int:
    outcomes = _probe_and_print(args)
    if outcomes is None:
        return 2
    return 0 if outcomes and all(o.status == "ok" for o in outcomes) else 1


def check_command(args) -> int:
    if not (args.max_epc > 0 and math.isfinite(args.max_epc)):
        sys.stderr.write("qpu-exporter: error: --max-epc: must be a positive number\n")
        return 2
    outcomes = _probe_and_print(args)
    if outcomes is None:
        return 2
    verdict = 0
    for o in outcomes:
        if o.status != "ok":
            sys.stderr.write(f"check: {o.target.describe()}: not measured ({o.status}: {o.reason}): failing closed\n")
            verdict = 1
        elif o.epc > args.max_epc:
            sys.stderr.write(f"check: {o.target.describe()}: EPC {o.epc:.3g} > {args.max_epc:g}: FAIL\n")
            verdict = 1
        else:
            sys.stderr.write(f"check: {o.target.describe()}: EPC {o.epc:.3g} <= {args.max_epc:g}: ok\n")
    return verdict if outcomes else 1
