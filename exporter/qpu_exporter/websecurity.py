"""TLS, basic auth, security headers and rate limiting from ``--web.config.file``.

The file format is exporter-toolkit's (github.com/prometheus/exporter-toolkit,
docs/web-configuration.md), the one Prometheus' own exporters read, with its validation rules:
unknown keys are errors, relative paths are relative to the file, a client CA without a
client-auth policy is an error, headers are limited to its five security headers (and the
values it allows), passwords are bcrypt hashes. Like exporter-toolkit, the file is re-read
while serving: every new connection and request checks (by mtime, ctime, size and inode of
the file and of every certificate, key and CA file it names) whether anything changed, so a
rotated certificate or a changed user applies without a restart. A file that turns bad keeps
the last good settings in force and is logged once per change.

What Python's ``ssl`` module cannot do is refused at start with one line naming the key
(docs/web-configuration.md lists each case): client-auth types that ask for a client
certificate without verifying it, more than one curve preference, TLS versions the system's
OpenSSL will not negotiate, and ``http_server_config.http2: true`` (this server speaks
HTTP/1.1).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
import ssl
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .logs import get_logger

log = get_logger(__name__)

_TOP_KEYS = ("tls_server_config", "http_server_config", "rate_limit", "basic_auth_users")
_TLS_KEYS = ("cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file",
             "cipher_suites", "curve_preferences", "min_version", "max_version",
             "prefer_server_cipher_suites", "client_allowed_sans")
# Keys whose presence switches TLS on (exporter-toolkit's TLSConfig.IsEnabled).
_TLS_ENABLING = ("cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file", "client_auth_type")

_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                 "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

# Go's crypto/tls CipherSuites() names (the ones exporter-toolkit accepts) -> (IANA id,
# OpenSSL name). The ids let a test check the mapping against what OpenSSL reports.
# TLS 1.3 suites cannot be chosen by a server in Go nor through Python's ssl: listed or
# not, TLS 1.3 offers all three, as exporter-toolkit documents ("for TLS versions up to 1.2").
CIPHER_SUITES: dict[str, tuple[int, str]] = {
    "TLS_AES_128_GCM_SHA256": (0x1301, ""),
    "TLS_AES_256_GCM_SHA384": (0x1302, ""),
    "TLS_CHACHA20_POLY1305_SHA256": (0x1303, ""),
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": (0xC009, "ECDHE-ECDSA-AES128-SHA"),
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": (0xC00A, "ECDHE-ECDSA-AES256-SHA"),
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": (0xC013, "ECDHE-RSA-AES128-SHA"),
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": (0xC014, "ECDHE-RSA-AES256-SHA"),
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": (0xC02B, "ECDHE-ECDSA-AES128-GCM-SHA256"),
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": (0xC02C, "ECDHE-ECDSA-AES256-GCM-SHA384"),
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": (0xC02F, "ECDHE-RSA-AES128-GCM-SHA256"),
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": (0xC030, "ECDHE-RSA-AES256-GCM-SHA384"),
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": (0xCCA8, "ECDHE-RSA-CHACHA20-POLY1305"),
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": (0xCCA9, "ECDHE-ECDSA-CHACHA20-POLY1305"),
}
# Go's net/http refuses an HTTP/2 server whose TLS 1.2 suites lack both of these (RFC 7540 §9.2.2).
_HTTP2_REQUIRED = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}

_VERIFYING = {"VerifyClientCertIfGiven": ssl.CERT_OPTIONAL, "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_UNVERIFIED = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")

# exporter-toolkit's extraHTTPHeaders: the only headers it lets a file set, and the values
# allowed where the header is an enumeration.
HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}
_BCRYPT = re.compile(r"^\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}$")
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


BAD_RETRY_SECONDS = 5.0


class WebConfigError(Exception):
    """One line naming the file, the key and the problem."""


@dataclass(frozen=True)
class WebSettings:
    """One good reading of the web config file."""

    tls: ssl.SSLContext | None = None
    client_allowed_sans: frozenset[str] | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    rate_limit: tuple[float, int] | None = None  # (seconds between requests, burst)
    http2: bool | None = None  # None: not given (HTTP/1.1 is served either way)
    files: tuple[Path, ...] = ()  # files it was built from, watched for changes


class TokenBucket:
    """golang.org/x/time/rate's limiter as exporter-toolkit uses it: one token every
    ``interval`` seconds, at most ``burst`` banked, starting full; a request takes one or is
    refused. burst 0 refuses every request, as there."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.interval, self.burst, self._clock = interval, burst, clock
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) / self.interval)
            self._last = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False


