"""Compiled and CUDA-graph captures from one H200 (fixtures/h200-compile/, README there): module
tables recovered from Inductor's provenance and from reference-pass matching, checked against
figures computed here from the raw trace events (stdlib only: launches found by correlation id
inside CPU intervals), not against traceparse's own output.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from traceparse.api import Analysis, run_pipeline

DIR = Path(__file__).resolve().parent.parent / "fixtures" / "h200-compile"
LAUNCH_CATS = {"cuda_runtime", "cuda_driver"}
GPU_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}


def _trace(name: str) -> dict[str, Any]:
    with gzip.open(DIR / f"{name}.pt.trace.json.gz", "rt") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def _kernels_launched_in(
    trace: dict[str, Any], pattern: str, keep: Callable[[dict[str, Any]], bool] = lambda _e: True
) -> list[float]:
    """Per CPU interval whose name matches (in time order, within profiler steps): the summed
    duration of the GPU items (kernels, copies, sets) whose launch call lies inside it on the
    same thread."""
    ev = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    steps = [(e["ts"], e["ts"] + e["dur"]) for e in ev if re.match(r"ProfilerStep#\d+$", e["name"])]
    kernels: dict[int, float] = {}
    for e in ev:
        if e.get("cat") in GPU_CATS:
            kernels[e["args"]["correlation"]] = kernels.get(e["args"]["correlation"], 0.0) + e["dur"]
    launches = [e for e in ev if e.get("cat") in LAUNCH_CATS and "correlation" in e.get("args", {})]
    out = []
    spans = sorted(
        (
            e
            for e in ev
            if re.fullmatch(pattern, e["name"]) and e.get("cat") in ("cpu_op", "user_annotation") and keep(e)
        ),
        key=lambda e: e["ts"],
    )
    for s in spans:
        if not any(a <= s["ts"] <= b for a, b in steps):
            continue
        end = s["ts"] + s["dur"]
        out.append(
            sum(
                kernels.get(la["args"]["correlation"], 0.0)
                for la in launches
                if la["tid"] == s["tid"] and s["ts"] <= la["ts"] <= end
            )
        )
    return out


@pytest.fixture(scope="module")
def blocks() -> Analysis:
    return run_pipeline(DIR / "llama-2l-fwd-compile-blocks.pt.trace.json.gz")


@pytest.fixture(scope="module")
def model() -> Analysis:
    return run_pipeline(DIR / "llama-2l-fwd-compile-model.pt.trace.json.gz")


def _module_ms(a: Analysis, prefix: str, cls: str, phase: int | None = None) -> float:
    """Summed self time (ms per step) of the calls of one class under a qualified-name prefix."""
    attr = a.attribution
    own = attr.self_us(phase)
    pairs = zip(attr.calls.qual, attr.calls.cls, strict=True)
    keep = np.array([str(q).startswith(prefix) and c == cls for q, c in pairs])
    return float(own[keep].sum()) / 1e3 / attr.n_steps


def test_blocks_scope_block_time_is_the_scoped_kernels(blocks: Analysis) -> None:
    """Blocks stay eager around their compiled forward: each block's time is what its scope
    launched, as the raw events say."""
    per_call = _kernels_launched_in(_trace("llama-2l-fwd-compile-blocks"), r"model\.layers\.\d+ \(LlamaDecoderLayer\)")
    n = len(blocks.report.blocks)
    expected = [sum(per_call[i::n]) / 1e3 / (len(per_call) // n) for i in range(n)]
    got = [b.gpu_ms for b in blocks.report.blocks]
    assert got == pytest.approx(expected, rel=1e-9)


def test_blocks_scope_gemms_go_to_the_seven_linears(blocks: Analysis) -> None:
    """Every GEMM of a Llama block is one of its seven projections: the kernels the block's
    extern `aten::mm` calls launched are exactly its Linear modules' time."""
    gemm = _kernels_launched_in(_trace("llama-2l-fwd-compile-blocks"), r"aten::mm")
    # 7 per block, 2 blocks, then lm_head, per step (2 steps).
    per_step = len(gemm) // 2
    assert per_step == 15
    for b in (0, 1):
        expected = sum(gemm[s * per_step + 7 * b + k] for s in range(2) for k in range(7)) / 2 / 1e3
        assert _module_ms(blocks, f"model.layers.{b}.", "Linear") == pytest.approx(expected, rel=1e-9)
    types = {t.type: t for t in blocks.report.module_types}
    assert types["Linear"].count == 15
    rec = blocks.report.recovered[0]
    assert rec["source"] == "compiled regions" and rec["matched_pct"] > 95


