"""Per-op FLOP formulas over a trace's `Input Dims` / `Concrete Inputs`.

Conventions (the report states them):
  * a multiply-add is 2 FLOPs; a GEMM [m,k]·[k,n] is 2·m·k·n, plus m·n for a fused bias add
    (torch's FlopCounterMode leaves the bias out);
  * attention counts its two matmuls, QKᵀ and PV: 2·b·h_q·pairs·(d_qk + d_v), `pairs` being the
    query-key pairs. `causal` (the default) counts the pairs a masked kernel computes — the
    unmasked triangle, or band for sliding windows; `full` counts every s_q·s_k pair, whatever
    the mask (the PaLM / FlopCounterMode convention). GQA changes no FLOPs: every query head
    still attends. Backward is 2.5× forward (dQ, dK, dV, dP and the recomputed S: five matmuls
    against two). A boolean/additive mask tensor is not read: such calls count as unmasked.
    Attention written as plain matmuls (eager; SDPA's math backend in backward) is GEMM work,
    counted as computed — all s_q·s_k pairs; varlen kernels are taken at the mean sequence length
    (exact when the packed sequences are equally long);
  * convolution: 2·N·C_out·prod(out)·(C_in/groups)·prod(kernel), plus N·C_out·prod(out) for a
    bias; a transposed convolution 2·N·C_in·prod(in)·(C_out/groups)·prod(kernel). Backward
    counts the same for each of grad-input and grad-weight it computes;
  * elementwise and reductions: one FLOP per output (or input, for reductions) element —
    counted as a separate kind, never mixed into tensor FLOPs.

Each formula reads the argument positions of the op's schema; tests check the tables against
torch's schemas (`torch.ops.aten.<op>.default._schema`) and against real CPU and H200 traces.
"""

from __future__ import annotations

from traceparse.flops.args import AttentionConvention, FlopCount, Formula, OpArgs
from traceparse.flops.attention import (
    ATTENTION,
    ATTENTION_BACKWARD_DEFAULT,
    ATTENTION_BACKWARD_OPS,
    attention_flops,
    attention_formula,
    attention_pairs,
)
from traceparse.flops.conv import CONVOLUTIONS
from traceparse.flops.elementwise import ELEMENTWISE
from traceparse.flops.gemm import GEMMS
from traceparse.flops.traffic_tensor import BYTES

TENSOR_KINDS: tuple[str, ...] = ("gemm", "attention", "conv", "ssm")

FORMULAS: dict[str, Formula] = {
    **GEMMS,
    **{name: attention_formula(sig) for name, sig in ATTENTION.items()},
    **CONVOLUTIONS,
    **ELEMENTWISE,
}

GEMM_OPS = frozenset(GEMMS)
ATTENTION_OPS = frozenset(ATTENTION)
EMBEDDING = "aten::embedding"  # its weight's shape gives the hidden size (aggregate)


def shapes_needed(op_name: str) -> bool:
    """Whether the pipeline reads this op's shape arguments: the loader keeps only those (FLOP
    formulas, byte formulas: see traffic.py)."""
    return op_name in FORMULAS or op_name == EMBEDDING or op_name in BYTES


__all__ = [
    "ATTENTION_BACKWARD_DEFAULT",
    "ATTENTION_BACKWARD_OPS",
    "ATTENTION_OPS",
    "EMBEDDING",
    "FORMULAS",
    "GEMM_OPS",
    "TENSOR_KINDS",
    "AttentionConvention",
    "FlopCount",
    "OpArgs",
    "attention_flops",
    "attention_pairs",
    "shapes_needed",
]
