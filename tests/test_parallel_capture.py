"""Issue #15 on CPUs: `capture --tp 2` and `--parallel ddp|fsdp` under torchrun (gloo), and the
job report's attribution of each collective to the module that issued it.

Live: three 2-rank torchrun jobs of tiny Qwen3/Llama configs, launched together (one process
start each is most of their time). Committed: fixtures/cpu-parallel, a TP forward pair made the
same way (see its README). Every expected figure is recomputed from the raw trace events here:
gloo's collective spans on its worker threads, the c10d op that queued each on the main thread,
and the innermost module scope around that op.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import ROOT
from traceparse.capture.options import CaptureOptions
from traceparse.cli import app
from traceparse.errors import UsageError
from traceparse.job import analyze_job
from traceparse.job.summary import summarize

CPU_PARALLEL = ROOT / "fixtures" / "cpu-parallel"
_SCOPE = re.compile(r"^(\S+) \((\w+)\)$")
_TINY = ("--device", "cpu", "--seq-len", "16", "--warmup", "1", "--steps", "1", "--timing-runs", "1")
JOBS = {
    "tp": ("--preset", "llama-3.1-8b-tiny", "--layers", "2", "--tp", "2"),
    "ddp": ("--preset", "qwen3-0.6b-tiny", "--mode", "train", "--parallel", "ddp"),
    "fsdp": ("--preset", "qwen3-0.6b-tiny", "--mode", "train", "--parallel", "fsdp"),
}


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three torchrun jobs, run at the same time; {job: its output folder}."""
    base = tmp_path_factory.mktemp("parallel")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    procs = {}
    for name, args in JOBS.items():
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
        cmd += ["-m", "traceparse", "capture", *_TINY, *args, "-o", str(base / name), "--no-report", "-q"]
        procs[name] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, f"{name}: {out[-3000:]}"
    return {name: base / name for name in JOBS}


def _load(path: Path) -> dict:
    with gzip.open(path) as fh:
        return json.load(fh)


