"""The op formulas on the cases FlopCounterMode can't check — causal masks, GQA, s_q ≠ s_k, sliding
windows, varlen, transposed/grouped convs, grouped GEMMs — against hand computations written out
here; and every argument index table against torch's own op schemas.
"""

from __future__ import annotations

from typing import Any

import pytest

from traceparse.flops.attention import ATTENTION
from traceparse.flops.conv import CONV_BACKWARD, ConvSig
from traceparse.flops.formulas import (
    FORMULAS,
    FlopCount,
    OpArgs,
    attention_flops,
    attention_pairs,
)


def op(name: str, dims: list[Any], concrete: list[str] | None = None, convention: str = "causal") -> FlopCount | None:
    concrete = concrete if concrete is not None else [""] * len(dims)
    assert len(concrete) == len(dims)
    return FORMULAS[name](OpArgs(dims, concrete, [""] * len(dims)), convention)  # type: ignore[arg-type]


def flops(name: str, dims: list[Any], concrete: list[str] | None = None, convention: str = "causal") -> float:
    got = op(name, dims, concrete, convention)
    assert got is not None
    return got.flops


# Shapes used throughout: batch 2, 8 query heads, 2 KV heads (GQA), 5 queries against 8 keys,
# head dims 64 (q·k) and 32 (v).
B, HQ, HKV, SQ, SK, DQK, DV = 2, 8, 2, 5, 8, 64, 32
Q_BHSD, K_BHSD, V_BHSD = [B, HQ, SQ, DQK], [B, HKV, SK, DQK], [B, HKV, SK, DV]
Q_BSHD, K_BSHD, V_BSHD = [B, SQ, HQ, DQK], [B, SK, HKV, DQK], [B, SK, HKV, DV]
# Query-key pairs, row by row (query i = 0..4 against keys 0..7):
PAIRS_ALL = 5 * 8  # no mask
PAIRS_TOP_LEFT = 1 + 2 + 3 + 4 + 5  # torch is_causal: query i sees keys 0..i
PAIRS_BOTTOM_RIGHT = 4 + 5 + 6 + 7 + 8  # flash-attn causal: query i sees keys 0..i+3
PER_PAIR = 2 * B * HQ * (DQK + DV)  # QKᵀ (2·d_qk) and PV (2·d_v) per pair, every query head


# ---- attention_pairs / attention_flops ------------------------------------------------------


def test_attention_pairs_by_hand() -> None:
    assert attention_pairs(5, 8, False, "causal") == 40
    assert attention_pairs(5, 8, True, "causal") == 1 + 2 + 3 + 4 + 5
    assert attention_pairs(5, 8, True, "causal", bottom_right=True) == 4 + 5 + 6 + 7 + 8
    assert attention_pairs(8, 5, True, "causal") == 1 + 2 + 3 + 4 + 5 + 5 + 5 + 5
    assert attention_pairs(8, 5, True, "causal", bottom_right=True) == 0 + 0 + 0 + 1 + 2 + 3 + 4 + 5
    assert attention_pairs(215, 215, True, "causal") == 215 * 216 / 2
    # Sliding windows: causal, 2 keys back (+ itself); local ±1 without a causal mask.
    assert attention_pairs(6, 6, True, "causal", window_left=2) == 1 + 2 + 3 + 3 + 3 + 3
    assert attention_pairs(6, 6, False, "causal", window_left=1, window_right=1) == 2 + 3 + 3 + 3 + 3 + 2
    # `full` counts every pair, whatever the mask.
    assert attention_pairs(5, 8, True, "full") == 40
    assert attention_pairs(6, 6, True, "full", window_left=2) == 36
    assert attention_pairs(1, 300, False, "causal") == 300  # one decode token over a 300-token cache


def test_attention_flops_gqa_changes_nothing() -> None:
    per_head_pair = 2 * (DQK + DV)
    assert attention_flops(B, HQ, SQ, SK, DQK, DV, True, "causal") == B * HQ * 15 * per_head_pair
    assert attention_flops(B, HQ, SQ, SK, DQK, DV, False, "causal") == B * HQ * 40 * per_head_pair
    assert attention_flops(B, HQ, SQ, SK, DQK, DV, True, "full") == B * HQ * 40 * per_head_pair


