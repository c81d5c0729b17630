"""The fast text renderer: byte-identical to client_python, parses back to its input,
accepted by promtool; and the /metrics content negotiation helpers."""

from __future__ import annotations

import math
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from conftest import require_binary
from qpu_exporter import textformat
from qpu_exporter.exposition import accepts_gzip

label_values = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),  # any unicode except lone surrogates
    max_size=12,
) | st.sampled_from(['a"b', "back\\slash", "new\nline", "\\n", '\\"', "é", "量子", ""])
values = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**6, 10**12) | st.sampled_from(
    [0.0, -0.0, 1e6, 999999.9999, 1e-300, 5e-324, 1.7976931348623157e308, 123456789.0, 1e21, 0.1])
label_names = st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), min_size=0, max_size=4, unique=True)


@st.composite
def families(draw):
    out = []
    for i in range(draw(st.integers(1, 4))):
        names = draw(label_names)
        kind = draw(st.sampled_from(["gauge", "counter"]))
        # The format trims whitespace around HELP text, so only trimmed text round-trips.
        doc = draw(st.text(max_size=20).map(str.strip))
        fam = (GaugeMetricFamily if kind == "gauge" else CounterMetricFamily)(f"m{i}_x", doc, labels=names)
        seen = set()
        for _ in range(draw(st.integers(0, 6))):
            lv = tuple(draw(label_values) for _ in names)
            if lv in seen:
                continue
            seen.add(lv)
            v = draw(values)
            if kind == "counter" and not (isinstance(v, int) or (math.isfinite(v) and v >= 0)):
                v = 0.0
            fam.add_metric(list(lv), abs(v) if kind == "counter" else v)
        out.append(fam)
    return out


def _generate_latest(fams) -> bytes:
    class C:
        def collect(self):
            return fams

    reg = CollectorRegistry(auto_describe=False)
    reg.register(C())
    return generate_latest(reg)


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=150, deadline=None)
@given(families())
def test_renderer_parses_back_to_its_input_and_equals_client_python(fams):
    text = textformat.render(fams)
    assert text == _generate_latest(fams)
    parsed = {f.name: f for f in text_string_to_metric_families(text.decode("utf-8"))}
    for fam in fams:
        got = parsed[fam.name]
        assert got.type == fam.type and got.documentation == fam.documentation
        assert len(got.samples) == len(fam.samples)
        for want, have in zip(fam.samples, got.samples):
            assert have.name == want.name and have.labels == want.labels
            assert _same(have.value, float(want.value)), (want, have)


@settings(max_examples=300, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**18, 10**18))
def test_value_formatting_round_trips_and_matches_go_style(v):
    from prometheus_client.utils import floatToGoString

    text = textformat.format_value(v)
    assert text == floatToGoString(v)
    assert _same(float(text.replace("+Inf", "inf").replace("-Inf", "-inf")), float(v))


def test_escaping_of_awkward_label_values_and_help():
    fam = GaugeMetricFamily("qpu_x_ratio", 'help with \\ and \n and "quotes"', labels=["backend"])
    for v in ['a"b', "c\\d", "e\nf", "量子 ü", "\\n", ""]:
        fam.add_metric([v], 1)
    text = textformat.render([fam]).decode()
    assert '# HELP qpu_x_ratio help with \\\\ and \\n and "quotes"\n' in text
    assert 'qpu_x_ratio{backend="a\\"b"} 1.0\n' in text
    assert 'qpu_x_ratio{backend="c\\\\d"} 1.0\n' in text
    assert 'qpu_x_ratio{backend="e\\nf"} 1.0\n' in text
    assert 'qpu_x_ratio{backend="量子 ü"} 1.0\n' in text
    back = [s.labels["backend"] for f in text_string_to_metric_families(text) for s in f.samples]
    assert back == ['a"b', "c\\d", "e\nf", "量子 ü", "\\n", ""]


def test_counters_and_histograms_render_like_client_python_and_pass_promtool():
    c = CounterMetricFamily("qpu_jobs", "Jobs.", labels=["provider", "backend"])
    c.add_metric(["simulated", "fake_fez"], 12)
    c.add_metric(["simulated", "synthetic_000"], 0.5, timestamp=1700000000.25)
    h = HistogramMetricFamily("qpu_job_queue_duration_seconds", "Queue time.", labels=["backend"])
    h.add_metric(["fake_fez"], [("1.0", 2), ("10.0", 5), ("+Inf", 7)], 33.5)
    g = GaugeMetricFamily("qpu_backend_up", "Up.", labels=["provider", "backend"])
    g.add_metric(["simulated", "x"], 1)
    text = textformat.render([c, h, g])
    assert text == _generate_latest([c, h, g])
    lines = text.decode().splitlines()
    assert "# TYPE qpu_jobs_total counter" in lines and 'qpu_jobs_total{backend="fake_fez",provider="simulated"} 12.0' in lines
    assert 'qpu_job_queue_duration_seconds_bucket{backend="fake_fez",le="+Inf"} 7.0' in lines
    promtool = require_binary("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), check


def test_invalid_label_names_are_refused_not_written():
    from prometheus_client.samples import Sample

    fam = GaugeMetricFamily("qpu_x", "x.", labels=["ok"])
    fam.samples.append(Sample("qpu_x", {"bad-name": "v"}, 1.0))
    try:
        textformat.render([fam])
    except ValueError as exc:
        assert "bad-name" in str(exc)
    else:
        raise AssertionError("an invalid label name was rendered")


def test_accepts_gzip_follows_q_values():
    assert accepts_gzip("gzip")
    assert accepts_gzip("deflate, gzip;q=0.5")
    assert accepts_gzip("GZIP")
    assert accepts_gzip("*")
    assert not accepts_gzip("")
    assert not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("gzip;q=0.0, *")
    assert not accepts_gzip("*;q=0")
