"""MFU inputs: the dense peak by device name and dtype, the dtype read from the GEMMs' `Input type`,
and the `--peak-tflops` override."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import LLAMA_4L, analysis
from traceparse.api import run_pipeline
from traceparse.flops.peaks import dtype_of_input_type, peak_tflops

# Datasheet tensor-core figures are quoted with 2:4 sparsity; the dense peak is half.
DENSE = {
    ("NVIDIA H100 80GB HBM3", "bf16"): 1978.9 / 2,
    ("NVIDIA H100 80GB HBM3", "fp8"): 3957.8 / 2,
    ("NVIDIA H100 80GB HBM3", "tf32"): 989.4 / 2,
    ("NVIDIA H100 80GB HBM3", "fp32"): 67.0,  # CUDA cores, no sparsity
    ("NVIDIA H100 PCIe", "bf16"): 1512 / 2,
    ("NVIDIA H100 PCIe", "fp8"): 3026 / 2,
    ("NVIDIA H100 NVL", "bf16"): 1671 / 2,
    ("NVIDIA H200", "bf16"): 1978.9 / 2,
    ("NVIDIA H200", "fp8"): 3957.8 / 2,
    ("NVIDIA H200 NVL", "fp8"): 3341 / 2,
    ("NVIDIA A100-SXM4-80GB", "bf16"): 624 / 2,
    ("NVIDIA A100 80GB PCIe", "tf32"): 312 / 2,
    ("NVIDIA A100-SXM4-40GB", "fp32"): 19.5,
    ("NVIDIA L40S", "bf16"): 724.1 / 2,
    ("NVIDIA L40S", "fp8"): 1466 / 2,
    ("NVIDIA B200", "bf16"): 4500 / 2,
    ("NVIDIA B200", "fp8"): 9000 / 2,
    ("NVIDIA GB200", "bf16"): 5000 / 2,
    ("AMD Instinct MI300X", "bf16"): 2614.9 / 2,
    ("AMD Instinct MI300X", "fp8"): 5229.8 / 2,
    ("AMD Instinct MI300X", "fp32"): 163.4,
}


@pytest.mark.parametrize(("device", "dtype"), sorted(DENSE))
def test_peak_by_device_name(device: str, dtype: str) -> None:
    assert peak_tflops(device, dtype) == pytest.approx(DENSE[(device, dtype)], abs=0.6)


def test_peak_unknowns_and_variants() -> None:
    assert peak_tflops("NVIDIA L40", "bf16") is None  # not the L40S
    assert peak_tflops("x86_64", "fp32") is None
    assert peak_tflops(None, "bf16") is None
    assert peak_tflops("NVIDIA H100 80GB HBM3", None) is None
    assert peak_tflops("NVIDIA A100-SXM4-80GB", "fp8") is None  # Ampere has no fp8
    # Variants are matched before their family.
    assert peak_tflops("NVIDIA H100 PCIe", "bf16") != peak_tflops("NVIDIA H100 80GB HBM3", "bf16")
    assert peak_tflops("NVIDIA GB200", "bf16") != peak_tflops("NVIDIA B200", "bf16")


def test_dtype_of_input_type() -> None:
    assert dtype_of_input_type("c10::BFloat16") == "bf16"
    assert dtype_of_input_type("c10::Half") == "fp16"
    assert dtype_of_input_type("float") == "fp32"
    assert dtype_of_input_type("c10::Float8_e4m3fn") == "fp8"
    assert dtype_of_input_type("c10::Float8_e5m2") == "fp8"
    assert dtype_of_input_type("long int") is None


def test_h200_fixture_peak_mfu_and_override() -> None:
    a = analysis(LLAMA_4L)
    g = a.report.general
    assert g.device == "NVIDIA H200" and g.dtype == "bf16"
    assert g.peak_tflops == peak_tflops("NVIDIA H200", "bf16")
    assert g.mfu == pytest.approx(g.effective_tflops / g.peak_tflops)
    for row in a.report.blocks:
        assert row.mfu == pytest.approx(row.tflops / g.peak_tflops)
    over = run_pipeline(LLAMA_4L, peak_tflops=500.0).report
    assert over.general.peak_tflops == 500.0
    assert over.general.flops == g.flops
    assert over.general.mfu == pytest.approx(over.general.effective_tflops / 500.0)
    assert over.blocks[0].mfu == pytest.approx(over.blocks[0].tflops / 500.0)


def test_dtype_follows_the_gemm_flops_on_a_cpu_trace(tmp_path: Path) -> None:
    """fp8 `_scaled_mm` against a bf16 MoE `_grouped_mm` and an fp32 `mm`: the most GEMM FLOPs win.

    Also: the grouped GEMM counts once although the CPU runs it as one nested mm per group.
    """
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile

    g = torch.Generator().manual_seed(0)
    a8 = torch.randn(32, 64, generator=g).to(torch.float8_e4m3fn)
    b8 = torch.randn(48, 64, generator=g).to(torch.float8_e4m3fn).t()
    one = torch.tensor(1.0)
    tokens = torch.randn(48, 16, generator=g, dtype=torch.bfloat16)
    experts = torch.randn(3, 16, 24, generator=g, dtype=torch.bfloat16)
    offs = torch.tensor([16, 32, 48], dtype=torch.int32)
    x32 = torch.randn(8, 16, generator=g)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        torch._grouped_mm(tokens, experts, offs=offs)
        torch.mm(x32, x32.t())
    path = tmp_path / "gemms.json"
    prof.export_chrome_trace(str(path))
    got = run_pipeline(path)
    fp8, moe, fp32 = 2 * 32 * 64 * 48, 2 * 48 * 16 * 24, 2 * 8 * 16 * 8
    assert got.flops.total(("gemm",)) == fp8 + moe + fp32
    names = sorted(got.flops.op_name[got.flops.kind == 0].tolist())
    assert names == ["aten::_grouped_mm", "aten::_scaled_mm", "aten::mm"]
    assert got.flops.dtype == "fp8"
    assert got.report.general.peak_tflops is None and got.report.general.mfu is None  # a CPU: no peak
    over = run_pipeline(path, peak_tflops=1.0).report.general
    assert over.peak_tflops == 1.0 and over.mfu is not None and over.mfu > 0
