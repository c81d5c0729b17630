"""TLS and basic authentication from an exporter-toolkit style ``--web.config.file``.

The same YAML Prometheus' own exporters accept::

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional (mTLS)
      client_ca_file: ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...   # bcrypt, e.g. htpasswd -nBC 10 "" | tr -d ':\\n'

Passwords are checked with bcrypt; a successful check is cached (keyed by a SHA-256 of the
credentials, never the password itself) because bcrypt costs ~0.1 s by design and every
scrape would pay it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                 "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_KNOWN = {"tls_server_config", "basic_auth_users", "http_server_config"}
_TLS_KNOWN = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
              "cipher_suites", "curve_preferences", "prefer_server_cipher_suites", "client_allowed_sans"}


class WebConfigError(Exception):
    """One line naming the file, the key and the problem."""


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)
    _ok_cache: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorized(self, header: str | None) -> bool:
        """True when no users are configured or the Authorization header matches one."""
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = hashlib.sha256(hashed + b"\0" + user.encode() + b"\0" + password.encode()).digest()
        with self._lock:
            if key in self._ok_cache:
                return True
        import bcrypt

        ok = bcrypt.checkpw(password.encode(), hashed)
        if ok:
            with self._lock:
                if len(self._ok_cache) > 1000:
                    self._ok_cache.clear()
                self._ok_cache.add(key)
        return ok


def _path(base: Path, value, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise WebConfigError(f"{where}: must be a file path")
    p = Path(value)
    p = p if p.is_absolute() else base / p  # relative to the config file, like exporter-toolkit
    if not p.is_file():
        raise WebConfigError(f"{where}: no such file {p}")
    return p


def load_web_config(path: str | Path) -> WebConfig:
    path = Path(path)
    src = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise WebConfigError(f"{src}: cannot read web config: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise WebConfigError(f"{src}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise WebConfigError(f"{src}: top level must be a mapping")
    for key in data:
        if key not in _KNOWN:
            raise WebConfigError(f"{src}: {key}: unknown key")
    cfg = WebConfig()
    users = data.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise WebConfigError(f"{src}: basic_auth_users: must be a mapping of user -> bcrypt hash")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            # The message names the user, never echoes the value (it may be a password by mistake).
            raise WebConfigError(f"{src}: basic_auth_users.{user}: not a bcrypt hash")
        cfg.users[str(user)] = hashed.encode()
    tls = data.get("tls_server_config")
    if tls:
        cfg.tls = _tls_context(tls, path.parent, src)
    return cfg


def _tls_context(tls, base: Path, src: str) -> ssl.SSLContext:
    if not isinstance(tls, dict):
        raise WebConfigError(f"{src}: tls_server_config: must be a mapping")
    for key in tls:
        if key not in _TLS_KNOWN:
            raise WebConfigError(f"{src}: tls_server_config.{key}: unknown key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert = _path(base, tls.get("cert_file"), f"{src}: tls_server_config.cert_file")
    key = _path(base, tls.get("key_file"), f"{src}: tls_server_config.key_file")
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise WebConfigError(f"{src}: tls_server_config: cannot load certificate and key: {exc.reason or exc}") from None
    ctx.minimum_version = _version(tls.get("min_version", "TLS12"), f"{src}: tls_server_config.min_version")
    if "max_version" in tls:
        ctx.maximum_version = _version(tls["max_version"], f"{src}: tls_server_config.max_version")
    auth = tls.get("client_auth_type", "NoClientCert")
    if auth not in _CLIENT_AUTH:
        raise WebConfigError(f"{src}: tls_server_config.client_auth_type: unknown value {auth!r}")
    ctx.verify_mode = _CLIENT_AUTH[auth]
    if auth != "NoClientCert":
        # Python's TLS verifies every client certificate it asks for, so all client-auth
        # modes need the CA to verify against.
        ca = _path(base, tls.get("client_ca_file"), f"{src}: tls_server_config.client_ca_file")
        ctx.load_verify_locations(cafile=str(ca))
    return ctx


def _version(value, where: str) -> ssl.TLSVersion:
    if value not in _TLS_VERSIONS:
        raise WebConfigError(f"{where}: unknown TLS version {value!r} (TLS12, TLS13)")
    return _TLS_VERSIONS[value]

