"""Dense peak TFLOP/s by device and dtype, from the vendors' datasheets (no 2:4 sparsity).

Keyed by a regex searched in the device name the trace records (deviceProperties, else the
capture metadata); the first match wins, so variants come before their family. Datasheets
quote tensor-core figures "with sparsity"; these are half of those. fp32 is the non-tensor
(CUDA-core / vector) peak — what an fp32 GEMM without TF32 runs at; tf32 is the tensor-core
peak when TF32 is enabled; fp64 is the tensor/matrix-core peak.

  * H100 SXM / H200 SXM: same GH100 compute and clocks (only memory differs).
  * H100 NVL / H200 NVL: the PCIe cards at 400/600 W (60 fp32, 835.5 bf16 dense).
  * B200: HGX B200 (1000 W) per-GPU figures; GB200: the 1200 W part in GB200 NVL72.
"""

from __future__ import annotations

import re

_HOPPER_SXM = {"fp64": 67.0, "fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9}
# MI300X / MI325X datasheets (dense; the "with sparsity" figures are twice these).
_CDNA3 = {"fp64": 163.4, "fp32": 163.4, "tf32": 653.7, "bf16": 1307.4, "fp16": 1307.4, "fp8": 2614.9}
_HOPPER_NVL = {"fp64": 60.0, "fp32": 60.0, "tf32": 417.5, "bf16": 835.5, "fp16": 835.5, "fp8": 1670.5}

# name pattern → {dtype: dense TFLOP/s}
PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"H200.*NVL", _HOPPER_NVL),
    (r"H200", _HOPPER_SXM),
    (r"H100.*NVL", _HOPPER_NVL),
    (r"H100.*PCIe", {"fp64": 51.0, "fp32": 51.0, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0, "fp8": 1513.0}),
    (r"H100", _HOPPER_SXM),
    (r"A100", {"fp64": 19.5, "fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
    (r"L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05, "fp8": 733.0}),
    # fp4: the Blackwell datasheets' dense FP4 (10 / 9 PF; 20 / 18 "with sparsity")
    (r"GB200", {"fp64": 40.0, "fp32": 80.0, "tf32": 1250.0, "bf16": 2500.0, "fp16": 2500.0, "fp8": 5000.0, "fp4": 1e4}),
    (r"B200", {"fp64": 37.0, "fp32": 75.0, "tf32": 1100.0, "bf16": 2250.0, "fp16": 2250.0, "fp8": 4500.0, "fp4": 9e3}),
    (r"MI300X", _CDNA3),
    (r"MI325X", _CDNA3),  # MI300X's compute (same CDNA3 die and clocks), more and faster HBM
    # MI355X datasheet: 2.5 PF fp16/bf16 and 5 PF fp8 dense, 157.3 fp32 vector, 78.6 fp64
    (r"MI355X", {"fp64": 78.6, "fp32": 157.3, "bf16": 2516.6, "fp16": 2516.6, "fp8": 5033.2, "fp4": 10066.3}),
)

# HBM (GDDR for the L40S) bandwidth, TB/s, from the same datasheets. First match wins.
#   H100 SXM5 80 GB 3.35; H100 PCIe 80 GB 2.0; H100 NVL 94 GB 3.9; H200 (SXM and NVL) 4.8;
#   HGX B200 8.0; GB200 NVL72 576 TB/s over 72 GPUs = 8.0; A100 80 GB SXM4 2.039, PCIe 1.935,
#   A100 40 GB 1.555 (also the boards named without a memory size, "A100-PG509-200": an
#   assumption — the 80 GB parts name it); L40S 0.864; V100 0.9 (V100S 1.134); MI300X 5.3;
#   MI325X 6.0; MI355X 8.0; MI250X 3.2768; MI210 1.6384.
BANDWIDTH: tuple[tuple[str, float], ...] = (
    (r"H200", 4.8),
    (r"H100.*NVL", 3.9),
    (r"H100.*PCIe", 2.0),
    (r"H100", 3.35),
    (r"A100.*80GB.*PCIe|A100.*PCIe.*80GB", 1.935),
    (r"A100.*80GB", 2.039),
    (r"A100", 1.555),
    (r"L40S", 0.864),
    (r"GB200", 8.0),
    (r"B200", 8.0),
    (r"V100S", 1.134),
    (r"V100", 0.9),
    (r"MI300X", 5.3),
    (r"MI325X", 6.0),
    (r"MI355X", 8.0),
    (r"MI250X?", 3.2768),
    (r"MI210", 1.6384),
)

_DTYPE_OF_TYPE = {
    "c10::BFloat16": "bf16",
    "c10::Half": "fp16",
    "float": "fp32",
    "double": "fp64",
    "c10::Float8_e4m3fn": "fp8",
    "c10::Float8_e5m2": "fp8",
    "c10::Float8_e4m3fnuz": "fp8",
    "c10::Float8_e5m2fnuz": "fp8",
    "c10::Float4_e2m1fn_x2": "fp4",
}


def dtype_of_input_type(type_name: str) -> str | None:
    """The peak-table dtype of a trace's `Input type` string (None: not a float GEMM type)."""
    return _DTYPE_OF_TYPE.get(type_name)


def peak_tflops(device_name: str | None, dtype: str | None) -> float | None:
    """Dense peak of `device_name` for `dtype`, or None when the device or dtype is not in the table."""
    if not device_name or not dtype:
        return None
    for pattern, table in PEAKS:
        if re.search(pattern, device_name):
            return table.get(dtype)
    return None


def peak_tbps(device_name: str | None) -> float | None:
    """Memory bandwidth of `device_name` in TB/s, or None when the device is not in the table."""
    if not device_name:
        return None
    for pattern, tbps in BANDWIDTH:
        if re.search(pattern, device_name):
            return tbps
    return None
