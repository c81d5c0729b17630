"""HTTP endpoints: /metrics, / (landing page), /-/healthy, /-/ready.

Handlers only read: /metrics serves the renderer's current bytes (gzip when asked), the
landing page formats a copy of the view. Nothing here calls a provider.
"""

from __future__ import annotations

import html
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .logs import get_logger
from .exposition import CONTENT_TYPE, Renderer, accepts_gzip
from .view import FleetView, ViewCopy
from .websecurity import WebConfig, WebSettings, client_allowed

log = get_logger(__name__)


def parse_listen_address(value: str) -> tuple[str, int]:
    """'HOST:PORT', ':PORT' (all interfaces) or '[IPv6]:PORT', as Go's net.SplitHostPort reads
    them (an IPv6 host must be in brackets)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {value!r} (want HOST:PORT)")
    if host.startswith("["):
        if not host.endswith("]") or ":" not in host:
            raise ValueError(f"invalid listen address {value!r} (want [IPv6]:PORT)")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"invalid listen address {value!r}: put an IPv6 address in brackets, e.g. [::1]:9961")
    return host or "0.0.0.0", int(port)


def parse_telemetry_path(value: str) -> str:
    if not value.startswith("/") or value == "/" or value.startswith("/-/") or any(c in value for c in "?# \t"):
        raise ValueError(f"invalid telemetry path {value!r} (want a path such as /metrics, not / or /-/...)")
    return value


def is_ready(v: ViewCopy, provider_kinds: list[str]) -> bool:
    """Ready once discovery and the first status and calibration poll of every backend
    finished, successfully or not."""
    for kind in provider_kinds:
        if (kind, "", "discovery") not in v.health:
            return False
        if kind in v.providers_failed:
            continue
        for provider, backend in v.backends:
            if provider == kind and not all(
                (provider, backend, c) in v.health for c in ("status", "calibration")
            ):
                return False
    return True


def send_all(sock: socket.socket, parts: tuple[bytes, ...]) -> None:
    """Write every part, in order, with as few system calls as the kernel allows (sendmsg
    gathers them; a partial send resumes where it stopped). TLS sockets cannot gather."""
    if isinstance(sock, ssl.SSLSocket):
        for p in parts:
            sock.sendall(p)
        return
    views = [memoryview(p) for p in parts if p]
    while views:
        sent = sock.sendmsg(views)
        while sent:
            if sent >= len(views[0]):
                sent -= len(views.pop(0))
            else:
                views[0] = views[0][sent:]
                sent = 0


class ExporterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Two HA Prometheus replicas plus dashboards can open many connections at once; the
    # stdlib default backlog of 5 makes a burst of new connections stall for a second.
    request_queue_size = 128

    def __init__(self, address, renderer: Renderer, view: FleetView, provider_kinds: list[str], version: str,
                 web: WebConfig | None = None, telemetry_path: str = "/metrics",
                 reload: Callable[[], tuple[bool, str]] | None = None):
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.renderer = renderer
        self.view = view
        self.provider_kinds = provider_kinds
        self.version = version
        self.started = time.time()
        self.web = web or WebConfig()
        self.telemetry_path = telemetry_path
        self.reload = reload  # POST /-/reload: () -> (ok, message)

    def process_request_thread(self, request, client_address):
        # No Nagle: the last segment of a response must not wait for the client's delayed
        # ACK (a 40 ms stall per keep-alive scrape).
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        # The TLS handshake runs in the request's own thread, so a slow or hostile client
        # cannot stall the accept loop. The web config in force now decides (re-read when
        # its files changed, so a rotated certificate reaches the next connection).
        settings = self.web.current()
        if settings.tls is not None:
            try:
                request.settimeout(10)
                request = settings.tls.wrap_socket(request, server_side=True)
                request.settimeout(None)
                if not client_allowed(request, settings):
                    log.debug("client certificate has no allowed SAN", client=client_address[0])
                    self.shutdown_request(request)
                    return
            except (ssl.SSLError, OSError, ValueError) as exc:
                log.debug("tls handshake failed", client=client_address[0], error=str(exc))
                self.shutdown_request(request)
                return
        super().process_request_thread(request, client_address)

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        t.start()
        return t


class HTTPServers:
    """One server per --web.listen-address, sharing everything else."""

    def __init__(self, addresses: list[tuple[str, int]], *args, **kwargs):
        self.servers: list[ExporterHTTPServer] = []
        try:
            for address in addresses:
                self.servers.append(ExporterHTTPServer(address, *args, **kwargs))
        except OSError:
            for srv in self.servers:  # never served: nothing to shut down, only close
                srv.server_close()
            raise

    @property
    def server_address(self):
        return self.servers[0].server_address

    @property
    def addresses(self) -> list[str]:
        out = []
        for srv in self.servers:
            host, port = srv.server_address[:2]
            out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return out

    @property
    def web(self) -> WebConfig:
        return self.servers[0].web  # one WebConfig shared by all

    def set(self, **values) -> None:
        """Set an attribute shared by every server (provider_kinds, reload, ...)."""
        for srv in self.servers:
            for k, v in values.items():
                setattr(srv, k, v)

    def serve_in_thread(self) -> None:
        for srv in self.servers:
            srv.serve_in_thread()

    def shutdown(self) -> None:
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"
    _extra: dict[str, str] = {}  # the web config's security headers for this request

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        log.debug("http request", client=self.client_address[0], request=format % args)

    def _send(self, code: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self._respond(code, (body,), {"Content-Type": content_type, **(extra or {})})

    def _respond(self, code: int, parts: tuple[bytes, ...], headers: dict[str, str]) -> None:
        """Status line, headers and body in one scatter-gather write: each separate write is
        a GIL hand-off that can wait behind a rebuild or a poll, and the body is never
        concatenated (50 concurrent scrapes would each copy the multi-megabyte body)."""
        self.log_request(code)
        lines = [f"{self.protocol_version} {code} {self.responses[code][0]}",
                 f"Server: {self.version_string()}", f"Date: {self.date_time_string()}",
                 *(f"{k}: {v}" for k, v in {**self._extra, **headers}.items()),
                 f"Content-Length: {sum(len(p) for p in parts)}"]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        send_all(self.connection, (head,) if self.command == "HEAD" else (head, *parts))

    def _admitted(self) -> bool:
        """exporter-toolkit's order: rate limit (429, before any configured header), then the
        configured headers on every response, then basic auth (401)."""
        self._extra = {}
        web = self.server.web
        settings: WebSettings = web.current()
        if not web.allow_request():
            self._send(429, b"Too Many Requests\n", "text/plain; charset=utf-8")
            return False
        self._extra = settings.headers
        if not web.authorized(self.headers.get("Authorization"), settings):
            self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8",
                       {"WWW-Authenticate": 'Basic realm="qpu-exporter"'})
            return False
        return True

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        if not self._admitted():
            return
        path = self.path.split("?", 1)[0]
        if path == self.server.telemetry_path:
            self._metrics()
        elif path == "/":
            self._send(200, self._landing().encode(), "text/html; charset=utf-8")
        elif path == "/-/healthy":
            self._send(200, b"Healthy.\n", "text/plain; charset=utf-8")
        elif path == "/-/ready":
            # Judged on what /metrics serves now, not on the live view the renderer may not
            # have caught up with yet.
            shown = self.server.renderer.current.view
            if shown is not None and is_ready(shown, self.server.provider_kinds):
                self._send(200, b"Ready.\n", "text/plain; charset=utf-8")
            else:
                self._send(503, b"Not ready: first polls still running.\n", "text/plain; charset=utf-8")
        elif path == "/-/reload":
            self._send(405, b"Only POST requests allowed\n", "text/plain; charset=utf-8", {"Allow": "POST"})
        else:
            self._send(404, f"Not found. Try {self.server.telemetry_path}.\n".encode(), "text/plain; charset=utf-8")

    def do_POST(self) -> None:  # noqa: N802
        # Read (and drop) any body, so the connection stays usable for the next request.
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or int(length) > 65536:
            self.close_connection = True
            self._send(400, b"Bad request body\n", "text/plain; charset=utf-8")
            return
        self.rfile.read(int(length))
        if not self._admitted():
            return
        if self.path.split("?", 1)[0] != "/-/reload":
            self._send(405, b"Method not allowed\n", "text/plain; charset=utf-8", {"Allow": "GET, HEAD"})
            return
        if self.server.reload is None:
            self._send(404, b"Reload is not available\n", "text/plain; charset=utf-8")
            return
        ok, message = self.server.reload()
        if ok:
            self._send(200, f"{message}\n".encode(), "text/plain; charset=utf-8")
        else:
            self._send(500, f"failed to reload config: {message}\n".encode(), "text/plain; charset=utf-8")

    def _metrics(self) -> None:
        # Always the text format 0.0.4, whatever the Accept header prefers: every scraper
        # (Prometheus 2.42 lists it after OpenMetrics) accepts it, and one format keeps
        # exactly two pre-rendered copies (text, gzip) in memory. docs/performance.md.
        current = self.server.renderer.current
        live_text, live_gzipped = self.server.renderer.self_metrics()
        headers = {"Content-Type": CONTENT_TYPE, "Vary": "Accept-Encoding"}
        if accepts_gzip(self.headers.get("Accept-Encoding", "")):
            # Two gzip members back to back form one valid gzip stream (RFC 1952 §2.2).
            parts = (current.gzipped, live_gzipped)
            headers["Content-Encoding"] = "gzip"
        else:
            parts = (current.text, live_text)
        self._respond(200, parts, headers)

    def _landing(self) -> str:
        v = self.server.view.copy()
        e = html.escape
        now = time.time()
        rows = []
        for key, b in sorted(v.backends.items()):
            st = v.status.get(key)
            polls = []
            for collector in ("status", "calibration", "jobs"):
                h = v.health.get((key[0], key[1], collector))
                if h is None:
                    polls.append(f"{collector}: pending")
                elif h.success:
                    polls.append(f"{collector}: ok {now - h.last_attempt:.0f}s ago")
                else:
                    polls.append(f"{collector}: <b>failed</b> ({e(h.error_kind)}) {now - h.last_attempt:.0f}s ago")
            up = "?" if st is None else ("up" if st.operational else f"<b>down</b> ({e(st.status_message)})")
            pending = "?" if st is None else str(st.pending_jobs)
            rows.append(
                f"<tr><td>{e(b.provider)}</td><td>{e(b.backend)}</td><td>{e(b.processor)}</td>"
                f"<td>{b.num_qubits}</td><td>{up}</td><td>{pending}</td><td>{'<br>'.join(polls)}</td></tr>"
            )
        failed = "".join(
            f"<li>provider <b>{e(kind)}</b>: {e(msg)}</li>" for kind, msg in sorted(v.providers_failed.items())
        )
        r = self.server.renderer.current
        ready = "ready" if is_ready(v, self.server.provider_kinds) else "starting (first polls running)"
        return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>qpu-exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}</style>
</head><body>
<h1>qpu-exporter</h1>
<p>Version {e(self.server.version)} &middot; {ready} &middot; up {now - self.server.started:.0f}s &middot;
exposition {len(r.text)} bytes, rendered {now - r.rendered_at:.0f}s ago in {r.render_seconds * 1000:.0f} ms</p>
<p><a href="{e(self.server.telemetry_path)}">{e(self.server.telemetry_path)}</a> &middot; <a href="/-/healthy">/-/healthy</a> &middot; <a href="/-/ready">/-/ready</a></p>
{f"<h2>Provider problems</h2><ul>{failed}</ul>" if failed else ""}
<h2>Backends</h2>
<table><tr><th>provider</th><th>backend</th><th>processor</th><th>qubits</th><th>status</th><th>pending jobs</th><th>last polls</th></tr>
{"".join(rows) or '<tr><td colspan="7">no backend discovered yet</td></tr>'}
</table>
</body></html>
"""
