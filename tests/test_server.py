"""The HTTP layer on its own: the real server and renderer in-process, real sockets."""

from __future__ import annotations

import gzip
import http.client
import socket
import threading

import pytest
from prometheus_client.core import GaugeMetricFamily

from qpu_exporter import exposition
from qpu_exporter.exposition import Renderer
from qpu_exporter.server import ExporterHTTPServer, send_all
from qpu_exporter.view import FleetView

from conftest import wait_until


def _families(_view):
    g = GaugeMetricFamily("qpu_test_value", "A test gauge.", labels=["i"])
    for i in range(20_000):
        g.add_metric([str(i)], float(i))
    return [g]


@pytest.fixture
def server():
    view = FleetView()
    renderer = Renderer(view, _families)
    renderer.render()
    srv = ExporterHTTPServer(("127.0.0.1", 0), renderer, view, [], "test")
    srv.serve_in_thread()
    yield srv
    srv.shutdown()
    srv.server_close()


def _request(srv, method: str, path: str, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def test_send_all_delivers_every_part_in_order_through_partial_writes():
    # A tiny send buffer and a slow reader force many partial sendmsg calls.
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    parts = (b"head\r\n\r\n", bytes(range(256)) * 8000, b"", b"tail-" * 1000)
    got = bytearray()

    def reader():
        while chunk := b.recv(1000):
            got.extend(chunk)

    t = threading.Thread(target=reader)
    t.start()
    send_all(a, parts)
    a.close()
    t.join(10)
    b.close()
    assert bytes(got) == b"".join(parts)


def test_metrics_get_gzip_and_head_agree(server):
    plain, body = _request(server, "GET", "/metrics")
    assert plain.status == 200 and int(plain.headers["Content-Length"]) == len(body)
    assert plain.headers["Vary"] == "Accept-Encoding" and plain.headers["Date"]
    text = body.decode()
    assert text.count("qpu_test_value{") == 20_000 and "process_resident_memory_bytes" in text

    zipped, zbody = _request(server, "GET", "/metrics", {"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zbody).decode().count("qpu_test_value{") == 20_000

    head, hbody = _request(server, "HEAD", "/metrics")
    assert head.status == 200 and hbody == b""
    # HEAD announces the length a GET would send (modulo the live process metrics' digits).
    assert abs(int(head.headers["Content-Length"]) - len(body)) < 200

    missing, mbody = _request(server, "GET", "/nope")
    assert missing.status == 404 and mbody.startswith(b"Not found")


def test_keep_alive_connection_serves_many_responses(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    for path in ("/metrics", "/-/healthy", "/metrics", "/nope", "/metrics"):
        conn.request("GET", path, headers={"Accept-Encoding": "gzip"})
        resp = conn.getresponse()
        body = resp.read()
        assert len(body) == int(resp.headers["Content-Length"])
    conn.close()


def test_process_metrics_are_shared_within_the_ttl_then_refreshed(server, monkeypatch):
    monkeypatch.setattr(exposition, "SELF_METRICS_TTL_SECONDS", 0.3)
    renderer = server.renderer
    first = renderer.self_metrics()
    assert renderer.self_metrics() is not None and renderer.self_metrics()[0] is first[0]
    assert gzip.decompress(first[1]) == first[0]
    # A later reading is a new one (the object changes even if the numbers did not).
    wait_until(lambda: renderer.self_metrics()[0] is not first[0], 5, "a fresh process-metrics reading")
