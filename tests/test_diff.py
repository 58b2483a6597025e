"""Issue 18: `traceparse diff A B` — what changed, per block and module, between two runs.

The fixtures are two H200 captures of the same model (Llama-3.1-8B widths, 4 layers, seq 2048,
5 steps) that differ only in `--attn-impl` (sdpa → eager): the diff must name the attention
modules as the change and leave the MLPs within noise.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import pytest

import traceparse
from tests.conftest import H200, ROOT
from tests.test_bad_input import ERROR_LINE, run_cli
from traceparse.diff import EXIT_REGRESSION, Diff, compare, diff_paths
from traceparse.diff.compare import ADDED, NOISE, REGRESSION, REMOVED, UNLISTED
from traceparse.diff.render import render_diff
from traceparse.diff.side import Row, Side, Table, load_side

SDPA = H200 / "llama-3.1-8b-4l-forward-seq2048-sdpa.pt.trace.json.gz"
EAGER = H200 / "llama-3.1-8b-4l-forward-seq2048-eager.pt.trace.json.gz"


@cache
def side(path: Path) -> Side:
    return load_side(path)


@cache
def sdpa_to_eager() -> Diff:
    return compare(side(SDPA), side(EAGER))


def test_fixtures_are_small_and_differ_in_attention_only() -> None:
    for p in (SDPA, EAGER):
        assert p.stat().st_size <= 512 * 1024
    a, b = side(SDPA).general, side(EAGER).general
    for key in ("model", "device", "dtype", "seq_len", "batch_size", "num_blocks", "params", "steps"):
        assert a[key] == b[key], key


def test_the_attention_modules_are_the_change_and_the_mlps_are_noise() -> None:
    d = sdpa_to_eager()
    assert d.top_table == "modules"
    attn = {f"model.layers.{i}.self_attn" for i in range(4)}
    # The four attention modules are the top regressions, each by over 1 ms per step.
    assert {c.key[0] for c in d.regressions[:4]} == attn
    assert all(c.status == REGRESSION and (c.delta_ms or 0) > 1.0 for c in d.regressions[:4])
    # Every module of every MLP (gate/up/down projections, activation) is within noise.
    mlp = [c for c in d.tables["modules"] if ".mlp" in c.key[0]]
    assert len(mlp) == 4 * 5
    assert {c.status for c in mlp} == {NOISE}, [(c.key, c.status, c.delta_ms, c.noise_ms) for c in mlp]
    types = {c.key[0]: c for c in d.tables["module_types"]}
    assert types["LlamaAttention"].status == REGRESSION
    assert types["LlamaMLP"].status == NOISE and types["Linear"].status == NOISE
    # Every block got slower, and what moved in it is not the GEMMs.
    blocks = d.tables["blocks"]
    assert [c.key for c in blocks] == [(i, "decoder") for i in range(4)]
    assert all(c.status == REGRESSION and c.family not in (None, "gemm") for c in blocks)
    families = {c.key[0]: c for c in d.tables["kernel_families"]}
    # eager attention is two bmm (gemm) and a softmax (reduction): no attention kernel is left
    assert families["attention"].status == REMOVED
    assert families["reduction"].status == REGRESSION and families["gemm"].status == REGRESSION
    # The sdpa kernel is gone, eager's softmax arrived.
    ops = {c.key[0]: c.status for c in d.tables["operators"]}
    assert ops["aten::_cudnn_attention_forward"] == REMOVED and ops["aten::_softmax"] == ADDED


def test_headline_and_gate() -> None:
    d = sdpa_to_eager()
    head = {m.name: m for m in d.headline}
    assert head["GPU kernel time"].status == REGRESSION and (head["GPU kernel time"].ratio or 0) > 1.5
    assert d.gate is not None and d.gate.name == "forward without profiler"
    assert d.failed(10.0) and not d.failed(80.0)
    assert not compare(side(EAGER), side(SDPA)).failed(0.0)


def test_reversed_diff_mirrors() -> None:
    back = compare(side(EAGER), side(SDPA))
    assert {c.key[0] for c in back.improvements[:4]} == {f"model.layers.{i}.self_attn" for i in range(4)}
    ops = {c.key[0]: c.status for c in back.tables["operators"]}
    assert ops["aten::_cudnn_attention_forward"] == ADDED and ops["aten::_softmax"] == REMOVED


def test_a_run_against_itself_is_all_noise() -> None:
    d = compare(side(SDPA), side(SDPA))
    for rows in d.tables.values():
        assert {c.status for c in rows} == {NOISE}
        assert all(c.delta_ms == 0.0 for c in rows)
    assert not d.regressions and not d.improvements and not d.failed(0.0)


def _side(rows: dict[str, tuple[float, ...]], kernel_steps: tuple[float, ...] = (10.0, 10.0)) -> Side:
    table = Table(tuple(Row((k,), sum(v) / len(v), v) for k, v in rows.items()))
    steps = tuple({"kernel_ms": k, "wall_ms": k} for k in kernel_steps)
    return Side("x", "trace", {"steps": len(kernel_steps)}, steps, {"kernels": table})


def test_a_change_inside_the_step_spread_is_noise() -> None:
    # 1 % slower inside a 3 % step-to-step spread: noise; 10 % slower: a regression.
    a = _side({"k": (0.985, 1.015), "big": (0.985, 1.015)})
    b = _side({"k": (0.995, 1.025), "big": (1.085, 1.115)})
    rows = {c.key[0]: c for c in compare(a, b, min_pct=0.0, min_ms=0.0).tables["kernels"]}
    assert rows["k"].status == NOISE and rows["k"].noise_ms == pytest.approx(0.03)
    assert rows["big"].status == REGRESSION
    # The floor applies when the steps agree exactly: 1.5 % under a 2 % floor is noise.
    flat = compare(_side({"k": (1.0, 1.0)}), _side({"k": (1.015, 1.015)}), min_pct=2.0, min_ms=0.0)
    assert flat.tables["kernels"][0].status == NOISE


def test_a_side_known_by_its_means_takes_its_steps_relative_range() -> None:
    a = Side("a", "report", {"steps": 2}, ({"kernel_ms": 9.7}, {"kernel_ms": 10.3}),
             {"kernels": Table((Row(("k",), 1.0),))})  # fmt: skip
    b = _side({"k": (1.04, 1.04)})
    (row,) = compare(a, b, min_pct=0.0, min_ms=0.0).tables["kernels"]
    assert row.noise_ms == pytest.approx(0.06)  # 6 % of 1.0 ms
    assert row.status == NOISE


def test_json_contract() -> None:
    d = sdpa_to_eager()
    data = json.loads(render_diff(d, "json"))
    assert data["schema"] == "traceparse.diff/1"
    assert set(data) >= {"a", "b", "noise", "headline", "gate", "regressions", "improvements", "tables", "notes"}
    assert set(data["tables"]) == {"blocks", "module_types", "modules", "kernel_families", "operators", "kernels"}
    block = data["tables"]["blocks"][0]
    assert {"index", "kind", "a_ms", "b_ms", "delta_ms", "ratio", "noise_ms", "status", "family"} <= set(block)
    top = data["regressions"][0]
    assert top["module"].endswith("self_attn") and top["class"] == "LlamaAttention"
    # every row of every table, not only those shown
    assert len(data["tables"]["modules"]) == len(d.tables["modules"]) > 15


def test_markdown_and_html() -> None:
    d = sdpa_to_eager()
    md = render_diff(d, "markdown")
    assert md.startswith("# traceparse diff:") and "## Headline (per profiler step)" in md
    assert "<details><summary><b>Modules (self ms per step)</b></summary>" in md
    assert "| model.layers.0.self_attn" in md
    page = render_diff(d, "html")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 1
    svg = re.search(r"<svg.*?</svg>", page, re.S)
    assert svg is not None and svg.group(0).count("<title>block ") == 4
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing from elsewhere


def test_python_api_returns_dataframes() -> None:
    d = traceparse.diff(SDPA, EAGER)
    frames = d.frames()
    assert set(frames) == {"headline", "blocks", "module_types", "modules", "kernel_families", "operators", "kernels"}
    blocks = d.blocks_df
    assert list(blocks["index"]) == [0, 1, 2, 3] and (blocks["delta_ms"] > 1.0).all()
    assert {"module", "class", "a_ms", "b_ms", "delta_ms", "ratio", "tflops_a"} <= set(d.modules_df.columns)


def test_a_saved_report_is_a_side(tmp_path: Path) -> None:
    saved = tmp_path / "sdpa.json"
    saved.write_text(_report_json(SDPA))
    d = diff_paths(saved, EAGER)
    assert d.a["kind"] == "report" and "kernels" not in d.tables and "operators" not in d.tables
    assert not d.complete["modules"] and d.complete["blocks"]
    statuses = {c.status for c in d.tables["modules"]}
    assert UNLISTED in statuses and REMOVED not in statuses and ADDED not in statuses
    assert {c.key[0] for c in d.regressions[:4]} == {f"model.layers.{i}.self_attn" for i in range(4)}
    assert any("saved report" in n for n in d.notes)


def _report_json(path: Path) -> str:
    from traceparse.render import render

    return render(traceparse.analyze(str(path)), "json")


def test_cli_formats_and_gate(tmp_path: Path) -> None:
    out, page = tmp_path / "d.json", tmp_path / "d.html"
    r = run_cli("diff", SDPA, EAGER, "-f", "json", "-o", out, "--html", page, "--fail-above", "10", "-q")
    assert r.rc == EXIT_REGRESSION and r.stdout == ""
    assert r.stderr.strip() == "traceparse: B is more than 10 % slower than A (beyond noise)"
    assert json.loads(out.read_text())["schema"] == "traceparse.diff/1" and "<svg" in page.read_text()
    r = run_cli("diff", EAGER, SDPA, "--fail-above", "0", "-f", "markdown", "-q")
    assert r.rc == 0 and r.stdout.startswith("# traceparse diff:"), r.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("diff", "no-such-file.json.gz", str(SDPA)), 4),
        (("diff", str(SDPA), "fixtures/README.md"), 3),
        (("diff", str(SDPA), str(SDPA), "--top", "0"), 2),
        (("diff", str(SDPA), str(SDPA), "--fail-above", "-1"), 2),
        (("diff", str(SDPA), str(SDPA), "--min-pct", "-1"), 2),
    ],
)
def test_cli_bad_input_is_one_line(args: tuple[str, ...], code: int) -> None:
    r = run_cli(*args, "-q")
    assert r.rc == code, r.stderr
    assert ERROR_LINE.match(r.stderr.strip()) and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_refuses_a_diff_as_input(tmp_path: Path) -> None:
    saved = tmp_path / "d.json"
    saved.write_text(render_diff(sdpa_to_eager(), "json"))
    r = run_cli("diff", saved, SDPA, "-q")
    assert r.rc == 3 and "a traceparse diff, not a trace or a report" in r.stderr


def test_readme_shows_the_diff() -> None:
    text = (ROOT / "README.md").read_text()
    assert "## diff" in text and "traceparse diff fixtures/h200/llama-3.1-8b-4l-forward-seq2048-sdpa" in text
