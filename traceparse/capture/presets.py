"""Built-in configs of real model shapes, built with random weights.

Random weights run the same kernels with the same shapes and FLOPs as the real checkpoint, so a
trace of a preset is a trace of the real model's compute — without a download. The `-tiny`
variants keep each architecture's structure (block kinds, GQA ratios, activation) at toy widths
so CPU tests run in seconds.
"""

from __future__ import annotations

from typing import Any

from traceparse.errors import UsageError

# NVIDIA-Nemotron-Nano-9B-v2: 27 Mamba2 mixers, 25 ReLU² MLPs, 4 attention layers (14, 21, 30, 39).
NEMOTRON_9B_PATTERN = "M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-"

_NEMOTRON_9B: dict[str, Any] = {
    "model_type": "nemotron_h",
    "vocab_size": 131072,
    "hidden_size": 4480,
    "hybrid_override_pattern": NEMOTRON_9B_PATTERN,
    "mamba_num_heads": 128,
    "mamba_head_dim": 80,
    "n_groups": 8,
    "ssm_state_size": 128,
    "conv_kernel": 4,
    "chunk_size": 128,
    "expand": 2,
    "num_attention_heads": 40,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 15680,
    "mlp_hidden_act": "relu2",
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
    "layer_norm_epsilon": 1e-5,
}

_LLAMA_8B: dict[str, Any] = {
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
}

_QWEN3_06B: dict[str, Any] = {
    "model_type": "qwen3",
    "vocab_size": 151936,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
}


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


PRESETS: dict[str, dict[str, Any]] = {
    "nemotron-nano-9b-v2": _NEMOTRON_9B,
    # Real 9B-v2 widths, 8 layers holding all three block kinds: a fixture-sized slice of the model.
    "nemotron-nano-9b-v2-8l": _with(_NEMOTRON_9B, hybrid_override_pattern="M-M*M-M-"),
    "nemotron-nano-9b-v2-tiny": _with(
        _NEMOTRON_9B,
        vocab_size=512,
        hidden_size=64,
        hybrid_override_pattern="M-M*-",
        mamba_num_heads=8,
        mamba_head_dim=16,
        n_groups=2,
        ssm_state_size=16,
        chunk_size=16,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=128,
    ),
    "llama-3.1-8b": _LLAMA_8B,
    "llama-3.1-8b-tiny": _with(
        _LLAMA_8B,
        vocab_size=512,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
    "qwen3-0.6b": _QWEN3_06B,
    "qwen3-0.6b-tiny": _with(
        _QWEN3_06B,
        vocab_size=512,
        hidden_size=64,
        intermediate_size=192,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
    ),
}


def preset_config(name: str) -> dict[str, Any]:
    """The config dict of a preset (a copy), or a UsageError naming the known ones."""
    try:
        return dict(PRESETS[name])
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise UsageError(f"unknown preset {name!r}; known presets: {known}") from None
