"""The web config (exporter-toolkit format) against the real exporter over real TLS.

exporter-toolkit's own rules are the specification (github.com/prometheus/exporter-toolkit,
docs/web-configuration.md and web/tls_config_test.go with its testdata): every good
configuration there is served here with exactly the configured behaviour (TLS versions,
ciphers and their order, curves, client certificates and SANs, headers, basic auth, rate
limit), every bad one exits 2 with one line naming the key. One exporter process serves
them all: the file is re-read for each new connection, which is itself under test.
Plus the real Prometheus scraping over TLS with basic auth, and secrets never leaking.
"""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import ssl
import subprocess
import textwrap

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conftest import EXPORTER, run_cli, wait_until
from qpu_exporter.websecurity import CIPHER_SUITES, WebConfigError, load_web_settings

PASSWORD = "correct horse battery staple"
LIGHT = """
providers:
  - kind: simulated
    backends: [fake_manila]
    speedup: 60
probes: {enabled: false}
state_path: STATE_PATH
"""


# --- certificates --------------------------------------------------------------------------------

def _cert(name, issuer=None, issuer_key=None, ca=False, sans=(), key=None, client=False):
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if client:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256()), key


def _pem(cert) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _write(path, cert, key):
    path.with_suffix(".crt").write_text(_pem(cert))
    path.with_suffix(".key").write_text(_key_pem(key))
    return path.with_suffix(".crt"), path.with_suffix(".key")


