"""FLOPs of the full NVIDIA-Nemotron-Nano-9B-v2 forward on an H200 (fixture, seq 215, 3 steps),
checked against numbers derived here from the model config in the trace's metadata.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tests.conftest import NEMOTRON_9B, analysis
from traceparse.api import Analysis

ATTENTION_BLOCKS = [14, 21, 30, 39]


@pytest.fixture(scope="module")
def nemo() -> Analysis:
    return analysis(NEMOTRON_9B)


def config(a: Analysis) -> dict[str, Any]:
    return a.trace.metadata["config"]


def linear_shapes(cfg: dict[str, Any]) -> list[tuple[int, int]]:
    """(in, out) features of every Linear, from the config alone."""
    hidden, heads, kv, head_dim = (
        cfg["hidden_size"],
        cfg["num_attention_heads"],
        cfg["num_key_value_heads"],
        cfg["head_dim"],
    )
    inner = cfg["mamba_num_heads"] * cfg["mamba_head_dim"]
    # Mamba2 in_proj emits z and x (inner each), B and C (groups·state each) and dt (one per head).
    in_proj = 2 * inner + 2 * cfg["n_groups"] * cfg["ssm_state_size"] + cfg["mamba_num_heads"]
    per_kind = {
        "linear_attention": [(hidden, in_proj), (inner, hidden)],
        "full_attention": [
            (hidden, heads * head_dim),
            (hidden, kv * head_dim),
            (hidden, kv * head_dim),
            (heads * head_dim, hidden),
        ],
        "mlp": [(hidden, cfg["intermediate_size"]), (cfg["intermediate_size"], hidden)],
    }
    shapes = [s for kind in cfg["layers_block_type"] for s in per_kind[kind]]
    return [*shapes, (hidden, cfg["vocab_size"])]  # lm_head


def test_attention_blocks_have_flops_and_tflops(nemo: Analysis) -> None:
    cfg = config(nemo)
    assert [i for i, k in enumerate(cfg["layers_block_type"]) if k == "full_attention"] == ATTENTION_BLOCKS
    rows = {b.index: b for b in nemo.report.blocks}
    seq = nemo.trace.metadata["seq_len"]
    heads, head_dim = cfg["num_attention_heads"], cfg["head_dim"]
    hidden, kv = cfg["hidden_size"], cfg["num_key_value_heads"]
    # causal SDPA (cuDNN): the 215·216/2 unmasked pairs, QKᵀ and PV, all 40 query heads (GQA 40/8)
    attention = 2 * heads * (seq * (seq + 1) // 2) * (head_dim + head_dim)
    projections = 2 * seq * hidden * (2 * heads * head_dim + 2 * kv * head_dim)
    for b in ATTENTION_BLOCKS:
        row = rows[b]
        assert row.kind == "attention"
        assert row.flops == attention + projections
        assert row.tflops is not None and row.tflops > 0
        assert row.mfu is not None and row.mfu > 0
        print(f"block {b}: {row.flops / 1e9:.2f} GFLOP, {row.tflops:.1f} TFLOP/s, MFU {row.mfu:.1%}")
    per_step = nemo.flops.total(("attention",), step=0)
    assert per_step == len(ATTENTION_BLOCKS) * attention


def test_gemm_flops_are_2_x_tokens_x_linear_params(nemo: Analysis) -> None:
    meta = nemo.trace.metadata
    cfg = config(nemo)
    tokens = meta["seq_len"] * meta["batch_size"]
    assert not (cfg["use_bias"] or cfg["mlp_bias"] or cfg["attention_bias"] or cfg["mamba_proj_bias"])
    by_config = sum(i * o for i, o in linear_shapes(cfg))
    by_table = sum(r["params"] for r in meta["modules"] if r["class"] == "Linear")
    assert len(linear_shapes(cfg)) == sum(1 for r in meta["modules"] if r["class"] == "Linear")
    assert by_config == by_table == meta["params_linear"]
    for step in range(nemo.attribution.n_steps):
        assert nemo.flops.total(("gemm",), step=step) == 2 * tokens * meta["params_linear"]
    print(f"GEMM FLOPs per step: {nemo.flops.total(('gemm',), step=0):.6e} = 2 x {tokens} x {meta['params_linear']}")


def test_ssd_scan_flops_are_analytic_and_match_the_config(nemo: Analysis) -> None:
    cfg = config(nemo)
    seq = nemo.trace.metadata["seq_len"]
    h, p, n, g = cfg["mamba_num_heads"], cfg["mamba_head_dim"], cfg["ssm_state_size"], cfg["n_groups"]
    q, k = cfg["chunk_size"], cfg["conv_kernel"]
    c = math.ceil(seq / q)  # 215 tokens → 2 chunks of 128
    scan = (
        2 * c * q * q * g * n  # C·Bᵀ within each chunk, per group
        + 2 * c * q * q * h * p  # (C·Bᵀ ∘ decay)·X, per head
        + 2 * c * q * h * p * n  # chunk states Bᵀ·X
        + 2 * c * h * p * n  # state passing between chunks
        + 2 * c * q * h * p * n  # C·states, off-diagonal
    )
    conv = 2 * seq * (h * p + 2 * g * n) * k  # depthwise causal conv1d over x, B, C
    per_mixer = scan + conv
    f = nemo.flops
    mixers = cfg["layers_block_type"].count("linear_attention")
    for step in range(nemo.attribution.n_steps):
        rows = np.flatnonzero(f.analytic & (f.step == step))
        assert rows.size == mixers == 27
        assert (f.flops[rows] == per_mixer).all()
        assert all(str(name).startswith("analytic: NemotronHMamba2Mixer") for name in f.op_name[rows])
        assert f.total(("ssm",), step=step) == mixers * per_mixer
    assert nemo.report.general.flops_analytic == mixers * per_mixer
    assert any("analytic" in note for note in nemo.report.notes)
    print(f"SSD scan + conv1d per mixer: {per_mixer:.6e} FLOPs (analytic), 27 mixers")


def test_total_flops_per_step_add_up(nemo: Analysis) -> None:
    g = nemo.report.general
    f = nemo.flops
    kinds = ("gemm", "attention", "conv", "ssm")
    assert g.flops == pytest.approx(sum(f.total((k,), step=0) for k in kinds))
    assert f.total(("conv",)) == 0  # the mixers' conv1d is inside the analytic term
    assert g.dtype == "bf16" and g.peak_tflops == 989.4
    assert g.flop_coverage is not None and g.flop_coverage > 0.95
