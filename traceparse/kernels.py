"""Kernel families from kernel names: where GPU time goes when no module can say."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from traceparse.load import MEMCPY, MEMSET, of_kinds

FAMILIES = (
    "gemm",
    "attention",
    "conv",
    "elementwise",
    "reduction",
    "normalization",
    "copy/memset",
    "communication",
    "other",
)

# Order matters: the first pattern that matches wins. Names come from NVIDIA's libraries (cuBLAS,
# cuBLASLt incl. its nvjet kernels, CUTLASS, xmma, cuDNN), ROCm's (rocBLAS/Tensile `Cijk_`,
# hipBLASLt, Composable Kernel `ck::`/`device_gemm`, MIOpen), NCCL/RCCL, FlashAttention and
# cuDNN's fused attention, Triton and torch.compile (triton_poi/red/per/tem), and aten's own.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # Inductor names a fused kernel after every op it fuses ("…_scaled_dot_product_…_attention_…"):
    # its kind prefix says what it is, before any op name in it can.
    ("elementwise", re.compile(r"^triton_poi_")),
    ("reduction", re.compile(r"^triton_(?:red|per)_")),
    ("gemm", re.compile(r"^triton_tem_")),
    (
        "communication",
        re.compile(
            r"nccl|rccl|all_?reduce|all_?gather|reduce_?scatter|sendrecv|all_?to_?all|broadcast_kernel|"
            r"cross_device_reduce|custom_?ar|one_?shot|two_?shot|nvshmem|deep_?ep",
            re.I,
        ),
    ),
    (
        "attention",
        re.compile(
            r"flash|fmha|attention|attn|sdpa|cudnn_generated_fort_native_sdpa|mha_|"
            r"paged_?kv|decode_?kernel|merge_?state|cutlass_?mla|flashinfer|unified_attention|"
            r"xformers|efficient_?attention|triton_.*attn|sage_fwd|sage_bwd|sageattn",
            re.I,
        ),
    ),
    (
        "conv",
        re.compile(
            r"conv|fprop|dgrad|wgrad|implicit_?gemm|winograd|im2col|col2im|cudnn::detail::|"
            r"igemm|depthwise|miopen|naive_conv|sm\d+_xmma_(?:fprop|dgrad|wgrad)|cask_cudnn|cudnn::cnn::",
            re.I,
        ),
    ),
    (
        "gemm",
        re.compile(
            r"gemm|cutlass|cublas|nvjet|xmma|wgmma|matmul|_mm_|\bmm_|bmm_|sm\d+_.*(?:tn|nt|nn|tt)|"
            r"ampere_.*_(?:tn|nt|nn)|volta_.*_(?:tn|nt|nn)|turing_.*_(?:tn|nt|nn)|maxwell_.*_(?:tn|nt|nn)|"
            r"Cijk_|Custom_Cijk|splitK|dot_kernel|triton_tem|gemv|grouped_?mm|moe_?align|fused_moe|"
            r"wvSplitK|hipblaslt|rocblas|ck::.*gemm|device_gemm|kernel_gemm|scaled_mm|fp8_?gemm|"
            r"^aten::(mm|addmm|bmm|baddbmm|matmul|linear|_scaled_mm)$",
            re.I,
        ),
    ),
    (
        "normalization",
        re.compile(
            r"norm|batch_?norm|bn_fw|bn_bw|bn_(?:fw|bw)_|welford|layer_?norm|rms_?norm|group_?norm|"
            r"instance_?norm|cuComputeGradInput|cuApplyLayerNorm|cuComputePartGradGammaBeta|GammaBeta|"
            r"RowwiseMoments|cuComputeGradGammaBeta",
            re.I,
        ),
    ),
    (
        "copy/memset",
        re.compile(
            r"copy|memcpy|memset|CatArrayBatchedCopy|cat_|fill_kernel|index_put|gather|scatter|transpose|"
            r"permute|index_?select|indexSelect|embedding|take_along|masked_select|nonzero|\bcat\b|"
            r"_to_copy|contiguous|pad_kernel|roll|flip|repeat|nchwToNhwc|nhwcToNchw|scalePackedTensor|"
            r"linearize_index|indexing_backward|store_kvcache|kv_?cache|to_dense|compute_position|triu_tril",
            re.I,
        ),
    ),
    (
        "reduction",
        re.compile(
            r"reduce|softmax|cumsum|cumprod|scan|argmax|argmin|topk|sort|radix|mean|sum_kernel|triton_red|"
            r"triton_per|max_kernel|min_kernel|logsumexp|nll_loss|cross_entropy|histogram|unique|bincount|"
            r"multinomial|segment|pool|ClassNLLCriterion|routing|bitmatrix",
            re.I,
        ),
    ),
    (
        "elementwise",
        re.compile(
            r"elementwise|vectorized|unrolled|pointwise|triton_poi|triton_|activation|silu|gelu|relu|swiglu|"
            r"mul|add|exp|div|sub|where|clamp|sigmoid|tanh|rotary|rope|dropout|fused_|foreach|multi_tensor_apply|"
            r"adam|sgd|lamb|distribution|random|rand|philox|bernoulli|fill|arange|compare|bitwise|cast|"
            r"quant|abs|neg|pow|sqrt|rsqrt|log|sin|cos|round|floor|ceil|sign|lerp",
            re.I,
        ),
    ),
)


@lru_cache(maxsize=65536)  # a report classifies the same names several times (context, blocks, generation)
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