def _ranks(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pt.trace.json.gz"))


def issued_by(trace: dict) -> dict[tuple[str, str], list[float]]:
    """By hand, from the events: {(issuing module scope, collective span name): [span µs, …]}
    over the profiler steps. The main thread is the steps'; gloo runs its queue in order, so the
    k-th gloo span belongs to the k-th `c10d::` op; that op's module is the innermost scope
    around it on the main thread ("" for none)."""
    events = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    steps = [e for e in events if e["name"].startswith("ProfilerStep#")]
    main = steps[0]["tid"]
    spans = sorted((e for e in events if e["name"].startswith("gloo:")), key=lambda e: e["ts"])
    issues = sorted((e for e in events if e["tid"] == main and e["name"].startswith("c10d::")), key=lambda e: e["ts"])
    scopes = [e for e in events if e["tid"] == main and _SCOPE.match(e["name"])]
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for span, op in zip(spans, issues, strict=True):
        assert op["ts"] <= span["ts"]
        if not any(s["ts"] <= span["ts"] < s["ts"] + s["dur"] for s in steps):
            continue
        around = [s for s in scopes if s["ts"] <= op["ts"] and op["ts"] + op["dur"] <= s["ts"] + s["dur"]]
        module = max(around, key=lambda s: s["ts"])["name"] if around else ""
        out[(module, span["name"])].append(span["dur"])
    return out


def _check_tp_attribution(folder: Path, layers: int) -> None:
    """Each all-reduce of a TP forward comes from a row-parallel Linear (o_proj, down_proj) of
    its block, once per block and step; the job report's blocks, collectives and issuing
    modules say the same, rank by rank and across ranks."""
    paths = _ranks(folder)
    job = analyze_job([folder], workers=1)
    assert job.cpu_only and job.world_size == 2 and [r.rank for r in job.ranks] == [0, 1]
    row_parallel = {
        f"model.layers.{i}.{m} (Linear)" for i in range(layers) for m in ("self_attn.o_proj", "mlp.down_proj")
    }
    for rank, path in enumerate(paths):
        trace = _load(path)
        n_steps = sum(e.get("name", "").startswith("ProfilerStep#") for e in trace["traceEvents"])
        by_hand = issued_by(trace)
        reduce_sites = {m for m, span in by_hand if span == "gloo:all_reduce"}
        assert reduce_sites == row_parallel
        assert set(by_hand) == {(m, "gloo:all_reduce") for m in row_parallel} | {
            ("lm_head (Linear)", "gloo:all_gather")
        }
        assert all(len(durs) == n_steps for durs in by_hand.values())
        summary = summarize(str(path), rank)
        got = {(i.module, i.collective): i for i in summary.issuers}
        for (module, span), durs in by_hand.items():
            collective = "allreduce" if span == "gloo:all_reduce" else "allgather_into_tensor_coalesced"
            row = got[(module, collective)]
            assert row.phase == "forward" and row.calls == 1
            assert row.ms == pytest.approx(sum(durs) / 1e3 / n_steps, rel=1e-6)
        total = sum(sum(d) for d in by_hand.values()) / 1e3 / n_steps
        assert summary.comm_ms == pytest.approx(total, rel=1e-6)
        # A block's communication is its two row-parallel Linears'; the rest is lm_head's gather.
        for block in summary.blocks:
            mine = [sum(d) for (m, _), d in by_hand.items() if m.startswith(f"model.layers.{block.index}.")]
            assert block.comm_ms == pytest.approx(sum(mine) / 1e3 / n_steps, rel=1e-6) and block.comm_ms > 0
        # Sizes are unknown on the CPU (no shape arguments kept for c10d ops or gloo's spans).
        reduce = next(c for c in summary.collectives if c.collective == "allreduce")
        assert reduce.calls == 2 * layers and reduce.bytes_per_call is None and reduce.busbw_gbps is None
        # Synchronous all-reduces: the main thread computes nothing while they run.
        assert 0 < summary.exposed_comm_ms <= summary.comm_ms + 1e-9
        assert summary.exposed_comm_ms == pytest.approx(summary.comm_ms, rel=0.05)
    reduce = next(c for c in job.collectives if c.collective == "allreduce")
    assert reduce.calls == 2 * layers and reduce.group_size == 2 and reduce.ranks == 2
    assert {i.module for i in job.issuers if i.collective == "allreduce"} == row_parallel
    assert [b.index for b in job.blocks] == list(range(layers)) and all(b.comm_ms_median > 0 for b in job.blocks)


def test_the_committed_tp_fixture_attributes_each_all_reduce_to_its_row_parallel_linear() -> None:
    _check_tp_attribution(CPU_PARALLEL, layers=2)


def test_tp_forward_writes_one_trace_per_rank_with_rank_world_and_plan(jobs: dict[str, Path]) -> None:
    paths = _ranks(jobs["tp"])
    assert [p.name for p in paths] == [
        f"llama-3.1-8b-tiny-2l-tp2-forward-seq16-rank{r}.pt.trace.json.gz" for r in (0, 1)
    ]
    for rank, path in enumerate(paths):
        trace = _load(path)
        meta = trace["traceparse"]
        assert (meta["rank"], meta["world_size"]) == (rank, 2)
        assert trace["distributedInfo"]["rank"] == rank and trace["distributedInfo"]["backend"] == "gloo"
        plan = meta["parallel"]
        assert plan["kind"] == "tp" and plan["tp_size"] == 2 and plan["backend"] == "gloo"
        assert plan["tp_plan"]["model.layers.*.self_attn.o_proj"] == "rowwise"
        assert plan["tp_plan"]["model.layers.*.mlp.gate_proj"] == "colwise"
        # Parameters are counted whole (a DTensor's numel is the global one), as without TP.
        assert meta["params"] == sum(row["params"] for row in meta["modules"])
    _check_tp_attribution(jobs["tp"], layers=2)


def test_ddp_scopes_keep_the_inner_models_names_and_buckets_reduce_in_backward(jobs: dict[str, Path]) -> None:
    paths = _ranks(jobs["ddp"])
    assert [p.name[-22:] for p in paths] == ["rank0.pt.trace.json.gz", "rank1.pt.trace.json.gz"]
    trace = _load(paths[0])
    meta = trace["traceparse"]
    assert meta["parallel"] == {
        "kind": "ddp",
        "world_size": 2,
        "backend": "gloo",
        "bucket_cap_mb": 25,
        "broadcast_buffers": True,
    }
    assert meta["model_class"] == "Qwen3ForCausalLM" and meta["blocks_container"] == "model.layers"
    names = {e["name"] for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert not any(n.startswith("module.") for n in names)
    assert {"model (Qwen3ForCausalLM)", "model.layers.1 (Qwen3DecoderLayer)"} <= names
    job = analyze_job([jobs["ddp"]], workers=1)
    assert [(b.index, b.kind) for b in job.blocks] == [(0, "decoder"), (1, "decoder")]
    sites = {(i.module, i.phase, i.collective) for i in job.issuers}
    # The gradient bucket's all-reduce fires from the hook on a parameter's AccumulateGrad node:
    # no module's op, in backward; the buffers' broadcast from DDP's own forward, outside the model.
    assert ("(no module: torch::autograd::AccumulateGrad)", "backward", "allreduce") in sites
    assert ("(no module: DistributedDataParallel.forward)", "forward", "broadcast") in sites
    assert all(r.comm_ms > 0 and r.exposed_comm_ms <= r.comm_ms + 1e-9 for r in job.ranks)
    by_hand = issued_by(trace)
    assert sum(len(d) for d in by_hand.values()) == sum(c.calls for c in summarize(str(paths[0]), 0).collectives)


def test_fsdp_all_gathers_in_each_blocks_forward_and_reduce_scatters_in_backward(jobs: dict[str, Path]) -> None:
    paths = _ranks(jobs["fsdp"])
    trace = _load(paths[1])
    meta = trace["traceparse"]
    assert meta["rank"] == 1 and meta["parallel"]["kind"] == "fsdp"
    assert meta["parallel"]["fully_shard"][:2] == ["model.layers.0", "model.layers.1"]
    # fully_shard renamed the classes (FSDPQwen3DecoderLayer); the scopes name the model's own.
    assert meta["model_class"] == "Qwen3ForCausalLM"
    names = {e["name"] for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert "model.layers.0 (Qwen3DecoderLayer)" in names and not any("(FSDP" in n for n in names)
    job = analyze_job([jobs["fsdp"]], workers=1)
    sites = {(i.module, i.phase, i.collective) for i in job.issuers}
    for block in ("model.layers.0", "model.layers.1"):
        # The scope opens before FSDP's pre-forward hook: the block's all-gather is inside it.
        assert (f"{block} (Qwen3DecoderLayer)", "forward", "allgather_base") in sites
        assert (f"{block} (Qwen3DecoderLayer)", "backward", "reduce_scatter_base") in sites
    assert all(b.comm_ms_median > 0 for b in job.blocks)


def test_parallel_options_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = CaptureOptions(preset="qwen3-0.6b-tiny")
    for bad, words in (
        ({"tp": 0}, "--tp must be at least 1"),
        ({"parallel": "zero3"}, "ddp or fsdp"),
        ({"parallel": "ddp"}, "needs --mode train"),
        ({"parallel": "ddp", "mode": "train", "tp": 2}, "one or the other"),
    ):
        with pytest.raises(UsageError, match=words):
            CaptureOptions(**{**base.__dict__, **bad}).validate()
    # Outside torchrun there is no job to join: said in one line, exit 2.
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(
        app, ["capture", "--preset", "qwen3-0.6b-tiny", *_TINY, "--tp", "2", "-o", str(tmp_path)]
    )
    assert result.exit_code == 2 and "torchrun --nproc-per-node N" in result.output


def test_fsdp_class_names_keep_the_contract() -> None:
    from torch import nn
    from torch.distributed.fsdp import FSDPModule

    from traceparse.capture.scopes import class_name, scope_name

    class Block(nn.Linear):
        pass

    wrapped = Block(2, 2)
    wrapped.__class__ = type("FSDPBlock", (FSDPModule, Block), {})  # what fully_shard does
    assert class_name(wrapped) == "Block" and scope_name("model.layers.0", wrapped) == "model.layers.0 (Block)"

    class FSDPOwn(nn.Linear):  # a user's class that merely starts with FSDP keeps its name
        pass

    assert class_name(FSDPOwn(2, 2)) == "FSDPOwn"
