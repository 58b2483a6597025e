"""Build the model to profile from a preset, a config file, a local checkpoint or a Hub id."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from traceparse.capture.options import CaptureOptions
from traceparse.capture.parallel import Parallel, distribute
from traceparse.capture.presets import preset_config
from traceparse.errors import ExitCode, TraceparseError, UsageError

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass(frozen=True)
class BuiltModel:
    model: PreTrainedModel
    model_id: str
    device: torch.device
    dtype: torch.dtype
    random_weights: bool
    parallel: Parallel | None = None  # under torchrun with --tp/--parallel


def resolve_device(requested: str | None) -> torch.device:
    # Under torchrun each rank takes its own GPU (LOCAL_RANK) unless told otherwise.
    local_rank = os.environ.get("LOCAL_RANK")
    if requested in (None, "cuda") and local_rank is not None and torch.cuda.is_available():
        requested = f"cuda:{int(local_rank)}"
    if requested is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {requested!r} is not a torch device (try cuda, cuda:1 or cpu)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for, but this machine has no CUDA device visible to torch")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def resolve_dtype(requested: str | None, device: torch.device) -> torch.dtype:
    if requested is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return _DTYPES[requested]


def _config_from_dict(values: dict[str, Any], origin: str) -> PretrainedConfig:
    values = dict(values)
    model_type = values.pop("model_type", None)
    if not model_type:
        raise UsageError(f"{origin}: a transformers config needs a 'model_type' key")
    try:
        return AutoConfig.for_model(model_type, **values)
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{origin}: transformers cannot build a {model_type!r} config: {exc}") from None


def _read_config_file(path: Path) -> PretrainedConfig:
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TraceparseError(f"cannot read config {path}: {exc.strerror}", ExitCode.UNREADABLE) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TraceparseError(f"config {path} is not valid JSON: {exc}", ExitCode.UNREADABLE) from None
    if not isinstance(values, dict):
        raise UsageError(f"config {path} must hold a JSON object")
    return _config_from_dict(values, str(path))


def _hub_config(model: str) -> PretrainedConfig:
    try:
        return AutoConfig.from_pretrained(model)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"cannot get the config of {model!r}: not a local checkpoint dir, and the Hub "
            f"could not be reached or has no such model ({first})"
        ) from None
    except ValueError as exc:
        raise UsageError(f"{model!r}: {exc}") from None


def _cut_layers(config: PretrainedConfig, layers: int) -> None:
    """Keep the first `layers` blocks (same widths): a fixture-sized slice of a real model."""
    total = int(getattr(config, "num_hidden_layers", layers))
    if layers > total:
        raise UsageError(f"--layers {layers}: the model has only {total} blocks")
    block_types = getattr(config, "layers_block_type", None)
    if isinstance(block_types, list):  # hybrid models list each block's kind
        config.layers_block_type = block_types[:layers]
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list):
        config.layer_types = layer_types[:layers]
    config.num_hidden_layers = layers


def build_model(opts: CaptureOptions) -> BuiltModel:
    device = resolve_device(opts.device)
    dtype = resolve_dtype(opts.dtype, device)
    random_weights = opts.random_weights or opts.preset is not None or opts.config is not None
    if opts.preset:
        config = _config_from_dict(preset_config(opts.preset), f"preset {opts.preset}")
        model_id = opts.preset
    elif opts.config:
        config = _read_config_file(opts.config)
        model_id = opts.config.stem
    else:
        assert opts.model is not None
        config = _hub_config(opts.model)
        model_id = opts.model
    if opts.layers is not None:
        if not random_weights:
            raise UsageError("--layers needs random weights (--preset, --config or --random-weights)")
        _cut_layers(config, opts.layers)
        model_id = f"{model_id}-{opts.layers}l"
    try:
        # Building on the target device initialises weights there: seconds for 9B on a GPU,
        # minutes on the host.
        with torch.device(device):
            if random_weights:
                model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=opts.attn_impl)
            else:
                model = AutoModelForCausalLM.from_pretrained(model_id, dtype=dtype, attn_implementation=opts.attn_impl)
    except (ValueError, ImportError) as exc:
        raise UsageError(f"cannot build {model_id!r}: {str(exc).splitlines()[0]}") from None
    except torch.OutOfMemoryError:
        raise TraceparseError(f"{model_id!r} does not fit on {device}", ExitCode.RUNTIME) from None
    model.to(device)
    parallel = distribute(model, opts, device)  # TP/FSDP2 shard in place; DDP wraps
    return BuiltModel(model, model_id, device, dtype, random_weights, parallel)
