"""`traceparse capture` on the CPU with tiny presets: the trace, its metadata, the scope contract."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from traceparse.api import run_pipeline
from traceparse.cli import app

runner = CliRunner()


def _capture(tmp_path: Path, *args: str) -> Path:
    result = runner.invoke(app, ["capture", "--device", "cpu", "--seq-len", "24", "-o", str(tmp_path), "-q", *args])
    assert result.exit_code == 0, result.output
    traces = list(tmp_path.glob("*.pt.trace.json.gz"))
    assert len(traces) == 1
    return traces[0]


@pytest.fixture(scope="module")
def nemotron_cpu_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cap")
    return _capture(out, "--preset", "nemotron-nano-9b-v2-tiny", "--steps", "2", "--no-report")


def test_capture_writes_a_trace_with_steps_scopes_and_metadata(nemotron_cpu_trace: Path) -> None:
    assert nemotron_cpu_trace.name == "nemotron-nano-9b-v2-tiny-forward-seq24.pt.trace.json.gz"
    with gzip.open(nemotron_cpu_trace) as fh:
        trace = json.load(fh)
    meta = trace["traceparse"]
    assert meta["model_class"] == "NemotronHForCausalLM"
    assert meta["seq_len"] == 24 and meta["batch_size"] == 1 and meta["dtype"] == "float32"
    assert meta["config"]["hidden_size"] == 64 and meta["blocks_container"] == "model.layers"
    assert meta["timing"]["forward_ms_uninstrumented"] > 0 and meta["timing"]["forward_ms_scopes"] > 0
    assert len(meta["timing"]["profiled_step_wall_ms"]) == 2
    steps = {e["name"] for e in trace["traceEvents"] if e.get("name", "").startswith("ProfilerStep#")}
    assert len(steps) == 2
    # The naming contract: every module of the table appears as "<qualified name> (<Class>)".
    names = {e.get("name") for e in trace["traceEvents"] if e.get("ph") == "X"}
    called = {f"{row['name']} ({row['class']})" for row in meta["modules"]}
    called -= {"model.layers.0.mixer.conv1d (Conv1d)", "model.layers.2.mixer.conv1d (Conv1d)"}  # weights only
    called -= {n for n in called if n.endswith("(ModuleList)") or n.endswith("(SiLUActivation)")}
    assert called <= names, sorted(called - names)[:5]
    assert "model (NemotronHForCausalLM)" in names
    blocks = [row for row in meta["modules"] if row["block"] is not None]
    assert {row["block"] for row in blocks} == set(range(5))


def test_analyze_reads_the_cpu_capture(nemotron_cpu_trace: Path) -> None:
    report = run_pipeline(nemotron_cpu_trace).report
    assert report.attribution == "cpu"
    assert report.general.steps == 2 and report.general.num_blocks == 5
    assert [b.kind for b in report.blocks] == ["mamba", "mlp", "mamba", "attention", "mlp"]
    assert any("CPU-only" in n for n in report.notes)
    assert report.general.flops and report.general.flops > 0


def test_capture_prints_the_report(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["capture", "--preset", "llama-3.1-8b-tiny", "--device", "cpu", "--steps", "1", "-o", str(tmp_path), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "General parameters" in result.stdout and "Per-block efficiency" in result.stdout


def test_rank_goes_into_the_name_and_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    path = _capture(tmp_path, "--preset", "qwen3-0.6b-tiny", "--steps", "1", "--no-report")
    assert path.name.endswith("-rank1.pt.trace.json.gz")
    with gzip.open(path) as fh:
        trace = json.load(fh)
    assert trace["traceparse"]["rank"] == 1 and trace["traceparse"]["world_size"] == 2
    assert trace["distributedInfo"]["rank"] == 1 and trace["distributedInfo"]["world_size"] == 2


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--preset", "no-such-model"], 2, "unknown preset 'no-such-model'"),
        (["--config", "/no/such/config.json"], 4, "cannot read config"),
        (["--preset", "qwen3-0.6b-tiny", "--seq-len", "0"], 2, "--seq-len must be at least 1"),
        (["--preset", "qwen3-0.6b-tiny", "--device", "cuda"], 2, "no CUDA device"),
        (["--preset", "qwen3-0.6b-tiny", "--layers", "99"], 2, "has only 2 blocks"),
        (["someorg/some-model-that-is-not-here"], 2, "cannot get the config"),
    ],
)
def test_bad_capture_input_is_one_line_and_leaves_nothing(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "traceparse", "capture", *args, "-o", str(out), "-q"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert message in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_unreadable_config_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    result = runner.invoke(app, ["capture", "--config", str(bad), "-o", str(tmp_path / "o")])
    assert result.exit_code == 4
    assert "is not valid JSON" in result.stderr


def test_torchrun_ranks_each_wrote_their_own_trace_on_their_own_gpu() -> None:
    """Real 2-GPU capture under torchrun (fixtures/h200x2): one file per rank, rank in name and metadata."""
    from tests.conftest import ROOT

    for rank in (0, 1):
        path = ROOT / "fixtures" / "h200x2" / f"qwen3-0.6b-4l-forward-seq215-rank{rank}.pt.trace.json.gz"
        with gzip.open(path) as fh:
            trace = json.load(fh)
        assert trace["traceparse"]["rank"] == rank and trace["traceparse"]["world_size"] == 2
        assert trace["distributedInfo"] == {"rank": rank, "world_size": 2, "backend": None}
        assert {e["pid"] for e in trace["traceEvents"] if e.get("cat") == "kernel"} == {rank}  # its own GPU
        report = run_pipeline(path).report
        assert report.general.num_blocks == 4 and report.attribution == "scopes"
