"""Every line the real exporter logs parses strictly, in both formats, and keeps values intact.

logfmt is checked with a parser that rejects what go-logfmt's decoder rejects (the reader
behind Loki's and most Go tools' logfmt support): keys of characters above space other than
'=' and '"', unquoted values without '=' or '"', quoted values with JSON-style escapes only and
no raw control characters. JSON lines go through json.loads and must keep numbers numbers.
The state path holds a space, '=' and quotes and must come back byte for byte.
"""

from __future__ import annotations

import json
import re
import urllib.request

from conftest import free_port, http_get, wait_until

CONFIG = """
providers:
  - kind: simulated
    backends: [fake_manila]
    speedup: 600
schedule: {calibration_interval: 1s, jobs_interval: 1s}
probes: {enabled: false}
"""
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class LogfmtError(ValueError):
    pass


def parse_logfmt(line: str) -> dict[str, str]:
    """Strict logfmt: ``key=value`` pairs separated by spaces; raises LogfmtError."""
    out: dict[str, str] = {}
    i, n = 0, len(line)
    while i < n:
        if line[i] == " ":
            i += 1
            continue
        start = i
        while i < n and line[i] > " " and line[i] not in '="':
            i += 1
        key = line[start:i]
        if not key or i >= n or line[i] != "=":
            raise LogfmtError(f"column {i}: expected key=value")
        i += 1
        if i < n and line[i] == '"':
            i += 1
            value = []
            while True:
                if i >= n:
                    raise LogfmtError("unterminated quoted value")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c < " ":
                    raise LogfmtError(f"column {i}: control character in quoted value")
                if c == "\\":
                    if i + 1 >= n:
                        raise LogfmtError("dangling backslash")
                    e = line[i + 1]
                    if e == "u":
                        hexdigits = line[i + 2:i + 6]
                        if not re.fullmatch(r"[0-9a-fA-F]{4}", hexdigits):
                            raise LogfmtError(f"column {i}: bad \\u escape")
                        value.append(chr(int(hexdigits, 16)))
                        i += 6
                        continue
                    if e not in _ESCAPES:
                        raise LogfmtError(f"column {i}: unknown escape \\{e}")
                    value.append(_ESCAPES[e])
                    i += 2
                    continue
                value.append(c)
                i += 1
            text = "".join(value).encode("utf-16", "surrogatepass").decode("utf-16")  # join \u surrogate pairs
            if i < n and line[i] != " ":
                raise LogfmtError(f"column {i}: garbage after quoted value")
        else:
            start = i
            while i < n and line[i] > " ":
                if line[i] in '="':
                    raise LogfmtError(f"column {i}: {line[i]!r} in unquoted value")
                i += 1
            text = line[start:i]
        out[key] = text
    return out


def test_the_strict_parser_rejects_what_go_logfmt_rejects():
    assert parse_logfmt('a=1 b="x y" c= d="q\\"uote\\\\ \\u00e9"') == {"a": "1", "b": "x y", "c": "", "d": 'q"uote\\ é'}
    for bad in ['a=x=y', 'a="x', 'a=b"c', 'a="x"y', 'k', '=v', 'a="\\q"', 'a="\x01"', 'a="\\u12"']:
        try:
            parse_logfmt(bad)
        except LogfmtError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def _exercise(ex) -> None:
    """Make the exporter log more than start-up: requests (debug), a failed reload."""
    for path in ("/", "/-/ready", "/nope?x=1 2"):
        try:
            urllib.request.urlopen(ex.url + path.replace(" ", "%20"), timeout=10).read()
        except OSError:
            pass
    req = urllib.request.Request(ex.url + "/-/reload", data=b"", method="POST")
    try:
        urllib.request.urlopen(req, timeout=30)
    except OSError:
        pass


def test_listen_addresses_telemetry_path_and_every_log_line_parsed_strictly(start_exporter, tmp_path):
    """Two exporters, one per log format, exercised through the exporter conventions
    (a second, IPv6 listen address and --web.telemetry-path), then every line parsed."""
    state = tmp_path / 'my state="1".db'
    cfg = tmp_path / 'odd cfg "x=y".yaml'
    cfg.write_text(CONFIG)
    common = ["--config", str(cfg), "--log.level", "debug", "--web.telemetry-path", "/qm"]
    v6_port = free_port()
    plain = start_exporter(state_path=state, extra_args=[*common, "--web.listen-address", f"[::1]:{v6_port}"])
    as_json = start_exporter(state_path=tmp_path / "j s=\"2\".db", extra_args=[*common, "--log.format", "json"])
    for url in (plain.url, f"http://[::1]:{v6_port}"):
        code, body, _ = http_get(url + "/qm")
        assert code == 200 and b"qpu_backend_up" in body, url
        assert http_get(url + "/metrics")[0] == 404
        assert 'href="/qm"' in http_get(url + "/")[1].decode()
    cfg.write_text(CONFIG + "bogus_key: 1\n")  # the reload below fails and logs the path and error
    for ex in (plain, as_json):
        _exercise(ex)
        wait_until(lambda ex=ex: "config reload failed" in ex.log(), 30, "the failed reload logged")
        wait_until(lambda ex=ex: ex.log().count("poll succeeded") >= 6, 60, "some polls logged")
    plain.stop()
    as_json.stop()

    records = []
    for line in plain.log().splitlines():
        rec = parse_logfmt(line)
        assert list(rec)[:4] == ["ts", "level", "logger", "msg"], line
        records.append(rec)
    serving = next(r for r in records if r["msg"] == "serving")
    assert serving["state"] == str(state)
    assert serving["address"] == f"127.0.0.1:{plain.port},[::1]:{v6_port}"
    failed = next(r for r in records if r["msg"] == "config reload failed; running config kept")
    assert failed["error"] == f"{cfg}: bogus_key: unknown key"
    assert any(r["msg"] == "http request" and '"GET /qm HTTP/1.1"' in r["request"] for r in records)
    assert {r["level"] for r in records} >= {"debug", "info", "error"}

    jrecords = [json.loads(line) for line in as_json.log().splitlines()]
    assert all(isinstance(r, dict) and list(r)[:4] == ["ts", "level", "logger", "msg"] for r in jrecords)
    serving = next(r for r in jrecords if r["msg"] == "serving")
    assert serving["state"] == str(tmp_path / "j s=\"2\".db")
    polls = [r for r in jrecords if r["msg"] == "poll succeeded"]
    assert polls and all(isinstance(r["duration_seconds"], (int, float)) for r in polls)
    status = [r for r in polls if r["collector"] == "status"]
    assert status and all(type(r["pending_jobs"]) is int and type(r["operational"]) is bool for r in status)
    stopped = next(r for r in jrecords if r["msg"] == "stopped")
    assert isinstance(stopped["duration_seconds"], float)