# ---- attention ops, argument lists laid out as in their schemas ------------------------------


def test_sdpa_causal_gqa_uneven_lengths() -> None:
    # scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    dims = [Q_BHSD, K_BHSD, V_BHSD, [], [], [], [], []]
    causal = ["", "", "", "", "0.", "True", "0.125", "True"]
    plain = ["", "", "", "", "0.", "False", "0.125", "True"]
    name = "aten::scaled_dot_product_attention"
    assert flops(name, dims, causal) == PER_PAIR * PAIRS_TOP_LEFT
    assert flops(name, dims, causal, "full") == PER_PAIR * PAIRS_ALL
    assert flops(name, dims, plain) == PER_PAIR * PAIRS_ALL
    mha = [Q_BHSD, [B, HQ, SK, DQK], [B, HQ, SK, DV], [], [], [], [], []]
    assert flops(name, mha, causal) == flops(name, dims, causal)  # GQA: same FLOPs as MHA
    got = op(name, dims, causal)
    assert got is not None and got.kind == "attention"


@pytest.mark.parametrize(
    ("name", "dims", "concrete", "pairs"),
    [
        # _scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, return_debug_mask, scale)
        (
            "aten::_scaled_dot_product_flash_attention",
            [Q_BHSD, K_BHSD, V_BHSD, [], [], [], []],
            ["", "", "", "0.", "True", "False", ""],
            PAIRS_TOP_LEFT,
        ),
        # … its quantized overload: (query, key, value, q/k/v_descale, dropout_p, is_causal, …)
        (
            "aten::_scaled_dot_product_flash_attention",
            [Q_BHSD, K_BHSD, V_BHSD, [1], [1], [1], [], [], [], []],
            ["", "", "", "", "", "", "0.", "True", "False", ""],
            PAIRS_TOP_LEFT,
        ),
        # _scaled_dot_product_flash_attention_for_cpu(query, key, value, dropout_p, is_causal, attn_mask, scale)
        (
            "aten::_scaled_dot_product_flash_attention_for_cpu",
            [Q_BHSD, K_BHSD, V_BHSD, [], [], [], []],
            ["", "", "", "0.", "True", "", ""],
            PAIRS_TOP_LEFT,
        ),
        # _scaled_dot_product_efficient_attention(query, key, value, attn_bias, compute_log_sumexp,
        #   dropout_p, is_causal, scale)
        (
            "aten::_scaled_dot_product_efficient_attention",
            [Q_BHSD, K_BHSD, V_BHSD, [], [], [], [], []],
            ["", "", "", "", "False", "0.", "True", ""],
            PAIRS_TOP_LEFT,
        ),
        # _cudnn_attention_forward(query, key, value, attn_bias, cum_seq_q, cum_seq_k, max_q, max_k,
        #                          compute_log_sumexp, dropout_p, is_causal, return_debug_mask, scale)
        (
            "aten::_cudnn_attention_forward",
            [Q_BHSD, K_BHSD, V_BHSD, [], [], [], [], [], [], [], [], [], []],
            ["", "", "", "", "", "", "5", "8", "False", "0.", "True", "False", ""],
            PAIRS_TOP_LEFT,
        ),
        # _flash_attention_forward(query, key, value, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p,
        #   is_causal, return_debug_mask, scale, window_size_left, window_size_right, …) — [b, s, h, d],
        #   flash-attn's kernel: causal aligned bottom-right.
        (
            "aten::_flash_attention_forward",
            [Q_BSHD, K_BSHD, V_BSHD] + [[]] * 14,
            ["", "", "", "", "", "5", "8", "0.", "True", "False", "", "-1", "-1", "", "", "", ""],
            PAIRS_BOTTOM_RIGHT,
        ),
        # … with a sliding window of 2 keys back: query i sees keys i+1 .. i+3.
        (
            "aten::_flash_attention_forward",
            [Q_BSHD, K_BSHD, V_BSHD] + [[]] * 14,
            ["", "", "", "", "", "5", "8", "0.", "True", "False", "", "2", "0", "", "", "", ""],
            3 * 5,
        ),
        # _efficient_attention_forward(query, key, value, bias, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
        #   max_seqlen_k, dropout_p, custom_mask_type, compute_log_sumexp, scale, seqlen_k, window_size)
        (
            "aten::_efficient_attention_forward",
            [Q_BSHD, K_BSHD, V_BSHD] + [[]] * 11,
            ["", "", "", "", "", "", "5", "8", "0.", "0", "False", "", "", ""],
            PAIRS_ALL,
        ),
        (
            "aten::_efficient_attention_forward",
            [Q_BSHD, K_BSHD, V_BSHD] + [[]] * 11,
            ["", "", "", "", "", "", "5", "8", "0.", "1", "False", "", "", ""],
            PAIRS_TOP_LEFT,
        ),
        (
            "aten::_efficient_attention_forward",
            [Q_BSHD, K_BSHD, V_BSHD] + [[]] * 11,
            ["", "", "", "", "", "", "5", "8", "0.", "2", "False", "", "", ""],
            PAIRS_BOTTOM_RIGHT,
        ),
        # … bottom-right local window of 3 keys (itself and 2 back): 3 per query.
        (
            "aten::_efficient_attention_forward",
            [Q_BSHD, K_BSHD, V_BSHD] + [[]] * 11,
            ["", "", "", "", "", "", "5", "8", "0.", "2", "False", "", "", "3"],
            3 * 5,
        ),
        # flash-attn 2 (package): _flash_attn_forward(q, k, v, dropout_p, softmax_scale, causal,
        #   window_size_left, window_size_right, softcap, alibi_slopes, return_softmax)
        (
            "flashattn::_flash_attn_forward",
            [Q_BSHD, K_BSHD, V_BSHD] + [[]] * 8,
            ["", "", "", "0.", "0.125", "True", "-1", "0", "0.", "", "False"],
            PAIRS_BOTTOM_RIGHT,
        ),
        (
            "flash_attn::_flash_attn_forward",
            [Q_BSHD, K_BSHD, V_BSHD] + [[]] * 8,
            ["", "", "", "0.", "0.125", "False", "1", "1", "0.", "", "False"],
            # local ±1 around the bottom-right diagonal (offset 3): query i sees keys i+2 .. i+4
            3 + 3 + 3 + 3 + 2,
        ),
    ],
)
def test_forward_attention_ops(name: str, dims: list[Any], concrete: list[str], pairs: int) -> None:
    assert flops(name, dims, concrete) == PER_PAIR * pairs
    assert flops(name, dims, concrete, "full") == PER_PAIR * PAIRS_ALL


