"""What a FLOP formula reads: an op's recorded arguments, and what it returns.

`OpArgs` holds a CPU op's `Input Dims` / `Concrete Inputs` / `Input type` as decoded JSON; the
helpers read one argument leniently (a foreign trace may record anything there: a formula that
cannot read its arguments returns None, an unknown, never a guess).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

AttentionConvention = Literal["causal", "full"]
FlopKind = Literal["gemm", "attention", "conv", "elementwise", "ssm"]


@dataclass(frozen=True)
class OpArgs:
    dims: list[Any]  # Input Dims: one list per argument ([] for scalars)
    concrete: list[Any]  # Concrete Inputs: strings, "" for tensors
    types: list[Any]


@dataclass(frozen=True)
class FlopCount:
    flops: float
    kind: FlopKind


Formula = Callable[[OpArgs, AttentionConvention], FlopCount | None]


def shape_arg(args: OpArgs, i: int) -> list[int] | None:
    if i < 0 or i >= len(args.dims):
        return None
    d = args.dims[i]
    if not isinstance(d, list) or not d or not all(isinstance(x, int) for x in d):
        return None
    return d


def concrete_arg(args: OpArgs, i: int) -> str:
    if 0 <= i < len(args.concrete) and isinstance(args.concrete[i], str):
        return args.concrete[i]
    return ""


def flag_arg(args: OpArgs, i: int) -> bool:
    return concrete_arg(args, i).strip().lower() in ("true", "1")


def int_arg(args: OpArgs, i: int) -> int | None:
    try:
        return int(concrete_arg(args, i).strip())
    except ValueError:
        return None


def int_list_arg(args: OpArgs, i: int) -> list[int] | None:
    text = concrete_arg(args, i).strip()
    if not text:
        return None
    try:
        vals = [int(x) for x in text.strip("[]").split(",") if x.strip()]
    except ValueError:
        return None
    return vals


def bool_list_arg(args: OpArgs, i: int) -> list[bool] | None:
    text = concrete_arg(args, i).strip()
    if not text.startswith("["):
        return None
    return [x.strip().lower() == "true" for x in text.strip("[]").split(",") if x.strip()]


def numel(shape: Sequence[int]) -> int:
    return math.prod(shape) if shape else 1
