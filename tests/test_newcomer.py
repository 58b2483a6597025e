"""Issue 19, a newcomer's first hour: -o picks the format, a tidy CSV, top kernels, --top and
--steps, CPU wording, distinct module names, worded generation labels, the CLI's small things,
and the rendered forms of `Report` in Python."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import NEMOTRON_8L_GENERATE, QWEN_GENERATE, ROOT, analysis
from traceparse.api import run_pipeline
from traceparse.cli import app
from traceparse.render import render

runner = CliRunner()
CPU_ONLY = ROOT / "fixtures" / "foreign" / "hta-cpu_only-rank-34.Jul_15_10_52_41.1074.pt.trace.json.gz"


def _analyze(*args: str, stdin: bytes | None = None) -> tuple[int, str]:
    result = runner.invoke(app, ["analyze", "-q", *args], input=stdin)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("name", "marker"),
    [("r.json", '"schema": "traceparse.report/1"'), ("r.md", "## General parameters"), ("r.csv", "section,row,")],
)
def test_the_output_extension_picks_the_format(tmp_path: Path, name: str, marker: str) -> None:
    code, out = _analyze(str(QWEN_GENERATE), "-o", str(tmp_path / name))
    assert code == 0, out
    assert marker in (tmp_path / name).read_text()


def test_html_by_extension_and_an_explicit_format_wins(tmp_path: Path) -> None:
    code, out = _analyze(str(QWEN_GENERATE), "-o", str(tmp_path / "r.html"))
    assert code == 0, out
    assert (tmp_path / "r.html").read_text().lstrip().lower().startswith("<!doctype html")
    code, out = _analyze(str(QWEN_GENERATE), "-f", "table", "-o", str(tmp_path / "t.json"))
    assert code == 0, out
    assert (tmp_path / "t.json").read_text().startswith("qwen3-0.6b-4l\n====")


def test_csv_is_tidy_with_raw_numbers() -> None:
    report = analysis(QWEN_GENERATE).report
    df = pd.read_csv(io.StringIO(render(report, "csv")))
    assert list(df.columns) == ["section", "row", "field", "value", "text"]
    assert df["value"].dtype == "float64"
    blocks = df[df.section == "blocks"].pivot(index="row", columns="field", values="value")
    assert blocks["gpu_ms"].tolist() == pytest.approx([b.gpu_ms for b in report.blocks])
    params = df[(df.section == "general") & (df.field == "params")]["value"].item()
    assert params == report.general.params  # 218507264, not "218 507 264"
    assert render(report, "csv", "ru") == render(report, "csv")  # the JSON's keys in every language


def test_top_kernels_top_and_steps() -> None:
    report = analysis(QWEN_GENERATE).report
    kernels = report.top_kernels
    assert len(kernels) == 20 and kernels[0]["total_ms"] >= kernels[-1]["total_ms"]
    first = kernels[0]
    assert first["min_ms"] <= first["mean_ms"] <= first["max_ms"] and first["family"] == "gemm"
    assert 0 < sum(k["share_pct"] for k in kernels) <= 100.0 + 1e-9
    assert "Top 20 kernels by GPU time" in render(report, "table")
    few = run_pipeline(QWEN_GENERATE, top=3, steps="1:").report
    assert len(few.top_kernels) == len(few.slowest_modules) == 3
    assert few.general.steps == 1 and len(few.steps) == 1
    assert few.general.kernel_ms == pytest.approx(report.steps[1].kernel_ms)


@pytest.mark.parametrize("spec", ["x", "5:", "9", "::0"])
def test_bad_steps_are_a_usage_error(spec: str) -> None:
    code, out = _analyze(str(QWEN_GENERATE), "--steps", spec)
    assert code == 2 and out.count("\n") == 1 and "--steps" in out


def test_the_two_models_are_named_apart() -> None:
    names = [m.name for m in run_pipeline(QWEN_GENERATE, top=200).report.slowest_modules]
    assert "model (Qwen3ForCausalLM)" in names and "model (Qwen3Model)" in names and "model" not in names


def test_generation_labels_are_words() -> None:
    text = render(analysis(QWEN_GENERATE).report, "table")
    assert "decode_steps_per_step" not in text and "Decode steps (tokens) per profiler step" in text
    assert "Block 0: decode ms per token" in text
    assert "of which analytic" not in text  # no SSM
    assert "of which analytic" in render(analysis(NEMOTRON_8L_GENERATE).report, "table")
    assert "Шагов декодирования" in render(analysis(QWEN_GENERATE).report, "table", "ru")


def test_a_cpu_trace_says_cpu_and_unknown_blocks() -> None:
    text = render(analysis(CPU_ONLY).report, "table")
    assert "CPU time (operator self time)" in text and "GPU" not in text.split("Notes")[0]
    line = next(x for x in text.splitlines() if x.startswith("Blocks "))
    assert line.split()[-1] == "unknown"


def test_version_stdin_and_help() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("traceparse ")
    code, out = _analyze("-", "-f", "json", stdin=QWEN_GENERATE.read_bytes())
    assert code == 0, out
    doc = json.loads(out)
    assert doc["source"] == "<stdin>" and doc["general"]["steps"] == 2
    code, out = _analyze("-", stdin=b"")
    assert code == 4 and "empty stdin" in out
    help_text = runner.invoke(app, ["analyze", "--help"], env={"COLUMNS": "200"}).output
    assert "traceparse[hta]" in help_text
    assert "qwen3-0.6b-tiny" in runner.invoke(app, ["capture", "--help"], env={"COLUMNS": "200"}).output


def test_report_renders_itself_in_python(tmp_path: Path) -> None:
    report = analysis(QWEN_GENERATE).report
    assert report.to_markdown().startswith("# qwen3-0.6b-4l")
    assert "<html" in report.to_html(charts=False)
    paths = report.charts(tmp_path)
    assert paths and all(p.suffix == ".png" and p.exists() for p in paths)
    assert str(report.module_types_df["count"].dtype) == "Int64"
    assert str(report.slowest_modules_df["calls"].dtype) == "Int64"
    assert str(report.top_kernels_df["count"].dtype) == "Int64"


def test_a_cpu_capture_lists_its_aten_operators(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    args = ["capture", "--device", "cpu", "--preset", "qwen3-0.6b-tiny", "--seq-len", "16", "--steps", "1"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path), "-q", "--no-report"])
    assert result.exit_code == 0, result.output
    report = run_pipeline(next(tmp_path.glob("*.pt.trace.json.gz"))).report
    ops = [str(o["operator"]) for o in report.top_operators]
    assert "aten::linear" in ops and not any("(Qwen3ForCausalLM)" in o for o in ops)
    assert "self CPU time" in render(report, "table")
