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
    serve.add_argument("--web.listen-address", dest="listen", default="127.0.0.1:9961",
                       help="HOST:PORT to listen on (default 127.0.0.1:9961; ':9961' for all interfaces)")
    serve.add_argument("--shard", metavar="i/N",
                       help="poll only shard i (0-based) of N by a stable hash of provider/backend; "
                            "overrides the config's shard (docs/performance.md)")
    serve.add_argument("--web.config.file", dest="web_config",
                       help="exporter-toolkit web config: tls_server_config and basic_auth_users (bcrypt)")
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

    hist = sub.add_parser("export-history", help="write the stored calibration history as backtest CSV")
    hist.add_argument("--config", help="config whose state_path to read (or set QPU_EXPORTER_STATE_PATH)")
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
        pr.add_argument("--config", help="YAML config (its state_path holds the budget ledger)")
        if name == "check":
            pr.add_argument("--max-epc", dest="max_epc", type=float, required=True, help="fail above this EPC")

    rep = sub.add_parser("report", help="render PNG plots from the state file (no Grafana needed)")
    rep.add_argument("--out", required=True, help="directory for the PNG files")
    rep.add_argument("--config", help="config whose state_path and drift settings to use")
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
    if args.command in ("probe", "check"):
        from .probes.cli import check_command, probe_command

        return probe_command(args) if args.command == "probe" else check_command(args)
    if args.command == "report":
        return _report(args)
    if args.command == "simulate-history":
        from .simhistory import run_cli

        return run_cli(args)
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

    try:
        load_config(path)
    except ConfigError as exc:
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


def _open_state(config_path):
    """(config, store) of an existing state file, or raise ConfigError / StateError."""
    from .config import load_config
    from .store import StateError, Store

    config = load_config(config_path)
    if not config.state_path.exists():
        raise StateError(f"state file {config.state_path} does not exist")
    return config, Store(config.state_path)


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
        paths = render_report(store, Path(args.out), settings, backend, args.qubit)
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


def _serve(args) -> int:
    from . import logs
    from .app import Exporter
    from .config import ConfigError, load_config
    from .server import parse_listen_address
    from .store import StateError

    from .websecurity import WebConfigError, load_web_config

    try:
        listen = parse_listen_address(args.listen)
        config = load_config(args.config)
        web = load_web_config(args.web_config) if args.web_config else None
    except ValueError as exc:
        return _fail(f"--web.listen-address: {exc}")
    except (ConfigError, WebConfigError) as exc:
        return _fail(str(exc))
    if args.shard is not None:
        from .sharding import parse_shard

        try:
            parse_shard(args.shard)
        except ValueError as exc:
            return _fail(f"--shard: {exc}")
        config = config.model_copy(update={"shard": args.shard})
    logs.setup(args.log_level, args.log_format)
    from .providers.prices import PriceTableError

    # Only the main thread takes SIGTERM/SIGINT: every thread started from here on inherits
    # the blocked mask. A signal landing on a worker thread inside qiskit's native code
    # crashed the process (a segfault during a probe's circuit synthesis).
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    try:
        exporter = Exporter(config, listen, web)
    except (StateError, PriceTableError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"--web.listen-address {args.listen}: {exc.strerror or exc}")

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    exporter.start()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_signals)
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