@pytest.mark.parametrize(
    ("name", "dims", "concrete", "pairs"),
    [
        # _scaled_dot_product_flash_attention_for_cpu_backward(grad_out, query, key, value, out,
        #   logsumexp, dropout_p, is_causal, attn_mask, scale)
        (
            "aten::_scaled_dot_product_flash_attention_for_cpu_backward",
            [Q_BHSD, Q_BHSD, K_BHSD, V_BHSD, Q_BHSD, [B, HQ, SQ], [], [], [], []],
            ["", "", "", "", "", "", "0.", "True", "", ""],
            PAIRS_TOP_LEFT,
        ),
        # _scaled_dot_product_flash_attention_backward(grad_out, query, key, value, out, logsumexp,
        #   cum_seq_q, cum_seq_k, max_q, max_k, dropout_p, is_causal, philox_seed, philox_offset, scale)
        (
            "aten::_scaled_dot_product_flash_attention_backward",
            [Q_BHSD, Q_BHSD, K_BHSD, V_BHSD, Q_BHSD, [B, HQ, SQ]] + [[]] * 9,
            ["", "", "", "", "", "", "", "", "5", "8", "0.", "True", "", "", ""],
            PAIRS_TOP_LEFT,
        ),
        # _scaled_dot_product_efficient_attention_backward(grad_out_, query, key, value, attn_bias, out,
        #   logsumexp, philox_seed, philox_offset, dropout_p, grad_input_mask, is_causal, scale)
        (
            "aten::_scaled_dot_product_efficient_attention_backward",
            [Q_BHSD, Q_BHSD, K_BHSD, V_BHSD, [], Q_BHSD, [B, HQ, SQ]] + [[]] * 6,
            ["", "", "", "", "", "", "", "", "", "0.", "[True, True, True, False]", "True", ""],
            PAIRS_TOP_LEFT,
        ),
        # _cudnn_attention_backward(grad_out, query, key, value, out, logsumexp, philox_seed,
        #   philox_offset, attn_bias, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p, is_causal, scale)
        (
            "aten::_cudnn_attention_backward",
            [Q_BHSD, Q_BHSD, K_BHSD, V_BHSD, Q_BHSD, [B, HQ, SQ, 1]] + [[]] * 10,
            ["", "", "", "", "", "", "", "", "", "", "", "5", "8", "0.", "True", ""],
            PAIRS_TOP_LEFT,
        ),
        # _efficient_attention_backward(grad_out_, query, key, value, bias, out, cu_seqlens_q,
        #   cu_seqlens_k, max_seqlen_q, max_seqlen_k, logsumexp, dropout_p, philox_seed, philox_offset,
        #   custom_mask_type, bias_requires_grad, scale, num_splits_key, window_size, shared_storage_dqdkdv)
        (
            "aten::_efficient_attention_backward",
            [Q_BSHD, Q_BSHD, K_BSHD, V_BSHD, [], Q_BSHD] + [[]] * 14,
            ["", "", "", "", "", "", "", "", "5", "8", "", "0.", "", "", "2", "False", "", "", "", "False"],
            PAIRS_BOTTOM_RIGHT,
        ),
        # flash-attn 2 (package): _flash_attn_backward(dout, q, k, v, out, softmax_lse, dq, dk, dv,
        #   dropout_p, softmax_scale, causal, window_size_left, window_size_right, softcap, alibi_slopes,
        #   deterministic, rng_state)
        (
            "flashattn::_flash_attn_backward",
            [Q_BSHD, Q_BSHD, K_BSHD, V_BSHD, Q_BSHD, [B, HQ, SQ], Q_BSHD, K_BSHD, V_BSHD] + [[]] * 9,
            ["", "", "", "", "", "", "", "", "", "0.", "0.125", "True", "-1", "0", "0.", "", "False", ""],
            PAIRS_BOTTOM_RIGHT,
        ),
    ],
)
def test_backward_attention_ops_are_2_5x(name: str, dims: list[Any], concrete: list[str], pairs: int) -> None:
    assert flops(name, dims, concrete) == 2.5 * PER_PAIR * pairs
    assert flops(name, dims, concrete, "full") == 2.5 * PER_PAIR * PAIRS_ALL