class WebConfig:
    """The web settings in force. Without a file: plain HTTP, no auth, no limits."""

    def __init__(self, path: str | Path | None = None, settings: WebSettings | None = None):
        self.path = Path(path) if path is not None else None
        self._settings = settings or WebSettings()
        self._signature = _signature(self.path, self._settings.files) if self.path else None
        self._lock = threading.Lock()
        self._bad_signature: tuple | None = None
        self._bad_since = 0.0
        self._bad_error = ""
        self._limiter = _limiter(self._settings.rate_limit)
        self._auth_cache: dict[bytes, bool] = {}
        self._cache_lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()  # bcrypt is CPU-bound by design: one at a time

    @property
    def tls_enabled(self) -> bool:
        return self.current().tls is not None

    def current(self) -> WebSettings:
        """The settings to apply to this connection or request: re-read when the file or a
        file it names changed since the last reading; the last good ones when it is bad."""
        if self.path is None:
            return self._settings
        sig = _signature(self.path, self._settings.files)
        if sig == self._signature:
            return self._settings
        with self._lock:
            sig = _signature(self.path, self._settings.files)
            now = time.monotonic()
            # A bad file is retried when it changes, and every few seconds anyway: it may name a
            # certificate that is not there yet, which we cannot watch.
            if sig == self._signature or (sig == self._bad_signature and now - self._bad_since < BAD_RETRY_SECONDS):
                return self._settings
            try:
                fresh = load_web_settings(self.path)
            except WebConfigError as exc:
                self._bad_signature, self._bad_since = sig, now
                if str(exc) != self._bad_error:
                    self._bad_error = str(exc)
                    log.error("web config re-read failed; keeping the last good one", error=str(exc))
                return self._settings
            if fresh.rate_limit != self._settings.rate_limit:
                self._limiter = _limiter(fresh.rate_limit)
            self._settings = fresh
            # Files named by the new settings may differ: sign those.
            self._signature = _signature(self.path, fresh.files)
            self._bad_signature, self._bad_error = None, ""
            log.info("web config re-read", tls=fresh.tls is not None, users=len(fresh.users),
                     headers=len(fresh.headers), rate_limited=fresh.rate_limit is not None)
            return fresh

    def allow_request(self) -> bool:
        limiter = self._limiter
        return limiter is None or limiter.allow()

    def authorized(self, header: str | None, settings: WebSettings | None = None) -> bool:
        """True when no users are configured or the Authorization header matches one.
        Unknown users cost a bcrypt check too (no user enumeration by timing); outcomes are
        cached by a hash of user, stored hash and password, never the password itself."""
        users = (settings or self.current()).users
        if not users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        hashed = users.get(user)
        known = hashed is not None
        if not known:
            hashed = _dummy_hash()
        key = hashlib.sha256(b"\0".join((user.encode(), hashed, password.encode()))).digest()
        with self._cache_lock:
            cached = self._auth_cache.get(key)
        if cached is None:
            import bcrypt

            with self._bcrypt_lock:
                # bcrypt reads at most 72 bytes of password, as Go's implementation does.
                cached = bcrypt.checkpw(password.encode()[:72], hashed)
            with self._cache_lock:
                if len(self._auth_cache) >= 100:  # a bounded cache, oldest entry out
                    self._auth_cache.pop(next(iter(self._auth_cache)))
                self._auth_cache[key] = cached
        return known and cached


_dummy: list[bytes] = []


def _dummy_hash() -> bytes:
    if not _dummy:
        import bcrypt

        _dummy.append(bcrypt.hashpw(os.urandom(16), bcrypt.gensalt(rounds=10)))
    return _dummy[0]


def _limiter(rate_limit: tuple[float, int] | None) -> TokenBucket | None:
    return None if rate_limit is None else TokenBucket(*rate_limit)


