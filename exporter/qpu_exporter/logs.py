"""Structured logs: logfmt (default) or JSON lines, one event per line, UTC timestamps.

Call sites log an event name and fields, never pre-formatted text::

    log = get_logger(__name__)
    log.info("poll succeeded", provider="ibm", backend="ibm_fez", duration_seconds=0.41)

The fields travel on the log record as data (``record.fields``); each formatter writes them
in its own syntax, so nothing is ever re-parsed. logfmt quotes a value that holds a space,
``=``, a quote, a backslash or a control character and escapes it the way go-logfmt does
(``\\"``, ``\\\\``, ``\\n``...); JSON keeps numbers and booleans as JSON numbers and booleans.
Records from other libraries (no fields) carry their message as ``msg``.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from typing import Any

# The names --log.level accepts; "warn" is the Prometheus spelling, "warning" Python's.
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR}
_RESERVED = ("ts", "level", "logger", "msg")


class StructuredLogger:
    """A stdlib logger that takes an event name and keyword fields."""

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger):
        self._logger = logger

    @property
    def name(self) -> str:
        return self._logger.name

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - stdlib spelling
        return self._logger.isEnabledFor(level)

    def _emit(self, level: int, event: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            # stacklevel=3: the record names the caller of debug()/info()/..., not this module.
            self._logger.log(level, _Message(event, fields), extra={"event": event, "fields": fields},
                             exc_info=exc_info, stacklevel=3)

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit(logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An error with the current exception's traceback as the ``exc`` field."""
        self._emit(logging.ERROR, event, fields, exc_info=True)


class _Message:
    """The record's ``msg`` for handlers other than ours (pytest's caplog, a library's own
    handler): the event followed by its fields in logfmt, rendered only when asked for."""

    __slots__ = ("event", "fields")

    def __init__(self, event: str, fields: dict[str, Any]):
        self.event, self.fields = event, fields

    def __str__(self) -> str:
        pairs = " ".join(f"{_logfmt_key(k)}={logfmt_value(v)}" for k, v in self.fields.items())
        return f"{self.event} {pairs}" if pairs else self.event


def get_logger(name: str) -> StructuredLogger:
    return StructuredLogger(logging.getLogger(name))


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def record_fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict[str, Any]:
    """ts, level, logger, msg, then the call's fields (a field named like one of the first
    four is renamed with a trailing underscore rather than overwriting it), then exc."""
    event = getattr(record, "event", None)
    level = "warn" if record.levelno == logging.WARNING else record.levelname.lower()  # go-kit's names
    out: dict[str, Any] = {"ts": _timestamp(record), "level": level,
                           "logger": record.name, "msg": record.getMessage() if event is None else event}
    for key, value in (getattr(record, "fields", None) or {}).items():
        out[f"{key}_" if key in _RESERVED else key] = value
    if record.exc_info:
        out["exc"] = formatter.formatException(record.exc_info)
    return out


_LOGFMT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def logfmt_value(value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value).replace("inf", "Inf").replace("nan", "NaN")
    text = str(value)
    if text and all(c.isprintable() and c not in ' ="\\' for c in text):
        return text
    return '"' + "".join(_escape(c) for c in text) + '"'


def _escape(c: str) -> str:
    """One character inside a quoted logfmt value, as go-logfmt's decoder reads it: JSON-style
    escapes, \\uXXXX (UTF-16, so a surrogate pair above U+FFFF) for what is not printable,
    U+FFFD for a lone surrogate (undecodable bytes of a file name)."""
    if c in _LOGFMT_ESCAPES:
        return _LOGFMT_ESCAPES[c]
    if c.isprintable():
        return c
    code = ord(c)
    if 0xD800 <= code <= 0xDFFF:
        return "\\ufffd"
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _logfmt_key(key: str) -> str:
    # A key is a run of characters other than space, '=' and '"' (go-logfmt's rule).
    cleaned = "".join(c if c.isprintable() and c not in ' ="' else "_" for c in str(key))
    return cleaned or "_"


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{_logfmt_key(k)}={logfmt_value(v)}" for k, v in record_fields(record, self).items())


def _json_default(value: Any) -> Any:
    # Numbers that are not Python's own (numpy scalars) stay numbers; anything else is text.
    if hasattr(value, "__index__"):
        return int(value)
    if hasattr(value, "__float__") and not isinstance(value, (str, bytes)):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    return str(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record, self)
        for key, value in fields.items():
            if isinstance(value, float) and not math.isfinite(value):
                fields[key] = str(value)  # JSON has no NaN or Infinity
        return json.dumps(fields, default=_json_default, ensure_ascii=False)


def parse_level(name: str) -> int:
    """--log.level value -> logging level; ValueError naming the accepted values."""
    try:
        return LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r} (debug, info, warn, error)") from None


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries (qiskit's transpiler, APScheduler's per-run lines) speak only when it matters;
    # our own poll lines already say what happened.
    root.setLevel(logging.WARNING)
    logging.getLogger("qpu_exporter").setLevel(parse_level(level))
