"""Backward FLOPs: attention backward is 2.5× forward, a GEMM's backward 2× — on a real CPU train
step of a tiny model (SDPA, causal) and on the H200 train fixture (cuDNN attention). Also checks
the argument positions our formulas read against the ops' real `Input Dims` / `Concrete Inputs`.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import NEMOTRON_8L_TRAIN, QWEN_TRAIN, analysis
from traceparse.api import Analysis, run_pipeline
from traceparse.flops.attention import ATTENTION
from traceparse.flops.formulas import FORMULAS, OpArgs
from traceparse.scopes import BACKWARD, FORWARD

SEQ, BATCH = 32, 2


def raw_ops(path: Path, names: set[str]) -> dict[str, list[dict[str, Any]]]:
    """The args of every cpu_op event named in `names`, straight from the trace JSON."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        events = json.load(fh)["traceEvents"]
    out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for e in events:
        if e.get("cat") == "cpu_op" and e.get("name") in names:
            out[e["name"]].append(e["args"])
    return out


def check_argument_positions(path: Path, q_shape: list[int], names: set[str]) -> dict[str, tuple[Any, Any]]:
    """Each op's query sits at our q index and its is_causal (True in these runs) at our index."""
    seen = {}
    for name, calls in raw_ops(path, names).items():
        assert calls, f"{name} not in {path.name}"
        sig = ATTENTION[name]
        for args in calls:
            dims, concrete = args["Input Dims"], args["Concrete Inputs"]
            assert dims[sig.q] == q_shape, (name, dims)
            assert concrete[sig.causal] == "True", (name, concrete)
        seen[name] = (calls[0]["Input Dims"], calls[0]["Concrete Inputs"])
    return seen


def per_call(a: Analysis, kind: str, phase: int) -> np.ndarray:
    return a.flops.per_call(len(a.attribution.calls), (kind,), phase=phase)


def check_backward_ratios(a: Analysis, attention_modules: int, linears: int) -> tuple[float, float]:
    """Per module call: backward attention = 2.5× forward, backward GEMM = 2× forward (no biases)."""
    calls = a.attribution.calls
    att_f, att_b = per_call(a, "attention", FORWARD), per_call(a, "attention", BACKWARD)
    gemm_f, gemm_b = per_call(a, "gemm", FORWARD), per_call(a, "gemm", BACKWARD)
    has_att = np.flatnonzero(att_f > 0)
    assert has_att.size == attention_modules
    assert np.array_equal(att_b[has_att], 2.5 * att_f[has_att])
    lin = np.flatnonzero(calls.cls == "Linear")
    assert lin.size == linears and (gemm_f[lin] > 0).all()
    assert np.array_equal(gemm_b[lin], 2 * gemm_f[lin])
    return float(att_f.sum()), float(gemm_f[lin].sum())


# ---- a CPU train step -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cpu_train(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop, sdpa_flop

    from traceparse.capture import CaptureOptions, run_capture
    from traceparse.capture.model import build_model
    from traceparse.capture.workload import make_workload

    opts = CaptureOptions(
        preset="qwen3-0.6b-tiny",
        device="cpu",
        attn_impl="sdpa",
        mode="train",
        seq_len=SEQ,
        batch_size=BATCH,
        warmup=1,
        steps=1,
        timing_runs=1,
        out=tmp_path_factory.mktemp("train"),
    )
    result = run_capture(opts)
    # The same step under FlopCounterMode (CPU flash SDPA given FCM's own SDPA formulas).
    built = build_model(opts)
    work = make_workload(built, opts)
    aten = torch.ops.aten
    mapping = {
        aten._scaled_dot_product_flash_attention_for_cpu: sdpa_flop.__wrapped__,
        aten._scaled_dot_product_flash_attention_for_cpu_backward: sdpa_backward_flop.__wrapped__,
    }
    with FlopCounterMode(display=False, custom_mapping=mapping) as fcm:
        work.step()
    counts = {m: sum(ops.values()) for m, ops in fcm.get_flop_counts().items()}
    return {
        "path": result.trace_path,
        "causal": run_pipeline(result.trace_path, "causal"),
        "full": run_pipeline(result.trace_path, "full"),
        "fcm": counts,
        "root": type(built.model).__name__,
        "config": built.model.config,
    }


