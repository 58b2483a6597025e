"""`capture --tp N` and `--parallel ddp|fsdp` under torchrun: one process group, one trace per rank.

Why it is built this way:

- The process group starts here, after the model is built on this rank's device and before any
  sharding (nccl on CUDA, gloo on the CPU), and is destroyed at exit. torch then writes the
  trace's `distributedInfo` itself (rank, world size, backend, groups).
- Tensor parallel uses transformers' own plan (`tp_plan="auto"`: the config's
  `base_model_tp_plan` plus the head's `_tp_plan`) through `maybe_distribute_model`, the call
  `from_pretrained(tp_plan="auto")` makes after init; `from_config` (random weights) does not
  make it, so it is made here on a 1-D mesh of all ranks. Each rank keeps its shard of the full
  random weights it built. The row-parallel Linears (o_proj, down_proj) all-reduce their partial
  output inside their own (replaced) `forward`, i.e. inside their module scope.
- DDP wraps the model, but scopes and metadata keep using the inner model: its names carry no
  `module.` prefix, so analyze's block table has the same form as a single-GPU capture's. Only
  the train step calls the wrapper (the bucket all-reduces fire from its backward hooks).
- FSDP2 is `fully_shard` on each block and then the root (torchtitan's recipe), not
  transformers' `_fsdp_plan`: that plan shards `embed_tokens` and then `lm_head` apart, which
  for a `from_config` model with tied embeddings (Qwen3) is one parameter in two groups, and
  `fully_shard` refuses it. `fully_shard` renames the class (`FSDPQwen3DecoderLayer`); the scopes
  strip that (`scopes.class_name`).
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from traceparse.capture.options import CaptureOptions
from traceparse.capture.scopes import find_block_container
from traceparse.errors import UsageError

DDP_BUCKET_CAP_MB = 25  # torch's default, written to the metadata so the trace says it


@dataclass(frozen=True)
class Parallel:
    kind: str  # "tp" | "ddp" | "fsdp"
    rank: int
    world_size: int
    backend: str
    runner: nn.Module  # what the train step calls: the DDP wrapper, else the model itself
    plan: dict[str, Any] = field(default_factory=dict)  # the tp_plan, the fully_shard units, DDP's settings

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "world_size": self.world_size, "backend": self.backend}
        if self.kind == "tp":
            out["tp_size"] = self.world_size
        return {**out, **self.plan}


def requested(opts: CaptureOptions) -> str | None:
    """Which parallelism the options ask for: "tp", "ddp", "fsdp" or None (one process)."""
    if opts.tp is not None and opts.tp > 1:
        return "tp"
    return opts.parallel


def name_suffix(opts: CaptureOptions) -> str:
    """`-tp2`, `-ddp2`, `-fsdp2` in the default trace name: a job's files say how it ran."""
    kind = requested(opts)
    if kind is None:
        return ""
    return f"-tp{opts.tp}" if kind == "tp" else f"-{kind}{os.environ.get('WORLD_SIZE', '')}"


def start_process_group(device: torch.device) -> tuple[int, int, str]:
    """Start (once) the default process group of this torchrun job; (rank, world size, backend)."""
    dist = torch.distributed
    if not dist.is_available():
        raise UsageError("--tp/--parallel need torch.distributed, which this torch build lacks")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), str(dist.get_backend())
    if "WORLD_SIZE" not in os.environ or "MASTER_ADDR" not in os.environ:
        raise UsageError(
            "--tp/--parallel run one process per rank: start it with "
            "`torchrun --nproc-per-node N -m traceparse capture ...`"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL binds each rank to the GPU resolve_device picked
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    atexit.register(_destroy)
    return dist.get_rank(), dist.get_world_size(), backend


def _destroy() -> None:
    dist = torch.distributed
    if dist.is_initialized():
        dist.destroy_process_group()


def distribute(model: nn.Module, opts: CaptureOptions, device: torch.device) -> Parallel | None:
    """Shard (TP, FSDP2) the model in place or wrap it (DDP), per the options; None: one process."""
    kind = requested(opts)
    if kind is None:
        return None
    rank, world, backend = start_process_group(device)
    if kind == "tp":
        if opts.tp != world:
            raise UsageError(f"--tp {opts.tp}: the job has {world} ranks; TP runs on one mesh of all of them")
        return Parallel("tp", rank, world, backend, model, {"tp_plan": _tensor_parallel(model, device, world)})
    if kind == "ddp":
        ddp = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            bucket_cap_mb=DDP_BUCKET_CAP_MB,
        )
        plan = {"bucket_cap_mb": DDP_BUCKET_CAP_MB, "broadcast_buffers": ddp.broadcast_buffers}
        return Parallel("ddp", rank, world, backend, ddp, plan)
    units = _fully_shard(model, device, world)
    return Parallel("fsdp", rank, world, backend, model, {"fully_shard": units, "reshard_after_forward": True})


def param_groups(model: nn.Module) -> list[dict[str, Any]]:
    """The optimizer's parameter groups: TP shards (DTensors) apart from the replicated plain
    tensors, because a foreach AdamW step refuses a group that mixes the two."""
    from torch.distributed.tensor import DTensor

    params = list(model.parameters())
    sharded = [p for p in params if isinstance(p, DTensor)]
    plain = [p for p in params if not isinstance(p, DTensor)]
    return [{"params": group} for group in (sharded, plain) if group]


def _mesh(device: torch.device, world: int, dim: str) -> Any:
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh(device.type, (world,), mesh_dim_names=(dim,))


def _tensor_parallel(model: nn.Module, device: torch.device, world: int) -> dict[str, str]:
    """Apply transformers' TP plan in place; the plan, with full module patterns, for metadata."""
    from transformers.distributed import DistributedConfig

    plan = getattr(model, "tp_plan", None)
    if not plan:
        raise UsageError(f"{type(model).__name__} has no tensor-parallel plan in transformers (tp_plan='auto')")
    config = DistributedConfig(tp_size=world, tp_plan="auto")
    try:
        type(model).maybe_distribute_model(model, config, _mesh(device, world, "tp"))  # type: ignore[attr-defined]
    except ValueError as exc:  # a width not divisible by the TP size, an unknown style
        raise UsageError(f"--tp {world}: {str(exc).splitlines()[0]}") from None
    return dict(model.tp_plan)  # type: ignore[arg-type]


def _fully_shard(model: nn.Module, device: torch.device, world: int) -> list[str]:
    """FSDP2: each block its own unit (all-gathered in its forward), the rest in the root's."""
    from torch.distributed.fsdp import fully_shard

    container = find_block_container(model)
    if container is None:
        raise UsageError(f"--parallel fsdp: {type(model).__name__} has no block list to shard per block")
    mesh = _mesh(device, world, "fsdp")
    blocks = model.get_submodule(container)
    assert isinstance(blocks, nn.ModuleList)  # find_block_container names only ModuleLists
    units = []
    for i, block in enumerate(blocks):
        fully_shard(block, mesh=mesh, reshard_after_forward=True)
        units.append(f"{container}.{i}")
    fully_shard(model, mesh=mesh)  # the root's own parameters stay gathered between forward and backward
    return [*units, "model (root: embeddings, final norm, head)"]
