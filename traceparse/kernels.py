"""Kernel families from kernel names: where GPU time goes when no module can say."""

from __future__ import annotations

import re

import numpy as np

from traceparse.load import MEMCPY, MEMSET, of_kinds

FAMILIES = ("gemm", "attention", "elementwise", "reduction", "copy/memset", "communication", "other")

# Order matters: the first pattern that matches wins.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("communication", re.compile(r"nccl|rccl|all_?reduce|allgather|reduce_?scatter|sendrecv", re.I)),
    (
        "attention",
        re.compile(r"flash|fmha|attention|attn|sdpa|cudnn_generated_fort_native_sdpa|mha_|softmax_warp", re.I),
    ),
    (
        "gemm",
        re.compile(
            r"gemm|cutlass|cublas|nvjet|xmma|wgmma|matmul|_mm_|sm\d+_.*(?:tn|nt|nn|tt)|ampere_.*_(?:tn|nt|nn)|"
            r"Cijk_|splitK|dot_kernel|triton_tem|^aten::(mm|addmm|bmm|baddbmm|matmul|linear|_scaled_mm)$",
            re.I,
        ),
    ),
    (
        "copy/memset",
        re.compile(r"copy|memcpy|memset|CatArrayBatchedCopy|cat_|fill_kernel|index_put|gather|scatter", re.I),
    ),
    (
        "reduction",
        re.compile(r"reduce|norm|softmax|cumsum|scan|argmax|topk|sort|mean|sum_kernel|triton_red|triton_per", re.I),
    ),
    (
        "elementwise",
        re.compile(r"elementwise|vectorized|unrolled|pointwise|triton_poi|activation|silu|gelu|relu|mul|add|exp", re.I),
    ),
)


def family_of(name: str) -> str:
    for family, pattern in _RULES:
        if pattern.search(name):
            return family
    return "other"


def item_families(names: tuple[str, ...], name_ids: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Family index (into FAMILIES) per item (kernel, or CPU op in a CPU-only trace)."""
    # Only the names items carry are classified (a trace's names are mostly CPU ops).
    used, code = np.unique(name_ids, return_inverse=True)
    lookup = np.array([FAMILIES.index(family_of(names[i])) for i in used.tolist()], np.int8)
    fam = lookup[code.reshape(-1)]
    copy = FAMILIES.index("copy/memset")
    return np.where(of_kinds(kinds, (MEMCPY, MEMSET)), copy, fam).astype(np.int8)