def test_varlen_flash_attn_takes_the_mean_sequence() -> None:
    # _flash_attn_varlen_forward(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
    #   dropout_p, softmax_scale, causal, window_size_left, window_size_right, …): 2 packed sequences
    #   of 5 queries and 8 keys each.
    dims = [[10, HQ, DQK], [16, HKV, DQK], [16, HKV, DV], [3], [3]] + [[]] * 13
    concrete = ["", "", "", "", "", "5", "8", "0.", "0.125", "True", "-1", "0"] + [""] * 6
    assert flops("flashattn::_flash_attn_varlen_forward", dims, concrete) == PER_PAIR * PAIRS_BOTTOM_RIGHT
    # torch's own varlen flash: query [total, h, d] with cum_seq_q at index 3
    dims_t = [[10, HQ, DQK], [16, HKV, DQK], [16, HKV, DV], [3], [3]] + [[]] * 12
    concrete_t = ["", "", "", "", "", "5", "8", "0.", "True", "False"] + [""] * 7
    assert flops("aten::_flash_attention_forward", dims_t, concrete_t) == PER_PAIR * PAIRS_BOTTOM_RIGHT


def test_attention_without_shapes_is_unknown() -> None:
    assert op("aten::scaled_dot_product_attention", [[], [], [], [], [], [], [], []]) is None
    assert op("aten::_flash_attention_forward", [[10, 8, 64], [10, 8, 64], [10, 8, 64]] + [[]] * 14) is None


# ---- convolutions ---------------------------------------------------------------------------


def conv_args(
    x: list[int], w: list[int], bias: bool, stride: str, pad: str, dil: str, transposed: bool, out_pad: str, groups: int
) -> tuple[list[Any], list[str]]:
    # convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)
    dims = [x, w, [w[1] * groups if transposed else w[0]] if bias else [], [], [], [], [], [], []]
    concrete = ["", "", "", stride, pad, dil, str(transposed), out_pad, str(groups)]
    return dims, concrete


