"""Command line: parses arguments and delegates. Exit 2 on bad arguments or config."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
import os
import signal
import sys
import threading

from . import __version__


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="qpu-exporter", description="Prometheus exporter for quantum computers.")
    p.add_argument("--version", action="version", version=f"qpu-exporter {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="poll providers and serve /metrics")
    serve.add_argument("--config", help="YAML config file (default: the embedded simulated fleet)")
    serve.add_argument("--web.listen-address", dest="listen", action="append", metavar="HOST:PORT",
                       help="address to listen on; repeat for several (default 127.0.0.1:9961; ':9961' for "
                            "all interfaces, '[::1]:9961' for IPv6)")
    serve.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics",
                       help="path under which to expose metrics (default /metrics)")
    serve.add_argument("--shard", metavar="i/N",
                       help="poll only shard i (0-based) of N by a stable hash of provider/backend; "
                            "overrides the config's shard (docs/performance.md)")
    serve.add_argument("--web.config.file", dest="web_config",
                       help="exporter-toolkit web config file: TLS, client certificates, basic auth (bcrypt), "
                            "security headers, rate limit (docs/web-configuration.md)")
    serve.add_argument("--log.level", dest="log_level", default="info", choices=["debug", "info", "warn", "warning", "error"],
                       help="debug, info, warn (alias warning) or error")
    serve.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"])

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("config")

    bt = sub.add_parser("backtest", help="run the exporter's drift detectors over a CSV history")
    bt.add_argument("file", help="CSV with header timestamp,series,value ('-' for stdin)")
    bt.add_argument("--arl0", type=float, help="in-control average run length per series and detector")
    bt.add_argument("--warmup", type=int, help="warm-up samples per series")
    bt.add_argument("--transform", choices=["none", "log", "auto"], help="value transform (default auto: by series kind)")
    bt.add_argument("--config", help="take drift defaults from this config (default: the exporter's defaults)")

    rbfit = sub.add_parser("rb-fit", help="fit randomized-benchmarking counts given as JSON")
    rbfit.add_argument("file", help="JSON document ('-' for stdin); see docs/rb.md")

    cmp_ = sub.add_parser("compare", help="A/B test: do two count distributions differ? (exit 1 when they do)")
    cmp_.add_argument("a", metavar="A.json", help='counts of the first run: {"counts": {"00": 512, "11": 488}}')
    cmp_.add_argument("b", metavar="B.json", help="counts of the second run, same format")
    cmp_.add_argument("--alpha", type=float, default=0.05,
                      help="significance level; also sets the Hellinger interval's level 1 - alpha (default 0.05)")

    hist = sub.add_parser("export-history", help="write the stored calibration history as backtest CSV")
    hist.add_argument("--config", help="config whose state to read (state_path or state_url; or set QPU_EXPORTER_STATE_PATH/_URL)")
    hist.add_argument("--provider")
    hist.add_argument("--backend")
    hist.add_argument("--since", type=float, help="unix seconds")

    for name, helptext in (("probe", "run a randomized-benchmarking probe now (shares the exporter's budget)"),
                           ("check", "CI gate: probe now, exit 1 when the EPC is above --max-epc")):
        pr = sub.add_parser(name, help=helptext)
        pr.add_argument("--backend", required=True, help="backend name, e.g. fake_torino")
        pr.add_argument("--qubits", help="a qubit or a native pair, e.g. 3 or 3,4 (default: the configured targets)")
        pr.add_argument("--interleaved", choices=["sx", "x", "ecr", "cz", "cx"], help="interleaved-RB gate")
        pr.add_argument("--provider", help="provider kind, when two providers share a backend name")
        pr.add_argument("--config", help="YAML config (its state holds the budget ledger)")
        if name == "check":
            pr.add_argument("--max-epc", dest="max_epc", type=float, required=True, help="fail above this EPC")

    rep = sub.add_parser("report", help="render PNG plots from the state file (no Grafana needed)")
    rep.add_argument("--out", required=True, help="directory for the PNG files")
    rep.add_argument("--config", help="config whose state and drift settings to use")
    rep.add_argument("--backend", help="backend for the T1 plot (default: the one whose qubit moved most)")
    rep.add_argument("--qubit", type=int, help="qubit for the T1 plot (with --backend)")

    sim = sub.add_parser("simulate-history",
                         help="write a simulated fleet's history as OpenMetrics with timestamps, fast (docs/alerts-quality.md)")
    sim.add_argument("--config", help="YAML config with simulated providers only (default: the embedded fleet)")
    sim.add_argument("--duration", required=True, help="wall-clock time to cover, e.g. 10m, 2h, 30d")
    sim.add_argument("--start", help="first scrape: unix seconds or ISO-8601 (default: duration ago)")
    sim.add_argument("--warmup", default="0s", help="simulate this long first without writing it (drift warm-up)")
    sim.add_argument("--scrape-interval", default="30s", help="Prometheus scrape interval to write (default 30s)")
    sim.add_argument("--select", action="append", metavar="SELECTOR",
                     help="write only series matching this selector, e.g. 'qpu_jobs_total' (repeatable)")
    sim.add_argument("--job", default="qpu-exporter", help="job label (default qpu-exporter)")
    sim.add_argument("--instance", default="qpu-exporter:9961", help="instance label")
    sim.add_argument("--events", help="write the ground-truth events here (JSON lines)")
    sim.add_argument("--out", default="-", help="OpenMetrics output file (default '-': stdout)")

    mig = sub.add_parser("migrate-state", help="copy a SQLite state file into an empty PostgreSQL database")
    mig.add_argument("--from", dest="source", required=True, metavar="FILE", help="the SQLite state file (state_path)")
    mig.add_argument("--to", dest="target", required=True, metavar="URL",
                     help="postgresql://user@host:port/database, empty (password: QPU_EXPORTER_STATE_PASSWORD, "
                          "PGPASSWORD or a libpq password file)")

    docs = sub.add_parser("docs", help="print generated documentation")
    docs.add_argument("what", choices=["metrics"])
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `qpu-exporter backtest x.csv | head`: not an error
        sys.stderr.close()
        return 0


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "backtest":
        return _backtest(args)
    if args.command == "rb-fit":
        return _rb_fit(args)
    if args.command == "export-history":
        return _export_history(args)
    if args.command == "compare":
        return _compare(args)
    if args.command in ("probe", "check"):
        from .probes.cli import check_command, probe_command

        return probe_command(args) if args.command == "probe" else check_command(args)
    if args.command == "report":
        return _report(args)
    if args.command == "simulate-history":
        from .simhistory import run_cli

        return run_cli(args)
    if args.command == "migrate-state":
        return _migrate_state(args)
    if args.command == "docs":
        from .catalog import render_markdown

        sys.stdout.write(render_markdown())
        return 0
    return 2


def _fail(message: str) -> int:
    sys.stderr.write(f"qpu-exporter: error: {message}\n")
    return 2


def _check_config(path: str) -> int:
    from .config import ConfigError, load_config
    from .providers import registry
    from .providers.base import ProviderSetupError

    try:
        for p in load_config(path).providers:
            spec = registry.provider_spec(p.kind)
            if spec is not None and spec.check is not None:
                spec.check(p)
    except (ConfigError, ProviderSetupError) as exc:
        return _fail(str(exc))
    print(f"{path}: ok")
    return 0


def _read_input(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def _backtest(args) -> int:
    import json

    from .config import ConfigError, load_config
    from .drift import DriftInputError, parse_csv, run_backtest_detailed

    try:
        drift = load_config(args.config).drift
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        text = _read_input(args.file)
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"{args.file}: cannot read: {getattr(exc, 'strerror', None) or exc}")
    try:
        result, rejected = run_backtest_detailed(
            parse_csv(text),
            arl0=args.arl0 if args.arl0 is not None else drift.arl0,
            warmup=args.warmup if args.warmup is not None else drift.warmup,
            transform=args.transform or drift.transform,
        )
    except DriftInputError as exc:
        return _fail(f"{args.file}: {exc}")
    except ValueError as exc:  # bad --arl0 / --warmup
        return _fail(str(exc))
    for row in rejected:
        sys.stderr.write(f"qpu-exporter: warning: {row}\n")
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


def _rb_fit(args) -> int:
    """Exit 2 for malformed input, 1 when the data cannot be fitted (no decay, ...)."""
    import json

    from .rb.cli_fit import RBFitError, RBInputError, fit_json

    try:
        doc = json.loads(_read_input(args.file))
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"{args.file}: cannot read: {getattr(exc, 'strerror', None) or exc}")
    except json.JSONDecodeError as exc:
        return _fail(f"{args.file}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}")
    try:
        result = fit_json(doc)
    except RBInputError as exc:
        return _fail(f"{args.file}: {exc}")
    except RBFitError as exc:
        sys.stderr.write(f"qpu-exporter: fit failed: {exc}\n")
        return 1
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


def _compare(args) -> int:
    """Exit 1 when the two distributions differ at --alpha, 0 when not, 2 on bad input."""
    import json
    import math

    from .homogeneity import CountsError, compare_counts, parse_counts, width

    if not (0 < args.alpha < 1) or math.isnan(args.alpha):
        return _fail(f"--alpha {args.alpha:g}: must be between 0 and 1")
    counts = []
    for path in (args.a, args.b):
        try:
            doc = json.loads(_read_input(path))
        except (OSError, UnicodeDecodeError) as exc:
            return _fail(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}")
        except json.JSONDecodeError as exc:
            return _fail(f"{path}: line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}")
        try:
            counts.append(parse_counts(doc))
        except CountsError as exc:
            return _fail(f"{path}: {exc}")
    width_a, width_b = (width(c) for c in counts)
    if width_a != width_b:
        return _fail(f"{args.b}: outcomes have {width_b} bits but those of {args.a} have {width_a}")
    result = compare_counts(counts[0], counts[1], alpha=args.alpha)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 1 if result["different"] else 0


def _open_state(config_path):
    """(config, store) of an existing state file, or raise ConfigError / StateError."""
    from .config import load_config
    from .store import StateError, Store

    config = load_config(config_path)
    if config.state_url is None and not config.state_path.exists():
        raise StateError(f"state file {config.state_path} does not exist")
    return config, Store.from_config(config)


def _report(args) -> int:
    from .config import ConfigError
    from .report import render_report
    from .store import StateError

    try:
        config, store = _open_state(args.config)
    except (ConfigError, StateError) as exc:
        return _fail(str(exc))
    if args.qubit is not None and args.backend is None:
        return _fail("--qubit needs --backend")
    backend = None
    if args.backend:
        providers = {p for p, b, *_ in store.calibration_history(backend=args.backend)[:1]}
        if not providers:
            store.close()
            return _fail(f"--backend {args.backend}: no stored calibration history for it")
        backend = (providers.pop(), args.backend)
    settings = config.drift.settings()
    if args.config is None:
        # No config given: replay with the settings the exporter that wrote this state used.
        from .drift_feed import stored_settings

        settings = stored_settings(store) or settings
    try:
        # Budgets and objectives only from a config given: the default one describes the demo fleet.
        workloads = config.workloads if args.config is not None else None
        paths = render_report(store, Path(args.out), settings, backend, args.qubit, workloads)
    finally:
        store.close()
    for p in paths:
        print(p)
    return 0


def _export_history(args) -> int:
    import csv

    from .config import ConfigError
    from .drift_feed import QUBIT_SERIES, series_name
    from .store import StateError

    try:
        _config, store = _open_state(args.config)
    except (ConfigError, StateError) as exc:
        return _fail(str(exc))
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["timestamp", "series", "value"])
    wanted = set(QUBIT_SERIES) | {"gate_error"}
    for provider, backend, target, quantity, measured_at, value in store.calibration_history(
        args.provider, args.backend, args.since
    ):
        if quantity in wanted:
            prefix = "" if args.backend else f"{provider}/{backend}/"
            out.writerow([repr(measured_at), prefix + series_name(quantity, target), repr(value)])
    store.close()
    return 0


def _migrate_state(args) -> int:
    from .store import StateError
    from .store.copy import migrate_state
    from .store.engine import parse_target

    try:
        copied = migrate_state(args.source, args.target, os.environ.get("QPU_EXPORTER_STATE_PASSWORD") or None)
    except StateError as exc:
        return _fail(str(exc))
    where = parse_target(args.target)[0].display
    print(f"copied {args.source} into {where}: " + ", ".join(f"{n} {table}" for table, n in copied.items()))
    return 0


def _serve_config(args):
    """The config as `serve` runs it: file (or the default fleet), environment overrides,
    --shard. Read at start and again by every reload."""
    from .config import load_config

    config = load_config(args.config)
    if args.shard is not None:
        config = config.model_copy(update={"shard": args.shard})
    return config


def _serve(args) -> int:
    from . import logs
    from .server import parse_listen_address, parse_telemetry_path
    from .websecurity import WebConfigError, load_web_config

    listens = args.listen or ["127.0.0.1:9961"]
    try:
        addresses = [parse_listen_address(a) for a in listens]
    except ValueError as exc:
        return _fail(f"--web.listen-address: {exc}")
    try:
        telemetry_path = parse_telemetry_path(args.telemetry_path)
    except ValueError as exc:
        return _fail(f"--web.telemetry-path: {exc}")
    if args.shard is not None:
        from .sharding import parse_shard

        try:
            parse_shard(args.shard)
        except ValueError as exc:
            return _fail(f"--shard: {exc}")
    # Logging first, so what the web config loader warns about is formatted as asked. The
    # web config is checked before the heavy imports: a bad one is refused in a blink.
    logs.setup(args.log_level, args.log_format)
    try:
        web = load_web_config(args.web_config) if args.web_config else None
    except WebConfigError as exc:
        return _fail(str(exc))
    from .app import Exporter
    from .config import ConfigError
    from .providers.base import ProviderSetupError
    from .reload import Reloader
    from .store import StateError

    try:
        config = _serve_config(args)
    except ConfigError as exc:
        return _fail(str(exc))

    # Only the main thread takes SIGTERM/SIGINT/SIGHUP: every thread started from here on
    # inherits the blocked mask. A signal landing on a worker thread inside qiskit's native
    # code crashed the process (a segfault during a probe's circuit synthesis).
    handled = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, handled)
    try:
        exporter = Exporter(config, addresses, web, telemetry_path)
    except (StateError, ProviderSetupError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"--web.listen-address {' '.join(listens)}: {exc.strerror or exc}")
    reloader = Reloader(exporter, lambda: _serve_config(args))
    exporter.reloader = reloader
    exporter.http.set(reload=reloader.reload)

    done = threading.Event()
    hup = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    signal.signal(signal.SIGHUP, lambda *_: hup.set())

    def reload_on_hup() -> None:  # a signal handler must not do the work itself
        while True:
            hup.wait()
            hup.clear()
            if done.is_set():
                return
            reloader.reload()

    exporter.start()
    threading.Thread(target=reload_on_hup, name="sighup", daemon=True).start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, handled)
    done.wait()
    exporter.stop()
    # State is flushed and closed. Skip interpreter finalisation: a probe still inside Aer's
    # C++ code on a daemon thread can crash it (seen as a segfault at exit).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