def test_blocks_scope_roofline_uses_inductor_bytes(blocks: Analysis) -> None:
    """Fused Triton kernels have no shapes: their bytes are Inductor's estimate, so the block
    roofline is known (it was null before the compiled bytes were recorded)."""
    for b in blocks.report.blocks:
        assert b.bytes is not None and b.tbps is not None and b.bound == "memory"


def test_model_scope_recovers_blocks_from_provenance(blocks: Analysis, model: Analysis) -> None:
    """Whole-model compile: no scope inside the model, yet the two blocks come back with the
    same GEMM kernels (same shapes, same cuBLAS choices) as the blocks-scope capture."""
    assert [b.index for b in model.report.blocks] == [0, 1]
    for b in (0, 1):
        here = _module_ms(model, f"model.layers.{b}.", "Linear")
        there = _module_ms(blocks, f"model.layers.{b}.", "Linear")
        assert here == pytest.approx(there, rel=0.08)
    # All GEMM time on weights is Linear time (the rotary table's [64, 1] x [1, 215] mm is not;
    # the attention is cuDNN's, no GEMM op).
    on_weights = _kernels_launched_in(
        _trace("llama-2l-fwd-compile-model"), r"aten::mm", lambda e: e["args"]["Input Dims"][1][0] > 1
    )
    gemm = sum(on_weights) / 2 / 1e3
    assert _module_ms(model, "", "Linear") == pytest.approx(gemm, rel=1e-9)
    assert model.report.general.unattributed_ms == pytest.approx(0.0, abs=1e-9)

    # The rotary tables, computed once in the model, are fused into each layer's attention
    # kernels: such a kernel runs for that layer's attention, not for the model.
    def layers(f: dict[str, Any]) -> set[str]:
        return {m.split(".")[2] for m in f["modules"] if m.startswith("model.layers.")}

    rotary = [f for f in model.report.fusions if "model.rotary_emb" in f["modules"] and len(layers(f)) == 1]
    assert len(rotary) >= 4
    assert all(f["given_to"] == f"model.layers.{layers(f).pop()}.self_attn" for f in rotary)
    # A kernel that fuses the end of one block with the start of the next stays with the model.
    across = [f for f in model.report.fusions if len(layers(f)) == 2]
    assert across and all(f["given_to"] == "model" for f in across)
    assert model.report.recovered[0]["matched_pct"] == pytest.approx(100.0)


def test_train_backward_goes_to_the_block_that_ran_it() -> None:
    """Each compiled block's backward is one CompiledFunctionBackward node; its kernels are the
    block's backward time (blocks run backward in reverse order)."""
    a = run_pipeline(DIR / "llama-2l-train-compile-blocks.pt.trace.json.gz")
    per_node = _kernels_launched_in(_trace("llama-2l-train-compile-blocks"), r"CompiledFunctionBackward")
    assert len(per_node) == 4  # 2 blocks x 2 steps
    expected = {1: (per_node[0] + per_node[2]) / 2e3, 0: (per_node[1] + per_node[3]) / 2e3}
    for row in a.report.blocks:
        assert row.backward_ms == pytest.approx(expected[row.index], rel=1e-9)
    # ...and inside it, to the modules Inductor generated each kernel for.
    assert _module_ms(a, "model.layers.0.mlp.", "Linear", phase=1) > 0.05


