"""Command line: parses arguments and delegates. Exit 2 on bad arguments or config."""

from __future__ import annotations

import argparse
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
    serve.add_argument("--log.level", dest="log_level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"])

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("config")

    docs = sub.add_parser("docs", help="print generated documentation")
    docs.add_argument("what", choices=["metrics"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "check-config":
        return _check_config(args.config)
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


def _serve(args) -> int:
    from . import logs
    from .app import Exporter
    from .config import ConfigError, load_config
    from .server import parse_listen_address
    from .store import StateError

    try:
        listen = parse_listen_address(args.listen)
        config = load_config(args.config)
    except ValueError as exc:
        return _fail(f"--web.listen-address: {exc}")
    except ConfigError as exc:
        return _fail(str(exc))
    logs.setup(args.log_level, args.log_format)
    try:
        exporter = Exporter(config, listen)
    except StateError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"--web.listen-address {args.listen}: {exc.strerror or exc}")

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    exporter.start()
    done.wait()
    exporter.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