def _server_cert(ca, ca_key):
    # RSA, like exporter-toolkit's testdata, so its ECDHE_RSA cipher cases apply as written.
    return _cert("127.0.0.1", ca, ca_key, key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
                 sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")])


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca, ca_key = _cert("test-ca", ca=True)
    server = _server_cert(ca, ca_key)
    client, client_key = _cert("prometheus", ca, ca_key, client=True, sans=[x509.DNSName("prometheus.example")])
    other, other_key = _cert("other", ca, ca_key, client=True, sans=[x509.DNSName("other.example")])
    rogue, rogue_key = _cert("rogue", client=True, sans=[x509.DNSName("prometheus.example")])  # self-signed
    return {
        "dir": d, "ca": _write(d / "ca", ca, ca_key)[0], "ca_obj": (ca, ca_key),
        "server": _write(d / "server", *server), "server_pem": (_pem(server[0]), _key_pem(server[1])),
        "client": _write(d / "client", client, client_key), "other": _write(d / "other", other, other_key),
        "rogue": _write(d / "rogue", rogue, rogue_key),
    }


def _hash(password: str = PASSWORD) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


# --- client side ---------------------------------------------------------------------------------

def _client_ctx(pki, cert=None, version=None, ciphers=None, curve=None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(":".join(CIPHER_SUITES[c][1] for c in ciphers))
    if curve:
        ctx.set_ecdh_curve(curve)
    if cert:
        ctx.load_cert_chain(*map(str, pki[cert]))
    return ctx


def _auth(user="prometheus", password=PASSWORD) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class Answer:
    def __init__(self, status, headers, version=None, cipher=None, der=None):
        self.status, self.headers, self.version, self.cipher, self.der = status, headers, version, cipher, der


def _fetch(port, ctx=None, path="/-/healthy", headers=None) -> Answer:
    """One request on a new connection (the web config is re-read per connection)."""
    if ctx is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        sock = conn.sock
        if isinstance(sock, ssl.SSLSocket):
            return Answer(resp.status, dict(resp.headers), sock.version(), sock.cipher()[0],
                          sock.getpeercert(binary_form=True))
        return Answer(resp.status, dict(resp.headers))
    finally:
        conn.close()


def _refused(port, ctx=None, path="/-/healthy", headers=None) -> bool:
    try:
        _fetch(port, ctx, path, headers)
    except (OSError, http.client.HTTPException):  # handshake failure, reset, closed
        return True
    return False


# --- bad configurations: exit 2, one line naming the key -------------------------------------------

def _bad_cases(pki):
    d = pki["dir"]
    crt, key = pki["server"]
    both = f"  cert_file: {crt}\n  key_file: {key}\n"
    other_crt = pki["other"][0]
    nothing = d / "empty.pem"
    nothing.write_text("not a certificate\n")
    return [
        # exporter-toolkit's bad testdata, same names, same expectations
        ("junk", "hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\n", "top level must be a mapping"),
        ("junk_key", 'tls_server_config:\n  cert_filse: "server.crt"\n', "tls_server_config.cert_filse: unknown key"),
        ("certPath_empty", f'tls_server_config:\n  cert_file: ""\n  key_file: {key}\n', "tls_server_config.cert_file: missing one of cert or cert_file"),
        ("cert_empty", f'tls_server_config:\n  cert: ""\n  key_file: {key}\n', "tls_server_config.cert_file: missing one of cert or cert_file"),
        ("keyPath_empty", f'tls_server_config:\n  cert_file: {crt}\n  key_file: ""\n', "tls_server_config.key_file: missing one of key or key_file"),
        ("key_empty", f'tls_server_config:\n  cert_file: {crt}\n  key: ""\n', "tls_server_config.key_file: missing one of key or key_file"),
        ("certPath_keyPath_empty", 'tls_server_config:\n  cert_file: ""\n  key_file: ""\n  client_auth_type: "x"\n', "tls_server_config.cert_file: missing one of cert or cert_file"),
        ("certPath_invalid", f"tls_server_config:\n  cert_file: somefile\n  key_file: {key}\n", "tls_server_config.cert_file: no such file"),
        ("keyPath_invalid", f"tls_server_config:\n  cert_file: {crt}\n  key_file: somefile\n", "tls_server_config.key_file: no such file"),
        ("clientCA_without_policy", f"tls_server_config:\n{both}  client_ca_file: /dev/null\n", "tls_server_config.client_ca_file: client CA's have been configured without a Client Auth Policy"),
        ("clientCAs_invalid", f"tls_server_config:\n{both}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: somefile\n", "tls_server_config.client_ca_file: no such file"),
        ("user_list_invalid", f"tls_server_config:\n{both}basic_auth_users:\n  john: hunter2\n", "basic_auth_users.john: not a bcrypt hash"),
        ("inventedCiphers", f"tls_server_config:\n{both}  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048]\n", "tls_server_config.cipher_suites: unknown cipher"),
        ("inventedCurves", f"tls_server_config:\n{both}  curve_preferences: [CurveP257]\n", "tls_server_config.curve_preferences: unknown curve"),
        ("wrongTLSVersion", f"tls_server_config:\n{both}  min_version: TLS111\n", "tls_server_config.min_version: unknown TLS version"),
        ("noHTTP2Cipher", f"tls_server_config:\n{both}  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]\n  max_version: TLS12\n", "tls_server_config.cipher_suites: is missing an HTTP/2-required"),
        ("headers_content_type_options", "http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n", "http_server_config.headers.X-Content-Type-Options: invalid value"),
        ("headers_frame_options", "http_server_config:\n  headers:\n    X-Frame-Options: foo\n", "http_server_config.headers.X-Frame-Options: invalid value"),
        ("headers_extra_header", "http_server_config:\n  headers:\n    Content-Type: foo\n", "http_server_config.headers.Content-Type: HTTP header 'Content-Type' can not be configured"),
        # what Python's ssl cannot do, or what would be accepted and silently ignored
        ("RequestClientCert", f"tls_server_config:\n{both}  client_auth_type: RequestClientCert\n", "tls_server_config.client_auth_type: RequestClientCert cannot be honoured"),
        ("RequireAnyClientCert", f"tls_server_config:\n{both}  client_auth_type: RequireAnyClientCert\n", "tls_server_config.client_auth_type: RequireAnyClientCert cannot be honoured"),
        ("two_curves", f"tls_server_config:\n{both}  curve_preferences: [CurveP256, X25519]\n", "tls_server_config.curve_preferences: more than one curve"),
        ("TLS10", f"tls_server_config:\n{both}  min_version: TLS10\n", "tls_server_config.min_version: TLS 1.0 cannot be negotiated"),
        ("min_above_max", f"tls_server_config:\n{both}  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.min_version: is above max_version"),
        ("http2_true", "http_server_config:\n  http2: true\n", "http_server_config.http2: true cannot be honoured"),
        ("cert_and_cert_file", f"tls_server_config:\n{both}  cert: x\n", "tls_server_config.cert: set together with cert_file"),
        ("sans_without_client_auth", f"tls_server_config:\n{both}  client_allowed_sans: [a]\n", "tls_server_config.client_allowed_sans: needs client_auth_type"),
        ("sans_empty", f"tls_server_config:\n{both}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki['ca']}\n  client_allowed_sans: []\n", "tls_server_config.client_allowed_sans: an empty list"),
        ("tls_off_but_min_version", "tls_server_config:\n  min_version: TLS13\n", "tls_server_config.min_version: has no effect without a certificate"),
        ("key_mismatch", f"tls_server_config:\n  cert_file: {crt}\n  key_file: {pki['client'][1]}\n", "tls_server_config.cert_file: cannot load certificate and key"),
        ("ca_without_pem", f"tls_server_config:\n{both}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {nothing}\n", "tls_server_config.client_ca_file: no PEM certificate found"),
        ("ecdsa_only_suites_rsa_cert", f"tls_server_config:\n{both}  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n", "tls_server_config.cipher_suites: no listed suite works with this certificate"),
        ("rate_interval", "rate_limit:\n  interval: fast\n  burst: 1\n", "rate_limit.interval: invalid duration"),
        ("rate_burst", "rate_limit:\n  interval: 1s\n  burst: -1\n", "rate_limit.burst: must not be negative"),
        ("unknown_top", "basic_auth_user:\n  alice: x\n", "basic_auth_user: unknown key"),
        ("unknown_http", "http_server_config:\n  http3: true\n", "http_server_config.http3: unknown key"),
        ("inline_cert_garbage", f"tls_server_config:\n  cert: not-pem\n  key_file: {key}\n", "tls_server_config.cert: cannot load certificate and key"),
        ("unused_other_crt", f"tls_server_config:\n  cert_file: {other_crt}\n  key_file: {key}\n", "tls_server_config.cert_file: cannot load certificate and key"),
    ]


# The CLI path is the same for every case (load, then one line and exit 2): run it for a few
# of each kind, the loader for all.
THROUGH_CLI = ("junk", "junk_key", "user_list_invalid", "noHTTP2Cipher", "TLS10", "key_mismatch")


def test_every_bad_config_exits_2_with_one_line_naming_the_key(pki, tmp_path):
    procs = []
    for name, text, expected in _bad_cases(pki):
        path = tmp_path / f"{name}.yml"
        path.write_text(text)
        with pytest.raises(WebConfigError) as err:
            load_web_settings(path)
        message = str(err.value)
        assert expected in message and "\n" not in message, (name, message)
        assert "hunter2" not in message and "PRIVATE KEY" not in message
        if name in THROUGH_CLI:
            procs.append((name, expected, subprocess.Popen(
                [*EXPORTER, "serve", "--web.config.file", str(path), "--web.listen-address", "127.0.0.1:0"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)))
    assert len(procs) == len(THROUGH_CLI)
    for name, expected, proc in procs:
        out, err = proc.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], (name, proc.returncode, err)
        assert "hunter2" not in err


def test_cipher_table_matches_openssl():
    """The Go names map to the OpenSSL suites with the same IANA ids."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("ALL")
    by_name = {c["name"]: c["id"] & 0xFFFF for c in ctx.get_ciphers()}
    for go_name, (iana, openssl_name) in CIPHER_SUITES.items():
        assert by_name[openssl_name or go_name] == iana, go_name


# --- good configurations, one live exporter --------------------------------------------------------

def test_every_good_config_is_served_as_configured(start_exporter, pki, tmp_path):
    crt, key = pki["server"]
    web = tmp_path / "web.yml"
    both = f"  cert_file: {crt}\n  key_file: {key}\n"

    def use(text: str) -> None:
        web.write_text(textwrap.dedent(text))

    # Starts with TLS on: the start-up path reads the file too.
    use(f"tls_server_config:\n{both}")
    ex = start_exporter(LIGHT, ready=False, extra_args=["--web.config.file", str(web)])
    port = ex.port

    def alive():
        assert ex.proc.poll() is None, ex.log()[-2000:]
        return _fetch(port, _client_ctx(pki)).status == 200
    wait_until(alive, 90, "exporter answering over TLS")

    # web_config_noAuth.good: TLS 1.2 and 1.3 served (default min TLS12, max TLS13), plain HTTP not.
    assert _fetch(port, _client_ctx(pki, version=ssl.TLSVersion.TLSv1_3)).version == "TLSv1.3"
    assert _fetch(port, _client_ctx(pki, version=ssl.TLSVersion.TLSv1_2)).version == "TLSv1.2"
    assert _refused(port)  # plain HTTP to a TLS server
    # The healthcheck of the container image finds it alive over TLS.
    hc = subprocess.run([*EXPORTER[:1], "-m", "qpu_exporter.healthcheck", f"127.0.0.1:{port}"], capture_output=True,
                        text=True, timeout=30)
    assert hc.returncode == 0, hc.stderr

    # max_version TLS12: a TLS 1.3-only client is refused.
    use(f"tls_server_config:\n{both}  max_version: TLS12\n")
    assert _refused(port, _client_ctx(pki, version=ssl.TLSVersion.TLSv1_3))
    assert _fetch(port, _client_ctx(pki)).version == "TLSv1.2"

    # web_config_noAuth_someCiphers.good: server order 128, 256; TLS 1.2 only.
    some = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")
    use(f"tls_server_config:\n{both}  cipher_suites: [{', '.join(some)}]\n  min_version: TLS12\n  max_version: TLS12\n")
    assert _fetch(port, _client_ctx(pki, ciphers=[some[0]])).cipher == "ECDHE-RSA-AES128-GCM-SHA256"
    assert _refused(port, _client_ctx(pki, ciphers=["TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"]))  # no common cipher
    assert _fetch(port, _client_ctx(pki, ciphers=[some[1], some[0]])).cipher == "ECDHE-RSA-AES128-GCM-SHA256"
    # prefer_server_cipher_suites: true (default) takes the server's order, false the client's.
    rev = f"[{some[1]}, {some[0]}]"
    use(f"tls_server_config:\n{both}  cipher_suites: {rev}\n  max_version: TLS12\n")
    assert _fetch(port, _client_ctx(pki, ciphers=list(some))).cipher == "ECDHE-RSA-AES256-GCM-SHA384"
    use(f"tls_server_config:\n{both}  cipher_suites: {rev}\n  prefer_server_cipher_suites: false\n  max_version: TLS12\n")
    assert _fetch(port, _client_ctx(pki, ciphers=list(some))).cipher == "ECDHE-RSA-AES128-GCM-SHA256"
    # web_config_noAuth_noHTTP2.good: a non-HTTP/2 suite with http2 false.
    use(f"tls_server_config:\n{both}  cipher_suites: [{some[1]}]\n  max_version: TLS12\nhttp_server_config:\n  http2: false\n")
    assert _fetch(port, _client_ctx(pki)).cipher == "ECDHE-RSA-AES256-GCM-SHA384"

    # web_config_noAuth_someCurves.good: only P-521 under TLS 1.3.
    use(f"tls_server_config:\n{both}  min_version: TLS13\n  curve_preferences: [CurveP521]\n")
    assert _fetch(port, _client_ctx(pki, curve="secp521r1")).status == 200
    assert _refused(port, _client_ctx(pki, curve="secp384r1"))

    # Inline certificate and key (web_config_noAuth_tlsInline.good), and a mix of file and inline.
    cert_pem, key_pem = pki["server_pem"]
    inline = textwrap.indent(cert_pem, "    ")
    inline_key = textwrap.indent(key_pem, "    ")
    use(f"tls_server_config:\n  cert: |\n{inline}  key: |\n{inline_key}")
    assert _fetch(port, _client_ctx(pki)).status == 200
    use(f"tls_server_config:\n  cert_file: {crt}\n  key: |\n{inline_key}")
    assert _fetch(port, _client_ctx(pki)).status == 200

    # RequireAndVerifyClientCert: a CA-signed certificate gets in; none, or a self-signed one, do not.
    ca_file = f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {pki['ca']}\n"
    use(f"tls_server_config:\n{both}{ca_file}")
    assert _fetch(port, _client_ctx(pki, cert="client")).status == 200
    assert _refused(port, _client_ctx(pki))
    assert _refused(port, _client_ctx(pki, cert="rogue"))
    # The same with the CA inline.
    ca_inline = textwrap.indent(pki["ca"].read_text(), "    ")
    use(f"tls_server_config:\n{both}  client_auth_type: RequireAndVerifyClientCert\n  client_ca: |\n{ca_inline}")
    assert _fetch(port, _client_ctx(pki, cert="client")).status == 200
    assert _refused(port, _client_ctx(pki, cert="rogue"))
    # VerifyClientCertIfGiven: no certificate is fine, a bad one is not.
    use(f"tls_server_config:\n{both}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: {pki['ca']}\n")
    assert _fetch(port, _client_ctx(pki)).status == 200
    assert _fetch(port, _client_ctx(pki, cert="client")).status == 200
    assert _refused(port, _client_ctx(pki, cert="rogue"))
    # client_allowed_sans (web_config_auth_client_san.good/.bad): the verified certificate's SAN decides;
    # a self-signed certificate claiming an allowed SAN is still refused.
    use(f"tls_server_config:\n{both}{ca_file}  client_allowed_sans: [one, prometheus.example, two]\n")
    assert _fetch(port, _client_ctx(pki, cert="client")).status == 200
    assert _refused(port, _client_ctx(pki, cert="other"))
    assert _refused(port, _client_ctx(pki, cert="rogue"))
    use(f"tls_server_config:\n{both}{ca_file}  client_allowed_sans: [bad]\n")
    assert _refused(port, _client_ctx(pki, cert="client"))

    # Headers (web_config_headers.good) on every response, 401s included; basic auth (users.good).
    headers = {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
               "X-Content-Type-Options": "nosniff", "X-XSS-Protection": "1",
               "Content-Security-Policy": "default-src 'self' *.test.example.net"}
    use(f"""\
        tls_server_config:
          cert_file: {crt}
          key_file: {key}
        http_server_config:
          headers:
            X-Frame-Options: deny
            Strict-Transport-Security: max-age=31536000; includeSubDomains
            X-Content-Type-Options: nosniff
            X-XSS-Protection: 1
            Content-Security-Policy: "default-src 'self' *.test.example.net"
        basic_auth_users:
          prometheus: '{_hash()}'
          carol: '{_hash("carol123")}'
        """)
    ctx = _client_ctx(pki)
    for answer, code in ((_fetch(port, ctx), 401), (_fetch(port, ctx, headers=_auth()), 200),
                         (_fetch(port, ctx, headers=_auth("carol", "carol123")), 200),
                         (_fetch(port, ctx, headers=_auth("prometheus", "bad")), 401),
                         (_fetch(port, ctx, headers=_auth("nonexistent", "nonexistent")), 401),
                         (_fetch(port, ctx, path="/metrics"), 401)):
        assert answer.status == code and all(answer.headers.get(k) == v for k, v in headers.items()), answer.headers
    hc = subprocess.run([*EXPORTER[:1], "-m", "qpu_exporter.healthcheck", f"127.0.0.1:{port}"], capture_output=True,
                        text=True, timeout=30)
    assert hc.returncode == 0, hc.stderr  # 401 over TLS: alive

    # A broken file keeps the last good settings (auth still enforced) and says why.
    web.write_text("tls_server_config: [broken\n")
    assert _fetch(port, ctx).status == 401 and _fetch(port, ctx, headers=_auth()).status == 200
    wait_until(lambda: "web config re-read failed" in ex.log(), 10, "the broken file logged")

    # Rotation: a new certificate written over the files reaches the next connection.
    first = _fetch(port, ctx, headers=_auth()).der
    use(f"tls_server_config:\n{both}")
    new_cert, new_key = _server_cert(*pki["ca_obj"])
    key.write_text(_key_pem(new_key))
    crt.write_text(_pem(new_cert))
    wait_until(lambda: _fetch(port, _client_ctx(pki)).der == new_cert.public_bytes(serialization.Encoding.DER),
               5, "the rotated certificate served")
    assert first != new_cert.public_bytes(serialization.Encoding.DER)

    # Plain HTTP again, with a rate limit (web_config_rate_limiter_*): burst 3 per minute -> 429 after.
    use("rate_limit:\n  interval: 1m\n  burst: 3\n")
    codes = [_fetch(port).status for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429], codes
    use('rate_limit:\n  interval: "1s"\n  burst: 0\n')  # exporter-toolkit: burst 0 refuses everything
    assert _fetch(port).status == 429
    use("rate_limit:\n  interval: 0\n  burst: 0\n")  # interval 0: no limiter
    assert [_fetch(port).status for _ in range(5)] == [200] * 5
    assert "Traceback" not in ex.log()


# --- the real Prometheus, and secrets -------------------------------------------------------------

def test_tls_and_basic_auth_scraped_by_real_prometheus(start_exporter, start_prometheus, tmp_path, pki):
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {pki['server'][0]}\n  key_file: {pki['server'][1]}\n"
                   f"basic_auth_users:\n  prometheus: '{_hash()}'\n")
    ex = start_exporter(LIGHT, extra_args=["--web.config.file", str(web)], ready=False)
    ctx = _client_ctx(pki)
    wait_until(lambda: ex.proc.poll() is None and _fetch(ex.port, ctx, "/-/ready", _auth()).status == 200, 90,
               "exporter ready over TLS")
    prom = start_prometheus([f"127.0.0.1:{ex.port}"], job_extra={
        "scheme": "https", "tls_config": {"ca_file": str(pki["ca"])},
        "basic_auth": {"username": "prometheus", "password": PASSWORD},
    })
    wait_until(lambda: prom.query('up{job="qpu-exporter"} == 1'), 30, "Prometheus scraping over TLS with basic auth")
    assert prom.query("count(qpu_qubit_t1_seconds) == 5")  # fake_manila's five qubits


FAKE_TOKEN = "qpu-test-token-6b1f3c9e0d2a47f8"


def test_a_token_never_appears_in_pages_metrics_logs_or_state(start_exporter, tmp_path):
    ex = start_exporter("""
providers:
  - kind: simulated
    backends: [fake_fez]
  - kind: ibm
    instance: "crn:v1:bluemix:public:quantum-computing:us-east:a/abc::"
schedule: {calibration_interval: 1s, jobs_interval: 1s}
state_path: STATE_PATH
""", env={"QISKIT_IBM_TOKEN": FAKE_TOKEN})
    # Let the IBM provider try (and fail, offline) a few times with the token in hand.
    wait_until(lambda: ex.log().count("provider=ibm") >= 2, 60, "IBM polls attempted")
    pages = ex.get("/")[1] + ex.get("/metrics")[1] + ex.get("/-/ready")[1]
    ex.stop()
    state = b"".join(p.read_bytes() for p in ex.state_path.parent.glob(ex.state_path.name + "*"))
    for where, blob in (("pages", pages), ("log", ex.log().encode()), ("state file", state)):
        assert FAKE_TOKEN.encode() not in blob, f"token leaked into the {where}"
        assert FAKE_TOKEN[:12].encode() not in blob, f"token prefix leaked into the {where}"


def test_an_inline_key_never_appears_in_errors(tmp_path, pki):
    key_pem = pki["server_pem"][1]
    path = tmp_path / "web.yml"
    path.write_text("tls_server_config:\n  cert: nonsense\n  key: |\n" + textwrap.indent(key_pem, "    "))
    r = run_cli("serve", "--web.config.file", str(path), "--web.listen-address", "127.0.0.1:0", cwd=tmp_path)
    assert r.returncode == 2 and "PRIVATE" not in r.stderr and key_pem.splitlines()[1] not in r.stderr
