"""Bytes per op against hand counts, the bandwidth table, roofline verdicts, and the Operators /
block roofline figures on the 9B fixture (issue 17)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import NEMOTRON_9B, analysis
from traceparse.api import run_pipeline
from traceparse.flops.args import OpArgs
from traceparse.flops.formulas import FORMULAS, shapes_needed
from traceparse.flops.peaks import peak_tbps, peak_tflops
from traceparse.flops.roofline import roofline
from traceparse.flops.traffic_tensor import BYTES
from traceparse.render.charts import chart_data, render_chart

BF16, F32, I64, FP8 = "c10::BFloat16", "float", "long int", "c10::Float8_e4m3fn"


def op(name: str, dims: list[Any], types: list[str], concrete: list[str] | None = None) -> float | None:
    return BYTES[name](OpArgs(dims, concrete or [""] * len(dims), types))


# ---- bytes per op family, each against a count done by hand -----------------------------------


def test_gemms() -> None:
    # A [215, 4480], B [4480, 22656], C [215, 22656], bf16
    assert op("aten::mm", [[215, 4480], [4480, 22656]], [BF16, BF16]) == 2 * (215 * 4480 + 4480 * 22656 + 215 * 22656)
    # addmm: the bias [n] read once, not broadcast to [m, n]
    assert op("aten::addmm", [[64], [8, 32], [32, 64]], [BF16] * 3) == 2 * (64 + 8 * 32 + 32 * 64 + 8 * 64)
    assert op("aten::bmm", [[4, 8, 16], [4, 16, 2]], [F32, F32]) == 4 * (4 * 8 * 16 + 4 * 16 * 2 + 4 * 8 * 2)
    # FP8: 1-byte A and B, two fp32 scalar scales, a bf16 C (out_dtype 15)
    got = op(
        "aten::_scaled_mm",
        [[128, 256], [256, 512], [], [], [], [], [], []],
        [FP8, FP8, F32, F32, "", "", "ScalarType", "Scalar"],
        ["", "", "", "", "", "", "15", "False"],
    )
    assert got == 128 * 256 + 256 * 512 + 4 + 4 + 2 * 128 * 512
    assert op("aten::_int_mm", [[32, 64], [64, 16]], ["signed char"] * 2) == 32 * 64 + 64 * 16 + 4 * 32 * 16
    assert op("aten::mv", [[10, 20], [20]], [F32, F32]) == 4 * (200 + 20 + 10)


def test_grouped_gemm() -> None:
    # MoE: A [M_total=96, k=32] · B [g=4, 32, 48], offs [4] int32: C [96, 48]
    got = op("aten::_grouped_mm", [[96, 32], [4, 32, 48], [4], [], []], [BF16, BF16, "int", "", "ScalarType"])
    assert got == 2 * (96 * 32 + 4 * 32 * 48) + 4 * 4 + 2 * 96 * 48


def test_attention_gqa_and_backward() -> None:
    q, kv = [1, 40, 215, 128], [1, 8, 215, 128]
    n_q, n_kv = 40 * 215 * 128, 8 * 215 * 128
    sdpa = op("aten::scaled_dot_product_attention", [q, kv, kv, [], [], []], [BF16] * 3 + ["", "Scalar", "Scalar"])
    assert sdpa == 2 * (n_q + 2 * n_kv + n_q)  # Q, K, V read, O (Q's shape, V's head dim) written
    dims = [[1, 40, 215, 128], q, kv, kv, q, [1, 40, 215]] + [[]] * 8
    types = [BF16] * 5 + [F32] + ["Scalar"] * 8
    bwd = op("aten::_scaled_dot_product_flash_attention_backward", dims, types)
    assert bwd == 2 * 2 * (n_q + 2 * n_kv + n_q)  # Q, K, V, O, dO read; dQ, dK, dV written


def test_depthwise_conv1d() -> None:
    # Mamba2's conv1d: x [1, 12288, 215], w [12288, 1, 4], padding 3 → 218 outputs per channel
    dims = [[1, 12288, 215], [12288, 1, 4], [12288], [], [], [], [], [], []]
    types = [BF16, BF16, BF16] + ["ScalarList"] * 3 + ["Scalar", "ScalarList", "Scalar"]
    concrete = ["", "", "", "[1]", "[3]", "[1]", "False", "[0]", "12288"]
    got = op("aten::convolution", dims, types, concrete)
    assert got == 2 * (12288 * 215 + 12288 * 4 + 12288 + 12288 * 218)


def test_elementwise_broadcast_counts_each_input_once() -> None:
    # The Mamba2 reference scan's largest multiply: two 4.2M-element inputs, a 537M-element output
    a, b = [1, 2, 128, 1, 128, 128], [1, 2, 1, 128, 128, 128]
    got = op("aten::mul", [a, b], [F32, F32])
    assert got == 4 * (2 * 4_194_304 + 536_870_912) == 2_181_038_080
    assert op("aten::mul", [[1000], []], [BF16, "Scalar"], ["", "0.5"]) == 2 * 1000 * 2
    assert op("aten::add_", [[10, 20], [20]], [BF16, BF16]) == 2 * (200 + 20 + 200)  # in place: self written
    assert op("aten::eq", [[50], []], [I64, "Scalar"]) == 50 * 8 + 50  # a bool output
    assert op("aten::mul", [[1, 215, 4480], [1, 215, 1]], [F32, F32]) == 4 * (2 * 215 * 4480 + 215)


def test_reductions_and_softmax() -> None:
    assert op("aten::sum", [[6, 7, 8], [], [], []], [F32, "ScalarList", "Scalar", ""], ["", "[-1]", "False", ""]) == (
        4 * (6 * 7 * 8 + 6 * 7)
    )
    assert op("aten::mean", [[6, 7, 8], [], [], []], [F32, "ScalarList", "Scalar", ""], ["", "[0, 2]", "1", ""]) == (
        4 * (6 * 7 * 8 + 7)
    )
    assert op("aten::sum", [[6, 7], []], [F32, ""]) == 4 * (42 + 1)  # no dim: a full reduction
    assert op("aten::_softmax", [[4, 9], [], []], [BF16, "Scalar", "Scalar"], ["", "-1", "True"]) == 2 * 36 + 4 * 36
    assert op("aten::cumsum", [[1, 215], [], []], ["bool", "Scalar", ""], ["", "-1", ""]) == 2 * 215


def test_copies_gathers_norms() -> None:
    assert op("aten::copy_", [[64, 32], [64, 32], []], [BF16, F32, "Scalar"]) == 64 * 32 * (4 + 2)  # a cast
    assert op("aten::copy_", [[64, 32], [32], []], [F32, F32, "Scalar"]) == 4 * (32 + 64 * 32)  # broadcast src
    assert op("aten::fill_", [[1, 256, 128, 80], []], [F32, "Scalar"]) == 4 * 256 * 128 * 80
    emb = op("aten::embedding", [[131072, 4480], [1, 215], [], [], []], [BF16, I64, "Scalar", "Scalar", "Scalar"])
    assert emb == 215 * 8 + 2 * 215 * 4480 * 2
    ln = op("aten::layer_norm", [[215, 4480], [], [4480], [4480], [], []], [BF16, "ScalarList", BF16, BF16, "", ""])
    assert ln == 2 * (2 * 215 * 4480 + 2 * 4480)


def test_unknown_is_none_never_zero() -> None:
    assert "aten::cat" not in BYTES  # its tensors come as a list without dtypes
    assert op("aten::add", [[[1, 1], [1, 215]], []], ["TensorList", "Scalar"]) is None
    assert op("aten::mul", [[4, 4], [4, 4]], ["c10::Mystery", F32]) is None
    assert op("aten::mm", [[4, 4]], [BF16]) is None
    # A byte formula for every op with a FLOP formula (a list argument without dtypes excepted),
    # and the loader keeps the shapes of the byte-only ops.
    assert set(FORMULAS) - set(BYTES) == {"aten::_foreach_mul_", "aten::_scaled_grouped_mm_v2"}
    assert shapes_needed("aten::copy_") and shapes_needed("aten::embedding")


# ---- device table and roofline verdicts ----------------------------------------------------


@pytest.mark.parametrize(
    ("device", "tbps"),
    [
        ("NVIDIA H200", 4.8),
        ("NVIDIA H200 NVL", 4.8),
        ("NVIDIA H100 80GB HBM3", 3.35),
        ("NVIDIA H100 PCIe", 2.0),
        ("NVIDIA H100 NVL", 3.9),
        ("NVIDIA A100-SXM4-80GB", 2.039),
        ("NVIDIA A100 80GB PCIe", 1.935),
        ("NVIDIA A100-SXM4-40GB", 1.555),
        ("NVIDIA L40S", 0.864),
        ("NVIDIA B200", 8.0),
        ("NVIDIA GB200", 8.0),
        ("AMD Instinct MI300X", 5.3),
        ("AMD Instinct MI325X", 6.0),
        ("Tesla V100-SXM2-32GB", 0.9),
    ],
)
def test_bandwidth_by_device_name(device: str, tbps: float) -> None:
    assert peak_tbps(device) == tbps


def test_bandwidth_unknowns_and_new_peaks() -> None:
    assert peak_tbps("NVIDIA L40") is None and peak_tbps(None) is None and peak_tbps("x86_64") is None
    assert peak_tflops("AMD Instinct MI325X", "bf16") == peak_tflops("AMD Instinct MI300X", "bf16") == 1307.4
    assert peak_tflops("NVIDIA B200", "fp4") == 9000.0


def test_roofline_verdicts() -> None:
    # 1 GB in 1 ms = 1 TB/s; 1 GFLOP over it: 1 FLOP/B, under H200's ridge (989.4 / 4.8 = 206)
    r = roofline(1e9, 1e9, 1e-3, 989.4, 4.8)
    assert (r.tflops, r.tbps, r.intensity, r.bound) == (pytest.approx(1.0), pytest.approx(1.0), 1.0, "memory")
    assert r.roofline_pct == pytest.approx(100 / 4.8)
    r = roofline(500e9, 1e9, 1e-3, 989.4, 4.8)  # 500 FLOP/B, 500 TFLOP/s: compute-bound
    assert r.bound == "compute" and r.roofline_pct == pytest.approx(100 * 500 / 989.4)
    r = roofline(0.0, 2e9, 1e-3, None, 4.8)  # a copy: no FLOPs, memory-bound whatever the compute roof
    assert r.bound == "memory" and r.roofline_pct == pytest.approx(100 * 2 / 4.8)
    r = roofline(None, 1e9, 1e-3, 989.4, 4.8)  # unknown FLOPs: TB/s only
    assert r.tflops is None and r.intensity is None and r.bound is None and r.tbps == pytest.approx(1.0)
    assert roofline(1e9, 1e10, 1e-3, 989.4, 4.8).roofline_pct is None  # 10 TB/s: above the HBM roof


# ---- the 9B fixture ------------------------------------------------------------------------


def test_operators_on_the_9b_forward() -> None:
    report = analysis(NEMOTRON_9B).report
    assert report.general.peak_tbps == 4.8
    top = report.operators[0]
    assert top["operator"] == "aten::mul" and top["calls"] == 492 and top["bound"] == "memory"
    assert top["min_ms"] <= top["mean_ms"] <= top["max_ms"]
    assert top["mean_ms"] * top["calls"] == pytest.approx(top["gpu_ms"])
    assert any("elementwise_kernel" in k for k in top["kernels"])
    shape = report.operator_shapes[0]
    assert json.loads(shape["shapes"]) == [[1, 2, 128, 1, 128, 128], [1, 2, 1, 128, 128, 128]]
    assert shape["calls"] == 27 and shape["bytes"] == 27 * 2_181_038_080  # one per Mamba2 mixer
    assert shape["tbps"] == pytest.approx(shape["bytes"] / (shape["gpu_ms"] * 1e-3) / 1e12)
    assert shape["roofline_pct"] == pytest.approx(100 * shape["tbps"] / 4.8)
    mm = next(o for o in report.operators if o["operator"] == "aten::mm")
    assert mm["calls"] == 121 and mm["peak_tflops"] == 989.4  # a bf16 GEMM: the tensor-core roof


def test_block_rooflines_on_the_9b_forward() -> None:
    report = analysis(NEMOTRON_9B).report
    for b in report.blocks:
        assert b.bytes is not None and b.bytes_coverage is not None and b.bytes_coverage >= 0.98
        assert b.tbps == pytest.approx(b.bytes / (b.gpu_ms * 1e-3) / 1e12)
        assert b.intensity == pytest.approx(b.flops / b.bytes)
        if b.bound == "memory":
            assert b.roofline_pct == pytest.approx(100 * b.tbps / 4.8)
    mamba = next(b for b in report.blocks if b.kind == "mamba")
    assert mamba.bound == "memory" and mamba.intensity < 206
    mlp = next(b for b in report.blocks if b.kind == "mlp")
    # its two GEMMs read the [4480, 15680] bf16 weights twice over at least
    assert mlp.bytes > 2 * 2 * 4480 * 15680
    mixer = next(t for t in report.module_types if t.type == "NemotronHMamba2Mixer")
    assert mixer.bound == "memory" and mixer.tbps is not None and mixer.tbps < 4.8


def test_peak_tbps_override_and_chart() -> None:
    a = run_pipeline(NEMOTRON_9B, peak_tbps=2.0)
    g = a.report.general
    assert g.peak_tbps == 2.0
    mamba = next(b for b in a.report.blocks if b.kind == "mamba")
    assert mamba.roofline_pct == pytest.approx(100 * mamba.tbps / 2.0)
    chart = next(c for c in chart_data(a.report, a) if c.name == "roofline")
    assert chart.data["peak_tbps"] == 2.0 and len(chart.data["blocks"]) == len(a.report.blocks)
    assert render_chart(chart, "png").startswith(b"\x89PNG")