def test_reduce_overhead_says_why_its_kernels_stay_at_the_launch() -> None:
    report = run_pipeline(DIR / "llama-2l-fwd-reduce-overhead.pt.trace.json.gz").report
    assert any("ran as CUDA-graph replays (mode reduce-overhead)" in n for n in report.notes)
    assert report.general.unattributed_ms == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name", ["llama-2l-decode-graphs", "llama-2l-decode-compile-graphs"])
def test_graph_decode_tokens_get_modules_and_flops(name: str) -> None:
    """A decode loop replayed from a CUDA graph (7 tokens after a 64-token prefill, 2 blocks):
    the replays' kernels are matched to the reference pass, so blocks, per-token GPU time and
    FLOPs come back."""
    a = run_pipeline(DIR / f"{name}.pt.trace.json.gz")
    report, trace = a.report, _trace(name)
    meta = trace["traceparse"]
    cfg = meta["config"]
    # The reference pass's step is not a step: 2 profiled steps remain.
    assert report.general.steps == 2 and a.attribution.index.reference_steps == 1
    # Per-token GPU time: the kernels each cudaGraphLaunch ran, from the raw events.
    ev = [e for e in trace["traceEvents"] if e.get("ph") == "X"]
    steps = [(e["ts"], e["ts"] + e["dur"]) for e in ev if re.match(r"ProfilerStep#\d+$", e["name"])]
    launches = {
        e["args"]["correlation"]
        for e in ev
        if e["name"].startswith("cudaGraphLaunch") and any(a <= e["ts"] <= b for a, b in steps)
    }
    per_launch: dict[int, float] = {}
    for e in ev:
        if e.get("cat") in GPU_CATS and e["args"].get("correlation") in launches:
            per_launch[e["args"]["correlation"]] = per_launch.get(e["args"]["correlation"], 0.0) + e["dur"]
    assert len(per_launch) == 2 * meta["cuda_graphs"]["replays_per_step"]
    gen = report.generation
    assert gen is not None and gen["decode_steps_per_step"] == 7
    assert gen["decode_gpu_ms_median"] == pytest.approx(float(np.median(list(per_launch.values()))) / 1e3, rel=1e-9)
    # Blocks: each block's GEMM FLOPs are 2 x its Linear parameters x the 71 tokens of a step
    # (the replays' counted from their reference twins); attention adds ~0.15 % here.
    h, kv = cfg["hidden_size"], cfg["num_key_value_heads"] * cfg["hidden_size"] // cfg["num_attention_heads"]
    linear = 2 * h * h + 2 * h * kv + 3 * h * cfg["intermediate_size"]
    tokens = meta["seq_len"] + meta["cuda_graphs"]["replays_per_step"]
    assert [b.index for b in report.blocks] == [0, 1]
    for b in report.blocks:
        assert b.params == linear + 2 * h  # and the two RMSNorm weights
        assert b.flops == pytest.approx(2 * linear * tokens, rel=3e-3)
    replays = next(r for r in report.recovered if r["source"] == "CUDA-graph replays")
    assert replays["matched_pct"] > 90
    assert report.general.unattributed_ms < 0.02 * report.general.kernel_ms


def test_a_mangled_compile_block_does_not_break_the_report(tmp_path: Path) -> None:
    """Hand-edited provenance of the wrong types: no recovery, no crash, the blocks still come
    from their eager scopes."""
    trace = _trace("llama-2l-fwd-compile-blocks")
    trace["traceparse"]["compile"] = {
        "scope": 3,
        "modules": "x",
        "graphs": [{"sites": [["k", "not a list"], 7]}, "junk"],
        "warmup": [{"warmup_s": "soon"}],
    }
    path = tmp_path / "mangled.pt.trace.json.gz"
    with gzip.open(path, "wt") as fh:
        json.dump(trace, fh)
    report = run_pipeline(path).report
    assert [b.index for b in report.blocks] == [0, 1]
    assert report.recovered == []
