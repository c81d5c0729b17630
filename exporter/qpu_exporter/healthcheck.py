"""``python -m qpu_exporter.healthcheck [HOST:PORT]``: exit 0 when the exporter is alive.

The container image's HEALTHCHECK. Alive means the exporter's HTTP server answers
``/-/healthy`` itself: 200, or 401 when basic auth is on (the server is up and refusing an
anonymous caller, which is its job; the check knows no password, only the server's bcrypt
hashes exist), or 429 when the rate limit is on. It asks over plain HTTP first and, when the
server speaks TLS, again over TLS without verifying the certificate (it is the exporter's own
process on the loopback address). A server that requires client certificates cannot be
checked this way: give such a container its own healthcheck (docs/web-configuration.md).
"""

from __future__ import annotations

import http.client
import ssl
import sys

ALIVE = (200, 401, 429)


def _status(host: str, port: int, tls: bool, timeout: float) -> int:
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/-/healthy")
        return conn.getresponse().status
    finally:
        conn.close()


def check(address: str = "127.0.0.1:9961", timeout: float = 4.0) -> tuple[bool, str]:
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        code = _status(host, int(port), False, timeout)
    except (http.client.HTTPException, ConnectionResetError, ConnectionAbortedError):
        # A TLS server drops a plain-HTTP request: try TLS.
        try:
            code = _status(host, int(port), True, timeout)
        except (OSError, http.client.HTTPException) as exc:
            return False, f"{address}: no answer over TLS either: {exc}"
    except OSError as exc:
        return False, f"{address}: {exc.strerror or exc}"
    if code in ALIVE:
        return True, f"{address}: /-/healthy answered {code}"
    return False, f"{address}: /-/healthy answered {code}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    ok, message = check(*args[:1])
    print(message, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