def test_conv_transposed_grouped_with_bias_by_hand() -> None:
    # ConvTranspose2d(8 → 6, kernel 3, stride 2, padding 1, output_padding 1, groups 2) on [2, 8, 5, 6]:
    # weight [C_in, C_out/groups, 3, 3] = [8, 3, 3, 3]; out = (in − 1)·2 − 2 + 2 + 1 + 1 → [10, 12].
    dims, concrete = conv_args([2, 8, 5, 6], [8, 3, 3, 3], True, "[2, 2]", "[1, 1]", "[1, 1]", True, "[1, 1]", 2)
    mult_adds = 2 * 8 * (5 * 6) * 3 * (3 * 3)  # each input element scatters into C_out/g · k outputs
    bias = 2 * 6 * (10 * 12)
    assert flops("aten::convolution", dims, concrete) == 2 * mult_adds + bias


def test_conv_depthwise_dilated_strided_by_hand() -> None:
    # Depthwise Conv2d(8, 8, 3, stride 2, padding 1, dilation 2, groups 8) on [2, 8, 9, 10]:
    # out = (in + 2 − 2·2 − 1)//2 + 1 → [4, 4]; each output: 1 input channel × 9 taps.
    dims, concrete = conv_args([2, 8, 9, 10], [8, 1, 3, 3], False, "[2, 2]", "[1, 1]", "[2, 2]", False, "[0, 0]", 8)
    assert flops("aten::convolution", dims, concrete) == 2 * (2 * 8 * (4 * 4) * 1 * 9)
    # A groups value the shapes contradict (8 input channels, weight for 2 per group, groups 2) is unknown.
    bad, bad_concrete = conv_args([2, 8, 9, 10], [8, 2, 3, 3], False, "[1, 1]", "[0, 0]", "[1, 1]", False, "[0, 0]", 2)
    assert op("aten::convolution", bad, bad_concrete) is None


def test_conv3d_and_the_mamba_conv1d_by_hand() -> None:
    # Conv3d(2 → 4, kernel (2, 3, 3), stride (1, 2, 1)) on [1, 2, 4, 7, 6]: out [3, 3, 4].
    dims, concrete = conv_args(
        [1, 2, 4, 7, 6], [4, 2, 2, 3, 3], True, "[1, 2, 1]", "[0, 0, 0]", "[1, 1, 1]", False, "[0, 0, 0]", 1
    )
    assert flops("aten::convolution", dims, concrete) == 2 * (1 * 4 * 36 * 2 * 18) + 4 * 36
    # The NemotronH mixer's depthwise causal conv1d as the H200 trace records it (padding 3 both sides).
    dims = [[1, 12288, 215], [12288, 1, 4], [12288], [], [], [], [], [], []]
    concrete = ["", "", "", "[1]", "[3]", "[1]", "False", "[0]", "12288"]
    assert flops("aten::convolution", dims, concrete) == 2 * 12288 * 218 * 4 + 12288 * 218


def test_conv_backward_by_mask() -> None:
    # convolution_backward(grad_output, input, weight, bias_sizes, stride, padding, dilation,
    #                      transposed, output_padding, groups, output_mask), Conv1d(6 → 12, k3, pad 1)
    dims = [[2, 12, 11], [2, 6, 11], [12, 6, 3]] + [[]] * 8
    base = ["", "", "", "[12]", "[1]", "[1]", "[1]", "False", "[0]", "1"]
    one_conv = 2 * (2 * 12 * 11 * 6 * 3)
    assert flops("aten::convolution_backward", dims, [*base, "[True, True, True]"]) == 2 * one_conv + 2 * 12 * 11
    assert flops("aten::convolution_backward", dims, [*base, "[False, True, False]"]) == one_conv
    assert flops("aten::convolution_backward", dims, [*base, "[True, False, False]"]) == one_conv


# ---- GEMMs ------------------------------------------------------------------------------------


