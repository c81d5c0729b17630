"""TLS and basic auth (exporter-toolkit web config), checked with the real Prometheus; and
secrets never leaking into pages, metrics, logs or the state file."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
import urllib.error
import urllib.request

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import run_cli, wait_until
from qpu_exporter.websecurity import WebConfigError, load_web_config

PASSWORD = "correct horse battery staple"


def _cert(name: str, issuer=None, issuer_key=None, ca=False, ip=None):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return cert, key


def _write(path, cert, key):
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path.with_suffix(".crt"), path.with_suffix(".key")


@pytest.fixture
def pki(tmp_path):
    ca, ca_key = _cert("test-ca", ca=True)
    server, server_key = _cert("127.0.0.1", ca, ca_key, ip="127.0.0.1")
    client, client_key = _cert("prometheus", ca, ca_key)
    ca_crt, _ = _write(tmp_path / "ca", ca, ca_key)
    srv = _write(tmp_path / "server", server, server_key)
    cli = _write(tmp_path / "client", client, client_key)
    return {"ca": ca_crt, "server": srv, "client": cli}


def _web_config(tmp_path, pki, client_auth="NoClientCert") -> str:
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    text = (
        "tls_server_config:\n"
        f"  cert_file: {pki['server'][0]}\n  key_file: {pki['server'][1]}\n"
        f"  client_auth_type: {client_auth}\n  client_ca_file: {pki['ca']}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    path = tmp_path / "web.yml"
    path.write_text(text)
    return str(path)


def _get(url, ctx, password=None, user="prometheus"):
    req = urllib.request.Request(url)
    if password is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_tls_and_basic_auth_scraped_by_real_prometheus(start_exporter, start_prometheus, tmp_path, pki):
    ex = start_exporter(extra_args=["--web.config.file", _web_config(tmp_path, pki)], ready=False)
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    base = f"https://127.0.0.1:{ex.port}"
    wait_until(lambda: _get(base + "/-/ready", ctx, PASSWORD)[0] == 200, 90, "exporter ready over TLS")
    assert _get(base + "/metrics", ctx)[0] == 401
    assert _get(base + "/", ctx)[0] == 401
    assert _get(base + "/metrics", ctx, "wrong")[0] == 401
    assert _get(base + "/metrics", ctx, PASSWORD, user="mallory")[0] == 401
    code, body = _get(base + "/metrics", ctx, PASSWORD)
    assert code == 200 and b"qpu_backend_up" in body
    with pytest.raises(OSError):  # plain HTTP is not served (reset or refused)
        urllib.request.urlopen(f"http://127.0.0.1:{ex.port}/metrics", timeout=5)

    prom = start_prometheus([f"127.0.0.1:{ex.port}"], job_extra={
        "scheme": "https", "tls_config": {"ca_file": str(pki["ca"])},
        "basic_auth": {"username": "prometheus", "password": PASSWORD},
    })
    wait_until(lambda: prom.query('up{job="qpu-exporter"} == 1'), 30, "Prometheus scraping over TLS with basic auth")
    assert prom.query('count(qpu_qubit_t1_seconds) > 100')


def test_mutual_tls_rejects_clients_without_a_certificate(start_exporter, tmp_path, pki):
    ex = start_exporter(extra_args=["--web.config.file", _web_config(tmp_path, pki, "RequireAndVerifyClientCert")],
                        ready=False)
    base = f"https://127.0.0.1:{ex.port}"
    with_cert = ssl.create_default_context(cafile=str(pki["ca"]))
    with_cert.load_cert_chain(*map(str, pki["client"]))
    wait_until(lambda: _get(base + "/-/healthy", with_cert, PASSWORD)[0] == 200, 90, "exporter up with mTLS")
    without = ssl.create_default_context(cafile=str(pki["ca"]))
    with pytest.raises(OSError):  # URLError, SSLError and resets are all OSErrors
        _get(base + "/-/healthy", without, PASSWORD)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n", "tls_server_config.cert_file: no such file"),
        ("basic_auth_users:\n  alice: hunter2\n", "basic_auth_users.alice: not a bcrypt hash"),
        ("basic_auth_user:\n  alice: x\n", "basic_auth_user: unknown key"),
        ("tls_server_config: [1]\n", "tls_server_config: must be a mapping"),
    ],
)
def test_bad_web_config_is_one_line_and_never_echoes_a_password(tmp_path, text, expected):
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(WebConfigError) as err:
        load_web_config(path)
    assert expected in str(err.value) and "hunter2" not in str(err.value)
    r = run_cli("serve", "--web.config.file", str(path), "--web.listen-address", "127.0.0.1:0", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "hunter2" not in r.stderr


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