def _signature(path: Path, files: tuple[Path, ...]) -> tuple:
    out = []
    for p in (path, *files):
        try:
            st = os.stat(p)
            out.append((st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return tuple(out)


# --- reading the file -------------------------------------------------------------------------

def load_web_config(path: str | Path) -> WebConfig:
    """Read and validate the file (WebConfigError: one line) and keep watching it."""
    return WebConfig(path, load_web_settings(path))


def load_web_settings(path: str | Path) -> WebSettings:
    path = Path(path)
    src = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WebConfigError(f"{src}: cannot read web config: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise WebConfigError(f"{src}: web config is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise WebConfigError(f"{src}: {where}invalid YAML: {getattr(exc, 'problem', None) or 'syntax error'}") from None
    if data is None:
        return WebSettings(files=())
    if not isinstance(data, dict):
        raise WebConfigError(f"{src}: top level must be a mapping")

    def fail(key: str, problem: str) -> WebConfigError:
        return WebConfigError(f"{src}: {key}: {problem}")

    for key in data:
        if key not in _TOP_KEYS:
            raise fail(_printable(key), "unknown key")
    http = _mapping(data, "http_server_config", fail)
    for key in http:
        if key not in ("http2", "headers"):
            raise fail(f"http_server_config.{_printable(key)}", "unknown key")
    http2 = http.get("http2")
    if http2 is not None and not isinstance(http2, bool):
        raise fail("http_server_config.http2", "must be true or false")
    if http2 is True:
        raise fail("http_server_config.http2", "true cannot be honoured: this server speaks HTTP/1.1 only "
                   "(remove the key or set it to false)")
    headers = _headers(http.get("headers"), fail)
    rate = _rate_limit(data.get("rate_limit"), fail)
    users = _users(data.get("basic_auth_users"), fail)
    tls, sans, files = _tls(_mapping(data, "tls_server_config", fail), path.parent, fail, http2)
    return WebSettings(tls=tls, client_allowed_sans=sans, users=users, headers=headers, rate_limit=rate,
                       http2=http2, files=files)


def _printable(key) -> str:
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z0-9_.-]+", text) else repr(text)


def _mapping(data: dict, key: str, fail) -> dict:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(key, "must be a mapping")
    return value


def _scalar_text(value) -> str:
    # Go's YAML decoder turns any scalar into a string field (X-XSS-Protection: 1 -> "1").
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _headers(value, fail) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail("http_server_config.headers", "must be a mapping of header -> value")
    out = {}
    for name, v in value.items():
        where = f"http_server_config.headers.{_printable(name)}"
        if name not in HEADERS:
            raise fail(where, f"HTTP header {str(name)!r} can not be configured (allowed: {', '.join(HEADERS)})")
        if isinstance(v, (dict, list)):
            raise fail(where, "must be a string")
        text = "" if v is None else _scalar_text(v)
        allowed = HEADERS[name]
        if allowed and text not in allowed:
            raise fail(where, f"invalid value {text!r}; expected one of {', '.join(allowed)}")
        if any(c in text for c in "\r\n\0"):
            raise fail(where, "must be one line")
        if text:  # "Unset if blank"
            out[name] = text
    return out


def parse_go_duration(value) -> float:
    """A Go duration ('1s', '1m30s', '250ms') in seconds; a bare integer is nanoseconds, as
    Go's YAML decoder reads one into a time.Duration."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, int):
        return value * 1e-9
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}")
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    if body == "0":
        return 0.0
    parts = _GO_DURATION.findall(body)
    if not parts or "".join(n + u for n, u in parts) != body:
        raise ValueError(f"invalid duration {value!r} (use e.g. 1s, 500ms, 1m30s)")
    return sign * sum(float(n) * _GO_UNITS[u] for n, u in parts)


def _rate_limit(value, fail) -> tuple[float, int] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise fail("rate_limit", "must be a mapping with interval and burst")
    for key in value:
        if key not in ("interval", "burst"):
            raise fail(f"rate_limit.{_printable(key)}", "unknown key")
    try:
        interval = parse_go_duration(value.get("interval", 0))
    except ValueError as exc:
        raise fail("rate_limit.interval", str(exc)) from None
    burst = value.get("burst", 0)
    if isinstance(burst, bool) or not isinstance(burst, int):
        raise fail("rate_limit.burst", "must be an integer")
    if interval < 0:
        raise fail("rate_limit.interval", "must not be negative (0 switches the limiter off)")
    if burst < 0:
        raise fail("rate_limit.burst", "must not be negative")
    if interval == 0:
        return None  # exporter-toolkit: an interval of 0 disables the rate limiter
    if burst == 0:
        log.warning("rate_limit.burst is 0: every request will be answered 429, as exporter-toolkit does")
    return (interval, burst)


def _users(value, fail) -> dict[str, bytes]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail("basic_auth_users", "must be a mapping of user -> bcrypt hash")
    out = {}
    for user, hashed in value.items():
        where = f"basic_auth_users.{_printable(user)}"
        # The message names the user, never echoes the value (it may be a password by mistake).
        m = _BCRYPT.match(hashed) if isinstance(hashed, str) else None
        if m is None:
            raise fail(where, "not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        if not 4 <= int(m.group(1)) <= 31:
            raise fail(where, f"bcrypt cost {int(m.group(1))} outside 4..31")
        out[_scalar_text(user)] = hashed.encode()
    return out


# --- TLS ----------------------------------------------------------------------------------------

@dataclass
class _TLSSpec:
    cert: tuple[str, bool]  # (path or PEM text, is_inline)
    key: tuple[str, bool]
    ca: tuple[str, bool] | None
    auth: str
    min_version: ssl.TLSVersion
    max_version: ssl.TLSVersion
    ciphers: list[str]  # OpenSSL names of the TLS <= 1.2 suites, in order
    curve: str | None
    prefer_server: bool


def _tls(tls: dict, base: Path, fail, http2: bool | None):
    """(SSLContext or None, allowed SANs or None, watched files)."""
    for key in tls:
        if key not in _TLS_KEYS:
            raise fail(f"tls_server_config.{_printable(key)}", "unknown key")

    def where(key: str) -> str:
        return f"tls_server_config.{key}"

    def text(key: str) -> str:
        value = tls.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise fail(where(key), "must be a string")
        return value

    def names(key: str) -> list[str] | None:
        value = tls.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(where(key), "must be a list of strings")
        return value

    strings = {k: text(k) for k in ("cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file",
                                     "client_auth_type", "min_version", "max_version")}
    suites, curves, sans = names("cipher_suites"), names("curve_preferences"), names("client_allowed_sans")
    prefer = tls.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise fail(where("prefer_server_cipher_suites"), "must be true or false")

    if not any(strings[k] for k in _TLS_ENABLING):
        # exporter-toolkit serves plain HTTP here and silently ignores the rest; we refuse it.
        for key in tls:
            if tls[key] not in (None, "", []):
                raise fail(where(key), "has no effect without a certificate (cert_file or cert): TLS is off")
        return None, None, ()

    files: list[Path] = []

    def source(inline: str, file_key: str) -> tuple[str, bool] | None:
        if strings[inline] and strings[file_key]:
            raise fail(where(inline), f"set together with {file_key}; give one of them")
        if strings[file_key]:
            p = Path(strings[file_key])
            p = p if p.is_absolute() else base / p  # relative to the web config, as exporter-toolkit does
            if not p.exists() or p.is_dir():
                raise fail(where(file_key), f"no such file {p}")
            files.append(p)
            return str(p), False
        if strings[inline]:
            return strings[inline], True
        return None

    cert = source("cert", "cert_file")
    if cert is None:
        raise fail(where("cert_file"), "missing one of cert or cert_file")
    key = source("key", "key_file")
    if key is None:
        raise fail(where("key_file"), "missing one of key or key_file")
    ca = source("client_ca", "client_ca_file")

    auth = strings["client_auth_type"] or "NoClientCert"
    if auth in _UNVERIFIED:
        raise fail(where("client_auth_type"),
                   f"{auth} cannot be honoured: Python's ssl module verifies every client certificate it "
                   "asks for (use VerifyClientCertIfGiven or RequireAndVerifyClientCert)")
    if auth != "NoClientCert" and auth not in _VERIFYING:
        raise fail(where("client_auth_type"), f"invalid ClientAuth {auth!r} (NoClientCert, "
                   "VerifyClientCertIfGiven, RequireAndVerifyClientCert)")
    if ca is not None and auth == "NoClientCert":
        raise fail(where("client_ca_file" if not ca[1] else "client_ca"),
                   "client CA's have been configured without a Client Auth Policy (set client_auth_type)")
    if sans is not None:
        if auth == "NoClientCert":
            raise fail(where("client_allowed_sans"), "needs client_auth_type VerifyClientCertIfGiven or "
                       "RequireAndVerifyClientCert (with NoClientCert no client certificate is asked for)")
        if not sans:
            raise fail(where("client_allowed_sans"), "an empty list would refuse every client")

    versions = {}
    for k, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        name = strings[k] or default
        if name not in _TLS_VERSIONS:
            raise fail(where(k), f"unknown TLS version {name!r} (TLS10, TLS11, TLS12, TLS13)")
        versions[k] = _TLS_VERSIONS[name]
    if versions["min_version"] > versions["max_version"]:
        raise fail(where("min_version"), "is above max_version: no version could be negotiated")

    ciphers: list[str] = []
    for name in suites or []:
        if name not in CIPHER_SUITES:
            raise fail(where("cipher_suites"), f"unknown cipher {name!r}")
        if CIPHER_SUITES[name][1]:
            ciphers.append(CIPHER_SUITES[name][1])
    below_13 = versions["min_version"] < ssl.TLSVersion.TLSv1_3
    if suites and below_13:
        if not ciphers:
            raise fail(where("cipher_suites"), "lists no TLS 1.2 suite while min_version allows TLS 1.2")
        if http2 is not False and not any(n in suites for n in _HTTP2_REQUIRED):
            raise fail(where("cipher_suites"), "is missing an HTTP/2-required AES_128_GCM_SHA256 cipher "
                       f"(need one of {' or '.join(_HTTP2_REQUIRED)}), as exporter-toolkit requires unless "
                       "http_server_config.http2 is false")
    curve = None
    for name in curves or []:
        if name not in CURVES:
            raise fail(where("curve_preferences"), f"unknown curve {name!r} ({', '.join(CURVES)})")
    if curves and len(curves) > 1:
        raise fail(where("curve_preferences"), "more than one curve cannot be honoured: Python's ssl module "
                   "sets a single curve (list one)")
    if curves:
        curve = CURVES[curves[0]]

    spec = _TLSSpec(cert, key, ca, auth, versions["min_version"], versions["max_version"], ciphers, curve, prefer)
    ctx = _context(spec, fail)
    _check_handshakes(spec, fail)
    return ctx, (frozenset(sans) if sans is not None else None), tuple(files)


@contextmanager
def _pem_path(value: tuple[str, bool]):
    """A path for ssl's file-only loaders: the file itself, or the inline PEM in an anonymous
    in-memory file (never written to disk: the inline key is a secret)."""
    text, inline = value
    if not inline:
        yield text
        return
    fd = os.memfd_create("qpu-exporter-pem", os.MFD_CLOEXEC)
    try:
        os.write(fd, text.encode())
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _context(spec: _TLSSpec, fail, verify_clients: bool = True) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    names = ("cert" if spec.cert[1] else "cert_file", "key" if spec.key[1] else "key_file")
    try:
        with _pem_path(spec.cert) as cert, _pem_path(spec.key) as key:
            ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise fail(f"tls_server_config.{names[0]}",
                   f"cannot load certificate and key ({names[1]}): {getattr(exc, 'reason', None) or exc.strerror or exc}") from None
    with _quiet_deprecation():
        ctx.minimum_version = spec.min_version
        ctx.maximum_version = spec.max_version
    if spec.ciphers:
        try:
            ctx.set_ciphers(":".join(spec.ciphers))
        except ssl.SSLError:
            raise fail("tls_server_config.cipher_suites", "no listed suite is available in this system's OpenSSL") from None
    if spec.prefer_server:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if spec.curve:
        ctx.set_ecdh_curve(spec.curve)
    if verify_clients and spec.auth in _VERIFYING:
        ctx.verify_mode = _VERIFYING[spec.auth]
        if spec.ca is None:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Go verifies against the system roots
        else:
            key = "client_ca" if spec.ca[1] else "client_ca_file"
            try:
                if spec.ca[1]:
                    ctx.load_verify_locations(cadata=spec.ca[0])
                else:
                    ctx.load_verify_locations(cafile=spec.ca[0])
            except (ssl.SSLError, OSError, ValueError):
                raise fail(f"tls_server_config.{key}", "no PEM certificate found") from None
    return ctx


@contextmanager
def _quiet_deprecation():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1 / TLSv1_1 names
        yield


def _check_handshakes(spec: _TLSSpec, fail) -> None:
    """Complete an in-memory handshake at every allowed TLS version, so a version, cipher or
    curve this system's OpenSSL will not serve is refused now rather than failing every client."""
    server_ctx = _context(spec, fail, verify_clients=False)
    for version in ssl.TLSVersion:
        if version in (ssl.TLSVersion.MINIMUM_SUPPORTED, ssl.TLSVersion.MAXIMUM_SUPPORTED):
            continue
        if not spec.min_version <= version <= spec.max_version or version == ssl.TLSVersion.SSLv3:
            continue
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
        with _quiet_deprecation():
            client.minimum_version = client.maximum_version = version
        client.set_ciphers("ALL:@SECLEVEL=0")  # the client accepts anything: the server is under test
        error = _memory_handshake(server_ctx, client)
        if error is None:
            continue
        label = {ssl.TLSVersion.TLSv1: "TLS 1.0", ssl.TLSVersion.TLSv1_1: "TLS 1.1",
                 ssl.TLSVersion.TLSv1_2: "TLS 1.2", ssl.TLSVersion.TLSv1_3: "TLS 1.3"}[version]
        if version < ssl.TLSVersion.TLSv1_2:
            key = "min_version"
            problem = f"{label} cannot be negotiated: this system's OpenSSL refuses it ({error}); use TLS12 or higher"
        elif spec.ciphers and version == ssl.TLSVersion.TLSv1_2:
            key, problem = "cipher_suites", f"no listed suite works with this certificate at {label} ({error})"
        elif spec.curve:
            key, problem = "curve_preferences", f"the curve cannot be used at {label} ({error})"
        else:
            key, problem = "cert_file", f"no {label} handshake possible with this certificate ({error})"
        raise fail(f"tls_server_config.{key}", problem)


def _memory_handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> str | None:
    bios = [ssl.MemoryBIO() for _ in range(4)]
    server = server_ctx.wrap_bio(bios[0], bios[1], server_side=True)
    client = client_ctx.wrap_bio(bios[2], bios[3], server_side=False)
    done = {False: False, True: False}
    for _ in range(20):
        for is_server, obj, out, peer_in in ((False, client, bios[3], bios[0]), (True, server, bios[1], bios[2])):
            if not done[is_server]:
                try:
                    obj.do_handshake()
                    done[is_server] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as exc:
                    return exc.reason or str(exc)
            data = out.read()
            if data:
                peer_in.write(data)
        if all(done.values()):
            return None
    return "handshake did not complete"


def peer_sans(der: bytes) -> set[str]:
    """The Subject Alternative Names of a DER certificate as exporter-toolkit compares them:
    DNS names, e-mail addresses, IP addresses (Go's text form) and URIs."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    out = set(ext.get_values_for_type(x509.DNSName)) | set(ext.get_values_for_type(x509.RFC822Name))
    out |= {str(ip) for ip in ext.get_values_for_type(x509.IPAddress) if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address))}
    out |= set(ext.get_values_for_type(x509.UniformResourceIdentifier))
    return out


def client_allowed(sock: ssl.SSLSocket, settings: WebSettings) -> bool:
    """After the handshake: the verified client certificate carries an allowed SAN (always
    true when client_allowed_sans is not set). A client without a certificate is refused
    when SANs are listed."""
    if settings.client_allowed_sans is None:
        return True
    der = sock.getpeercert(binary_form=True)
    return der is not None and not peer_sans(der).isdisjoint(settings.client_allowed_sans)
