"""Structured logs: logfmt (default) or JSON lines, one event per line, UTC timestamps.

Call sites write ``key=value`` pairs after ``msg="..."``; the logfmt formatter prefixes
``ts`` and ``level``, the JSON formatter parses the pairs into an object.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import sys
import time

_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        body = record.getMessage()
        if "msg=" not in body:
            body = f'msg="{body}"'
        line = f"ts={ts} level={record.levelname.lower()} logger={record.name} {body}"
        if record.exc_info:
            line += ' exc="' + self.formatException(record.exc_info).replace("\n", "\\n").replace('"', "'") + '"'
        return line


class JsonFormatter(LogfmtFormatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {}
        for key, value in _PAIR.findall(super().format(record)):
            if value.startswith('"'):
                try:
                    value = shlex.split(value)[0]
                except ValueError:
                    value = value.strip('"')
            out[key] = value
        return json.dumps(out)


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries (qiskit's transpiler, APScheduler's per-run lines) speak only when it matters;
    # our own poll lines already say what happened.
    root.setLevel(logging.WARNING)
    logging.getLogger("qpu_exporter").setLevel(level.upper())
