"""Dense peak TFLOP/s by device and dtype, from the vendors' datasheets (no sparsity).

Keyed by a substring of the device name the trace records in deviceProperties. H200 SXM has
the H100 SXM's compute (same GH100 die and clocks); only memory differs.
"""

from __future__ import annotations

import re

# name pattern → {dtype: dense TFLOP/s}
PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    (r"H200", {"fp64": 67.0, "fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9}),
    (r"H100.*PCIe", {"fp64": 51.0, "fp32": 51.0, "tf32": 378.0, "bf16": 756.0, "fp16": 756.0, "fp8": 1513.0}),
    (r"H100", {"fp64": 67.0, "fp32": 67.0, "tf32": 494.7, "bf16": 989.4, "fp16": 989.4, "fp8": 1978.9}),
    (r"A100", {"fp64": 19.5, "fp32": 19.5, "tf32": 156.0, "bf16": 312.0, "fp16": 312.0}),
    (r"L40S", {"fp32": 91.6, "tf32": 183.0, "bf16": 362.05, "fp16": 362.05, "fp8": 733.0}),
    (r"B200", {"fp64": 40.0, "fp32": 80.0, "tf32": 1100.0, "bf16": 2250.0, "fp16": 2250.0, "fp8": 4500.0}),
    (r"MI300X", {"fp64": 81.7, "fp32": 163.4, "tf32": 653.7, "bf16": 1307.4, "fp16": 1307.4, "fp8": 2614.9}),
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
}


def dtype_of_input_type(type_name: str) -> str | None:
    return _DTYPE_OF_TYPE.get(type_name)


def peak_tflops(device_name: str | None, dtype: str | None) -> float | None:
    if not device_name or not dtype:
        return None
    for pattern, table in PEAKS:
        if re.search(pattern, device_name):
            return table.get(dtype)
    return None