def test_gemms_by_hand() -> None:
    assert flops("aten::mm", [[7, 5], [5, 3]]) == 2 * 7 * 5 * 3
    assert flops("aten::addmm", [[3], [7, 5], [5, 3], [], []]) == 2 * 7 * 5 * 3 + 7 * 3  # + bias add
    assert flops("aten::bmm", [[4, 7, 5], [4, 5, 3]]) == 2 * 4 * 7 * 5 * 3
    assert flops("aten::baddbmm", [[4, 7, 3], [4, 7, 5], [4, 5, 3], [], []]) == 2 * 4 * 7 * 5 * 3 + 4 * 7 * 3
    assert flops("aten::_scaled_mm", [[32, 64], [64, 48]] + [[]] * 6) == 2 * 32 * 64 * 48  # fp8
    got = op("aten::mm", [[7, 5], [5, 3]])
    assert got is not None and got.kind == "gemm"


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([48, 16], [3, 16, 24], 2 * 48 * 16 * 24),  # 2d·3d: tokens split over 3 experts (offs on M)
        ([3, 16, 16], [3, 16, 24], 2 * 3 * 16 * 16 * 24),  # 3d·3d: batched, no offs
        ([8, 48], [48, 24], 2 * 8 * 48 * 24),  # 2d·2d: offs split K (expert weight grads)
        ([3, 8, 16], [16, 48], 2 * 8 * 16 * 48),  # 3d·2d: offs split N
    ],
)
def test_grouped_mm_layouts(a: list[int], b: list[int], expected: int) -> None:
    assert flops("aten::_grouped_mm", [a, b, [3], [], []]) == expected


# ---- argument tables against torch's schemas --------------------------------------------------


def _schema_args(name: str, overload: str = "default") -> list[str]:
    torch = pytest.importorskip("torch")
    packet = getattr(torch.ops.aten, name.removeprefix("aten::"))
    return [a.name for a in getattr(packet, overload)._schema.arguments]


@pytest.mark.parametrize("name", sorted(n for n in ATTENTION if n.startswith("aten::")))
def test_attention_indices_match_torch_schema(name: str) -> None:
    sig = ATTENTION[name]
    args = _schema_args(name)
    assert args[sig.q : sig.q + 3] == ["query", "key", "value"]
    assert args[sig.causal] == ("custom_mask_type" if sig.mask_type else "is_causal")
    if sig.window != (-1, -1):
        assert [args[i] for i in sig.window] == ["window_size_left", "window_size_right"]
    if sig.local_window >= 0:
        assert args[sig.local_window] == "window_size"
    if sig.cu_seqlens >= 0:
        assert args[sig.cu_seqlens] in ("cum_seq_q", "cu_seqlens_q")
    if sig.backward:
        assert args[0] in ("grad_out", "grad_out_")
    if sig.quantized_args > 0:
        quantized = _schema_args(name, "quantized")
        assert len(quantized) == sig.quantized_args and quantized[sig.quantized_causal] == "is_causal"
        assert len(args) != sig.quantized_args


FLASH_ATTN_SIGNATURES = {
    # flash-attention's flash_attn/flash_attn_interface.py (v2.7+, op namespace "flashattn",
    # "flash_attn" in 2.6): the custom ops' parameters, in order.
    "_flash_attn_forward": "q k v dropout_p softmax_scale causal window_size_left window_size_right softcap "
    "alibi_slopes return_softmax",
    "_flash_attn_varlen_forward": "q k v cu_seqlens_q cu_seqlens_k max_seqlen_q max_seqlen_k dropout_p "
    "softmax_scale causal window_size_left window_size_right softcap alibi_slopes return_softmax "
    "block_table leftpad_k seqused_k",
    "_flash_attn_backward": "dout q k v out softmax_lse dq dk dv dropout_p softmax_scale causal "
    "window_size_left window_size_right softcap alibi_slopes deterministic rng_state",
    "_flash_attn_varlen_backward": "dout q k v out softmax_lse dq dk dv cu_seqlens_q cu_seqlens_k "
    "max_seqlen_q max_seqlen_k dropout_p softmax_scale causal window_size_left window_size_right softcap "
    "alibi_slopes deterministic rng_state",
}