def test_cpu_sdpa_argument_positions(cpu_train: dict[str, Any]) -> None:
    cfg = cpu_train["config"]
    q_shape = [BATCH, cfg.num_attention_heads, SEQ, cfg.head_dim]
    seen = check_argument_positions(
        cpu_train["path"],
        q_shape,
        {
            "aten::scaled_dot_product_attention",
            "aten::_scaled_dot_product_flash_attention_for_cpu",
            "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
        },
    )
    for name, (dims, concrete) in sorted(seen.items()):
        print(f"{name}\n  Input Dims {dims}\n  Concrete Inputs {concrete}")


@pytest.mark.parametrize("backend", ["FLASH_ATTENTION", "MATH"])
def test_cpu_sdpa_backends_read_from_a_real_trace(tmp_path: Path, backend: str) -> None:
    """Causal GQA SDPA with 7 queries against 9 keys, forward and backward, on each CPU backend:
    every attention op in the trace (outer and nested) evaluates to the hand count."""
    torch = pytest.importorskip("torch")
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import ProfilerActivity, profile

    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 7, 16, generator=g, requires_grad=True)
    k = torch.randn(2, 2, 9, 16, generator=g, requires_grad=True)
    v = torch.randn(2, 2, 9, 16, generator=g, requires_grad=True)
    with sdpa_kernel(getattr(SDPBackend, backend)), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        out.sum().backward()
    path = tmp_path / "sdpa.json"
    p.export_chrome_trace(str(path))
    forward = 2 * 2 * 4 * (1 + 2 + 3 + 4 + 5 + 6 + 7) * (16 + 16)  # top-left causal triangle
    found = raw_ops(path, set(ATTENTION))
    present = {name: calls for name, calls in found.items() if calls}
    expected_ops = {
        "FLASH_ATTENTION": {
            "aten::scaled_dot_product_attention",
            "aten::_scaled_dot_product_flash_attention_for_cpu",
            "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
        },
        "MATH": {"aten::scaled_dot_product_attention", "aten::_scaled_dot_product_attention_math"},
    }[backend]
    assert set(present) == expected_ops
    for name, calls in present.items():
        sig = ATTENTION[name]
        for args in calls:
            assert args["Input Dims"][sig.q] == [2, 4, 7, 16] and args["Concrete Inputs"][sig.causal] == "True"
            got = FORMULAS[name](OpArgs(args["Input Dims"], args["Concrete Inputs"], args["Input type"]), "causal")
            assert got is not None and got.flops == forward * (2.5 if sig.backward else 1.0), name
    a = run_pipeline(path)
    assert a.flops.total(("attention",), phase=FORWARD) == forward  # the nest counts once
    if backend == "MATH":  # math backward is four plain bmm's over all 7·9 pairs: GEMM work
        assert a.flops.total(("attention",), phase=BACKWARD) == 0
        assert a.flops.total(("gemm",), phase=BACKWARD) == 4 * 2 * (2 * 4) * 7 * 9 * 16
    else:
        assert a.flops.total(("attention",), phase=BACKWARD) == 2.5 * forward


def test_cpu_train_step_backward_is_2_5x_attention_and_2x_gemm(cpu_train: dict[str, Any]) -> None:
    a: Analysis = cpu_train["causal"]
    cfg = cpu_train["config"]
    layers = cfg.num_hidden_layers
    att_fwd, gemm_fwd = check_backward_ratios(a, attention_modules=layers, linears=7 * layers + 1)
    # Forward attention by hand: causal triangle of pairs, QKᵀ and PV, every query head (GQA).
    triangle = SEQ * (SEQ + 1) // 2
    assert att_fwd == layers * 2 * BATCH * cfg.num_attention_heads * triangle * 2 * cfg.head_dim
    names = a.flops.op_name
    counted_bwd = names[(a.flops.phase == BACKWARD) & (a.flops.kind == 1)]
    assert set(counted_bwd.tolist()) == {"aten::_scaled_dot_product_flash_attention_for_cpu_backward"}
    assert counted_bwd.size == layers
    print(f"qwen3 tiny train: attention fwd {att_fwd:.0f} bwd {2.5 * att_fwd:.0f}; linear fwd {gemm_fwd:.0f}")


