"""The `traceparse` metadata block of a model, shared by `capture` and the training-loop API.

What analyze reads from it (see traceparse/load/metadata.py): the config (Mamba2 scan FLOPs,
hidden size), the module table and the blocks container (exact blocks and their parameters), the
dtype, parameter counts, the device, rank and timings. Nothing here needs transformers: a plain
`nn.Module` gets the same block without a config.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from traceparse import __version__
from traceparse.capture.scopes import (
    class_name,
    find_block_container,
    linear_param_count,
    module_table,
    param_count,
)

SCHEMA = "traceparse.capture/1"
SCOPE_NAMING = "<qualified name> (<ClassName>); root: model (<ClassName>)"


def rank_world() -> tuple[int, int]:
    """This process's rank and the world size: the initialised process group's (Accelerate and
    Trainer start one), else torchrun's environment, else a single process."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def distributed_info() -> dict[str, Any]:
    """Top-level keys to add next to the block: torch writes `distributedInfo` only for an
    initialised process group; a rank of a torchrun job without one still says which it is."""
    rank, world = rank_world()
    dist = torch.distributed
    if world > 1 and not (dist.is_available() and dist.is_initialized()):
        return {"distributedInfo": {"rank": rank, "world_size": world, "backend": None}}
    return {}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def trace_stem(model_id: str, mode: str, seq_len: int | None, tag: str = "") -> str:
    """`<model><tag>-<mode>-seq<N>`, with `-rank<R>` in a job of several ranks: one file per rank;
    `tag` says how the job ran (`-tp2`, `-ddp2`)."""
    rank, world = rank_world()
    name = slug(Path(model_id).name if os.path.isdir(model_id) else model_id) + tag + f"-{mode}"
    if seq_len is not None:
        name += f"-seq{seq_len}"
    return f"{name}-rank{rank}" if world > 1 else name


def device_info(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {
            "type": "cuda",
            "name": torch.cuda.get_device_name(device),
            "count": torch.cuda.device_count(),
        }
    return {"type": device.type, "name": platform.processor() or platform.machine(), "count": 1}


def config_dict(model: nn.Module) -> dict[str, Any] | None:
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    if not callable(to_dict):
        return None
    values = dict(to_dict())
    # Large per-token tables are no use to analyze and bloat every trace.
    values.pop("id2label", None)
    values.pop("label2id", None)
    return values


def default_model_id(model: nn.Module) -> str:
    """The checkpoint it was loaded from, else the config's model type, else the class."""
    config = getattr(model, "config", None)
    for key in ("_name_or_path", "name_or_path", "model_type"):
        value = getattr(config, key, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


def model_metadata(
    model: nn.Module,
    *,
    model_id: str | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """The model's part of the block; the caller adds mode, shapes and timings."""
    first = next(model.parameters(), None)
    dtype = dtype or (first.dtype if first is not None else torch.get_default_dtype())
    device = device or (first.device if first is not None else torch.device("cpu"))
    container = find_block_container(model)
    rank, world = rank_world()
    # transformers only if the program already uses it: a plain-torch loop must not pay its import.
    hf = sys.modules.get("transformers")
    return {
        "schema": SCHEMA,
        "traceparse_version": __version__,
        "torch_version": torch.__version__,
        "transformers_version": getattr(hf, "__version__", None),
        "model_id": model_id or default_model_id(model),
        "model_class": class_name(model),
        "config": config_dict(model),
        "dtype": str(dtype).removeprefix("torch."),
        "device": device_info(device),
        "rank": rank,
        "world_size": world,
        "params": param_count(model),
        "params_linear": linear_param_count(model),
        "blocks_container": container,
        "scope_naming": SCOPE_NAMING,
        "modules": module_table(model, container),
    }
