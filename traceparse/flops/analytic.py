"""Analytic FLOPs for modules whose kernels carry no usable shapes.

Mamba2's SSD chunked scan runs as fused Triton kernels (mamba_ssm) or, without them, as
transformers' torch reference path of broadcast multiplies and sums — neither shows its matmul
work as GEMM ops with shapes. So a Mamba2 mixer's own FLOPs (everything but its Linear and norm
children) come from its config instead, and are labeled analytic in the report.

SSD, chunked (Dao & Gu 2024, "Transformers are SSMs", §6; mamba_ssm/ops/triton/ssd_combined.py),
per sequence of L tokens padded to C chunks of Q, H heads of dim P, state N, G groups:
  1. CB = C·Bᵀ within each chunk, per group       2·C·Q·Q·G·N   (_bmm_chunk_fwd)
  2. Y_diag = (CB ∘ decay) · X, per head          2·C·Q·Q·H·P   (_chunk_scan_fwd, diagonal)
  3. chunk states = Bᵀ · (decay ∘ X)              2·C·Q·H·P·N   (_chunk_state_fwd)
  4. inter-chunk state passing                    2·C·H·P·N     (_state_passing_fwd)
  5. Y_off = C · states                           2·C·Q·H·P·N   (_chunk_scan_fwd, off-diagonal)
plus the depthwise causal conv1d over conv_dim = H·P + 2·G·N channels: 2·L·conv_dim·K.
Decode (L = 1) is the recurrent update instead: h = exp(dt·A)·h + dt·B·x, y = C·h: ~6·H·P·N.
Backward of the scan is counted as 2× forward (two matmuls per forward matmul).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

MAMBA2_MIXER = re.compile(r"(Mamba2?Mixer|MambaMixer2|BambaMixer|Mamba2Layer)$")


@dataclass(frozen=True)
class Mamba2Shape:
    heads: int
    head_dim: int
    state: int
    groups: int
    chunk: int
    conv_kernel: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Mamba2Shape | None:
        def pick(*keys: str) -> int | None:
            for k in keys:
                v = config.get(k)
                if isinstance(v, int) and v > 0:
                    return v
            return None

        heads = pick("mamba_num_heads", "num_heads", "mamba_n_heads", "n_mamba_heads")
        head_dim = pick("mamba_head_dim", "head_dim_mamba", "mamba_d_head", "mamba_headdim")
        if head_dim is None and "num_heads" in config:  # Mamba2Config; hybrids' head_dim is attention's
            head_dim = pick("head_dim")
        if heads is None and head_dim is None:
            return None
        hidden = pick("hidden_size") or 0
        expand = pick("expand", "mamba_expand") or 2
        if head_dim is None and heads:
            head_dim = expand * hidden // heads
        if heads is None and head_dim:
            heads = expand * hidden // head_dim
        state = pick("ssm_state_size", "mamba_d_state", "state_size")
        groups = pick("n_groups", "mamba_n_groups", "mamba_ngroups") or 1
        chunk = pick("chunk_size", "mamba_chunk_size") or 256
        conv = pick("conv_kernel", "mamba_d_conv") or 4
        if not heads or not head_dim or not state:
            return None
        return cls(heads, head_dim, state, groups, chunk, conv)

    @property
    def conv_dim(self) -> int:
        return self.heads * self.head_dim + 2 * self.groups * self.state


def mamba2_forward_flops(shape: Mamba2Shape, batch: int, tokens: int) -> float:
    """FLOPs of one mixer's scan + conv1d for `batch` sequences of `tokens` tokens."""
    h, p, n, g, k = shape.heads, shape.head_dim, shape.state, shape.groups, shape.conv_kernel
    conv = 2.0 * tokens * shape.conv_dim * k
    if tokens == 1:
        return batch * (6.0 * h * p * n + conv)
    q = shape.chunk
    c = math.ceil(tokens / q)
    per_seq = (
        2.0 * c * q * q * g * n  # CB
        + 2.0 * c * q * q * h * p  # Y_diag
        + 2.0 * c * q * h * p * n  # chunk states
        + 2.0 * c * h * p * n  # state passing
        + 2.0 * c * q * h * p * n  # Y_off
    )
    return batch * (per_seq + conv)