def test_cpu_train_step_matches_flop_counter_under_full(cpu_train: dict[str, Any]) -> None:
    """FCM counts full attention and 2.5× backward too; totals and blocks agree exactly.

    (FCM's per-module split of backward work among sibling modules that share an input — q/k/v
    projections, gate/up — is unreliable; ours follows autograd sequence numbers, so only the
    totals, each block and lm_head are compared.)
    """
    a: Analysis = cpu_train["full"]
    fcm, root = cpu_train["fcm"], cpu_train["root"]
    calls = a.attribution.calls
    total = a.flops.per_call(len(calls))
    assert float(total.sum()) == fcm["Global"]
    incl = total.copy()
    for depth in range(int(calls.depth.max()), 0, -1):
        at = np.flatnonzero(calls.depth == depth)
        np.add.at(incl, calls.parent[at], incl[at])
    qual = calls.qual.astype(str)
    for layer in range(cpu_train["config"].num_hidden_layers):
        key = f"model.layers.{layer}"
        assert float(incl[qual == key].sum()) == fcm[f"{root}.{key}"]
    assert float(incl[qual == "lm_head"].sum()) == fcm[f"{root}.lm_head"]
    print(f"train step, full convention: ours {total.sum():.0f} == FCM {fcm['Global']}")


# ---- CUDA-only backends: the H200 train fixture (cuDNN attention) ----------------------------


def test_h200_cudnn_argument_positions_and_backward_ratios() -> None:
    a = analysis(QWEN_TRAIN)
    cfg = a.trace.metadata["config"]
    seq, heads, head_dim = a.trace.metadata["seq_len"], cfg["num_attention_heads"], cfg["head_dim"]
    q_shape = [1, heads, seq, head_dim]
    seen = check_argument_positions(
        QWEN_TRAIN,
        q_shape,
        {
            "aten::scaled_dot_product_attention",
            "aten::_scaled_dot_product_cudnn_attention",
            "aten::_cudnn_attention_forward",
            "aten::_scaled_dot_product_cudnn_attention_backward",
            "aten::_cudnn_attention_backward",
        },
    )
    assert len(seen) == 5
    layers, steps = cfg["num_hidden_layers"], a.attribution.n_steps
    att_fwd, _ = check_backward_ratios(a, attention_modules=layers * steps, linears=(7 * layers + 1) * steps)
    triangle = seq * (seq + 1) // 2
    assert att_fwd == steps * layers * 2 * heads * triangle * 2 * head_dim
    # Nested cuDNN ops count once: only the outermost op of each nest is a row.
    names = a.flops.op_name[a.flops.kind == 1].tolist()
    assert names.count("aten::scaled_dot_product_attention") == layers * steps
    assert names.count("aten::_scaled_dot_product_cudnn_attention_backward") == layers * steps
    assert len(names) == 2 * layers * steps


def test_h200_nemotron_train_mixers_backward_is_2x_analytic() -> None:
    a = analysis(NEMOTRON_8L_TRAIN)
    kinds = a.trace.metadata["config"]["layers_block_type"]
    mixers = kinds.count("linear_attention")
    linears = 2 * mixers + 2 * kinds.count("mlp") + 4 * kinds.count("full_attention") + 1
    check_backward_ratios(a, attention_modules=kinds.count("full_attention"), linears=linears)
    f = a.flops
    fwd = f.analytic & (f.phase == FORWARD)
    bwd = f.analytic & (f.phase == BACKWARD)
    assert fwd.sum() == bwd.sum() == mixers
    order_f, order_b = np.argsort(f.call[fwd]), np.argsort(f.call[bwd])
    assert np.array_equal(f.call[fwd][order_f], f.call[bwd][order_b])
    assert np.array_equal(f.flops[bwd][order_b], 2 * f.flops[fwd][order_f])
    # The mixers' own conv backward is inside the analytic term, not counted on its own.
    assert "aten::convolution_backward" not in set(f.op_name.tolist())
