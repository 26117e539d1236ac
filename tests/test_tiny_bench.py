"""The CPU benchmark's report: only its own section of docs/benchmarks.md changes."""

from __future__ import annotations

import importlib.util

from tests.conftest import ROOT


def _bench():
    spec = importlib.util.spec_from_file_location("bench_tiny_cpu", ROOT / "bench" / "bench_tiny_cpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RESULT = {
    "date": "d", "cpu": "x86_64", "cores": 2, "torch": "t", "load_average_1m": [1.0, 1.5], "runs": 2,
    "scales": [1.0, 2.0, 4.0, 12.0], "steps": 25, "reference_threads": 1,
    "ours": [{"threads": 1, "wall_s": [1.2, 1.4], "cpu_s": [1.1, 1.1], "median_s": 1.3,
              "breakdown": {"encode_s": 0.01, "step_ms": 40.0, "decode_s": 0.05}},
             {"threads": 2, "wall_s": [2.5, 2.7], "cpu_s": [4.0, 4.1], "median_s": 2.6, "breakdown": {}}],
    "reference_s": [3.0, 3.2], "reference_cpu_s": [3.0, 3.1], "reference_median_s": 3.1,
    "ours_median_s": 1.3, "best_threads": 1,
}


def test_render_reports_the_measured_numbers_and_the_verdict():
    bench = _bench()
    text = bench.render(RESULT)
    assert text.startswith(bench.START) and text.endswith(bench.END)
    assert "**1.30 s**" in text and "2.60 s" in text and "3.10 s" in text and "meets it" in text
    assert "MISSES" in bench.render(dict(RESULT, ours_median_s=2.5))


def test_write_section_replaces_only_its_own_markers(tmp_path):
    bench = _bench()
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n<!-- tui:start -->\nTUI\n<!-- tui:end -->\n")
    bench.write_section(bench.render(RESULT), doc)
    bench.write_section(bench.render(dict(RESULT, date="second")), doc)
    body = doc.read_text()
    assert body.count(bench.START) == 1 and "second" in body and "<!-- tui:start -->\nTUI\n<!-- tui:end -->" in body
