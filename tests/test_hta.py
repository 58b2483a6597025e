"""HTA as a cross-check (`analyze --hta`): HTA's own loader must agree with traceparse's.

HTA is the optional [hta] extra; these tests skip without it, except the one that checks the
message a user without it gets.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import LLAMA_4L, NEMOTRON_8L, QWEN_TRAIN, USER_TRAIN, analysis
from traceparse.cli import app


def _traceparse_kernel_totals(path: Path) -> dict[str, float]:
    """Total µs per GPU item name (kernels, memcpys, memsets) over the whole trace."""
    a = analysis(path)
    ev, items = a.trace.events, a.attribution.items
    out: dict[str, float] = defaultdict(float)
    for row, dur in zip(items.event_row.tolist(), items.dur.tolist(), strict=True):
        out[ev.names[ev.name[row]]] += dur
    return dict(out)


@pytest.mark.parametrize("path", [QWEN_TRAIN, NEMOTRON_8L, USER_TRAIN], ids=lambda p: p.name.split(".pt.")[0])
def test_kernel_time_per_name_agrees_with_hta(path: Path) -> None:
    """traceparse's total kernel time per kernel name vs HTA's get_gpu_kernel_breakdown: the same
    kernels, each within 1% (in practice within 1e-6: HTA rounds its sums to the nanosecond).

    They could differ: HTA keeps only GPU items whose launch correlates with a CPU op that started
    before the last ProfilerStep ended (include_last_profiler_step=True), and traceparse counts every
    GPU item. On these traces every kernel is launched inside a step, so the totals coincide."""
    pytest.importorskip("hta")
    from traceparse import hta

    ours = _traceparse_kernel_totals(path)
    theirs = hta.kernel_totals(path)
    assert set(ours) == set(theirs)
    for name, us in theirs.items():
        assert ours[name] == pytest.approx(us, rel=0.01, abs=1e-3), name
        assert ours[name] == pytest.approx(us, rel=1e-6, abs=1e-3), name  # the observed agreement


def test_analyze_hta_json_adds_the_three_hta_analyses() -> None:
    pytest.importorskip("hta")
    result = CliRunner().invoke(app, ["analyze", "--hta", "-f", "json", "-q", str(LLAMA_4L)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    section = doc["hta"]
    assert section["steps"] == doc["general"]["steps"] == 3
    (temporal,) = section["temporal_breakdown"]
    # HTA's definitions: the span is split into idle, compute and non-compute time.
    parts = temporal["idle_time(us)"] + temporal["compute_time(us)"] + temporal["non_compute_time(us)"]
    assert parts == pytest.approx(temporal["kernel_time(us)"], rel=1e-6)
    categories = {r["idle_category"] for r in section["idle_time_breakdown"]}
    assert categories == {"host_wait", "kernel_wait", "other"}
    launch = section["kernel_launch_stats"]["0"]
    assert launch["launches"] > 100
    assert launch["launch_delay_us"]["p50"] >= 0
    # Same trace, two loaders: HTA's compute time is its kernel time inside the kept steps, which
    # is traceparse's kernel time summed over the steps (memcpys are HTA's "non-compute").
    ours_us = doc["general"]["kernel_ms"] * 1e3 * doc["general"]["steps"]
    assert temporal["compute_time(us)"] + temporal["non_compute_time(us)"] == pytest.approx(ours_us, rel=0.01)


def test_analyze_hta_table_has_the_sections_and_a_renamed_file_works(tmp_path: Path) -> None:
    pytest.importorskip("hta")
    odd = tmp_path / "trace.bin"  # traceparse reads any name; HTA wants .json or .json.gz
    shutil.copyfile(LLAMA_4L, odd)
    result = CliRunner().invoke(app, ["analyze", "--hta", "-q", str(odd)])
    assert result.exit_code == 0, result.output
    for title in ("HTA: temporal breakdown", "HTA: idle time breakdown", "HTA: kernel launch statistics"):
        assert title in result.stdout


def test_hta_missing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hta", None)
    monkeypatch.setitem(sys.modules, "hta.trace_analysis", None)
    result = CliRunner().invoke(app, ["analyze", "--hta", "-q", str(LLAMA_4L)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["traceparse: error: --hta needs HolisticTraceAnalysis: pip install 'traceparse[hta]'"]