@pytest.mark.parametrize("name", sorted(n for n in ATTENTION if not n.startswith("aten::")))
def test_flash_attn_indices_match_its_signatures(name: str) -> None:
    sig = ATTENTION[name]
    args = FLASH_ATTN_SIGNATURES[name.split("::")[1]].split()
    assert args[sig.q : sig.q + 3] == ["q", "k", "v"]
    assert args[sig.causal] == "causal"
    assert [args[i] for i in sig.window] == ["window_size_left", "window_size_right"]
    assert sig.bottom_right and sig.layout == "bshd"
    if sig.cu_seqlens >= 0:
        assert args[sig.cu_seqlens] == "cu_seqlens_q"


def test_conv_indices_match_torch_schema() -> None:
    fwd = _schema_args("convolution")
    sig = ConvSig()
    assert [fwd[i] for i in (sig.x, sig.weight, sig.bias, sig.stride, sig.pad, sig.dil)] == [
        "input",
        "weight",
        "bias",
        "stride",
        "padding",
        "dilation",
    ]
    assert [fwd[i] for i in (sig.transposed, sig.out_pad, sig.groups)] == ["transposed", "output_padding", "groups"]
    assert _schema_args("_convolution")[:9] == fwd
    bwd = _schema_args("convolution_backward")
    b = CONV_BACKWARD
    assert [bwd[i] for i in (b.x, b.weight, b.stride, b.pad, b.dil, b.transposed, b.out_pad, b.groups)] == [
        "input",
        "weight",
        "stride",
        "padding",
        "dilation",
        "transposed",
        "output_padding",
        "groups",
    ]
    assert bwd[0] == "grad_output" and bwd[3] == "bias_sizes" and bwd[10] == "output_mask"


def test_gemm_operand_positions_match_torch_schema() -> None:
    assert _schema_args("mm")[:2] == ["self", "mat2"]
    assert _schema_args("addmm")[:3] == ["self", "mat1", "mat2"]
    assert _schema_args("_addmm_activation")[:3] == ["self", "mat1", "mat2"]
    assert _schema_args("baddbmm")[:3] == ["self", "batch1", "batch2"]
    assert _schema_args("addbmm")[:3] == ["self", "batch1", "batch2"]
    assert _schema_args("_scaled_mm")[:2] == ["self", "mat2"]
    assert _schema_args("_grouped_mm")[:2] == ["self", "mat2"]
    assert _schema_args("_scaled_grouped_mm")[:2] == ["self", "mat2"]


# ---- analytic Mamba2 ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        # NemotronH
        {
            "mamba_num_heads": 8,
            "mamba_head_dim": 16,
            "ssm_state_size": 16,
            "n_groups": 2,
            "chunk_size": 16,
            "conv_kernel": 4,
        },
        # Mamba2 (transformers Mamba2Config)
        {"num_heads": 8, "head_dim": 16, "state_size": 16, "n_groups": 2, "chunk_size": 16, "conv_kernel": 4},
        # Zamba2: head count from expand·hidden / head dim
        {
            "hidden_size": 64,
            "mamba_expand": 2,
            "mamba_headdim": 16,
            "mamba_d_state": 16,
            "mamba_ngroups": 2,
            "chunk_size": 16,
            "mamba_d_conv": 4,
        },
    ],
)
def test_mamba2_analytic_flops_by_hand(config: dict[str, int]) -> None:
    from traceparse.flops.analytic import Mamba2Shape, mamba2_forward_flops

    shape = Mamba2Shape.from_config(config)
    assert shape == Mamba2Shape(heads=8, head_dim=16, state=16, groups=2, chunk=16, conv_kernel=4)
    conv_dim = 8 * 16 + 2 * 2 * 16  # x, B and C go through the depthwise conv
    # 40 tokens → 3 chunks of 16 (the last one padded)
    scan = 2 * 3 * 16 * 16 * 2 * 16 + 2 * 3 * 16 * 16 * 8 * 16 + 2 * 3 * 16 * 8 * 16 * 16
    scan += 2 * 3 * 8 * 16 * 16 + 2 * 3 * 16 * 8 * 16 * 16
    assert mamba2_forward_flops(shape, 2, 40) == 2 * (scan + 2 * 40 * conv_dim * 4)
    # one decode token: the recurrent update (~6·h·p·n) and one conv step
    assert mamba2_forward_flops(shape, 3, 1) == 3 * (6 * 8 * 16 * 16 + 2 * conv_dim * 4)
    assert Mamba2Shape.from_config({"hidden_size": 64}) is None
