"""Our per-module FLOPs against torch.utils.flop_counter.FlopCounterMode, on tiny models on the CPU.

Each test runs the same forward twice: once under torch.profiler inside `module_scopes` (what
`traceparse capture` does), analyzed by the whole pipeline, and once under FlopCounterMode. FCM
keys modules "<RootClass>.<qualified name>" and counts a module inclusively, so ours is summed
over each call and its descendants. FCM counts full attention, so the pipeline runs with the
`full` convention; it leaves bias adds out, which the models here don't have (the conv stack's
biases are added back by hand).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from torch import nn  # noqa: E402
from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop, sdpa_flop  # noqa: E402

from traceparse.api import Analysis, run_pipeline  # noqa: E402
from traceparse.capture.export import METADATA_KEY, export_trace  # noqa: E402
from traceparse.capture.model import build_model  # noqa: E402
from traceparse.capture.options import CaptureOptions  # noqa: E402
from traceparse.capture.presets import preset_config  # noqa: E402
from traceparse.capture.scopes import module_scopes  # noqa: E402
from traceparse.scopes import BACKWARD, FORWARD  # noqa: E402

SEQ, BATCH = 24, 2
aten = torch.ops.aten
# FCM has no formula for the CPU flash kernel; give it FCM's own SDPA formulas (raw shape functions).
CPU_FLASH_MAPPING = {
    aten._scaled_dot_product_flash_attention_for_cpu: sdpa_flop.__wrapped__,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: sdpa_backward_flop.__wrapped__,
}


# ---- helpers -----------------------------------------------------------------------------


def profiled(
    model: nn.Module, run: Callable[[], Any], path: Path, metadata: dict[str, Any] | None = None
) -> tuple[Analysis, Analysis]:
    """Trace `run` as capture does, then analyze it under both attention conventions."""
    with module_scopes(model), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        run()
    export_trace(prof, path, {METADATA_KEY: metadata or {}})
    return run_pipeline(path, "full"), run_pipeline(path, "causal")


def fcm_counts(run: Callable[[], Any]) -> dict[str, dict[str, int]]:
    with FlopCounterMode(display=False, custom_mapping=CPU_FLASH_MAPPING) as fcm:
        run()
    return {mod: {str(op): int(n) for op, n in ops.items()} for mod, ops in fcm.get_flop_counts().items()}


def totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    return {mod: sum(ops.values()) for mod, ops in counts.items()}


def inclusive_by_module(a: Analysis, root_class: str, phase: int | None = None) -> dict[str, float]:
    """Our tensor FLOPs per module, keyed the way FlopCounterMode keys them, summed over calls."""
    calls = a.attribution.calls
    incl = a.flops.per_call(len(calls), phase=phase).copy()
    for depth in range(int(calls.depth.max()), 0, -1):
        at = np.flatnonzero(calls.depth == depth)
        np.add.at(incl, calls.parent[at], incl[at])
    out: dict[str, float] = {}
    for c in range(len(calls)):
        # The root scope is "model (<Class>)", and HF models also have a child named "model".
        key = root_class if calls.depth[c] == 0 else f"{root_class}.{calls.qual[c]}"
        out[key] = out.get(key, 0.0) + float(incl[c])
    return out


def tiny_model(tmp_path: Path, preset: str, attn_impl: str, **changes: Any) -> nn.Module:
    if changes:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({**preset_config(preset), **changes}))
        opts = CaptureOptions(config=config, device="cpu", attn_impl=attn_impl)
    else:
        opts = CaptureOptions(preset=preset, device="cpu", attn_impl=attn_impl)
    model = build_model(opts).model
    torch.manual_seed(0)
    return model


def input_ids(model: nn.Module) -> Any:
    vocab = int(model.config.vocab_size)
    return torch.randint(3, vocab, (BATCH, SEQ), generator=torch.Generator().manual_seed(0))


def forward_fn(model: nn.Module, ctx: Callable[[], AbstractContextManager[Any]] = nullcontext) -> Callable[[], None]:
    ids = input_ids(model)
    model.eval()

    def run() -> None:
        with torch.no_grad(), ctx():
            model(input_ids=ids, use_cache=False)

    return run


def metadata_of(model: nn.Module) -> dict[str, Any]:
    return {"config": model.config.to_dict(), "batch_size": BATCH, "seq_len": SEQ}


def assert_modules_match(ours: dict[str, float], fcm: dict[str, int], skip: Callable[[str], bool] = lambda _k: False):
    checked = 0
    for key, expected in fcm.items():
        if key == "Global" or skip(key):
            continue
        assert ours.get(key) == expected, f"{key}: ours {ours.get(key)} != FlopCounterMode {expected}"
        checked += 1
    assert checked > 10


# ---- 1. eager attention: GEMMs and attention matmuls, exact per module ----------------------


@pytest.mark.parametrize("preset", ["llama-3.1-8b-tiny", "qwen3-0.6b-tiny"])
def test_eager_gqa_model_matches_flop_counter_per_module(tmp_path: Path, preset: str) -> None:
    model = tiny_model(tmp_path, preset, "eager")
    cfg = model.config
    assert cfg.num_key_value_heads < cfg.num_attention_heads  # GQA
    run = forward_fn(model)
    full, _causal = profiled(model, run, tmp_path / "t.json.gz", metadata_of(model))
    fcm = fcm_counts(run)
    root = type(model).__name__
    ours = inclusive_by_module(full, root)
    assert_modules_match(ours, totals(fcm))
    assert ours[root] == totals(fcm)["Global"]
    # Eager attention is bmm ops (QKᵀ and PV over the repeated KV heads): counted, once.
    attn = f"{root}.model.layers.0.self_attn"
    assert fcm[attn]["aten.bmm"] == 2 * 2 * BATCH * cfg.num_attention_heads * SEQ * SEQ * cfg.head_dim
    print(f"{preset}: root {ours[root]:.0f} == FCM {totals(fcm)['Global']}, {attn} {ours[attn]:.0f}")


def test_nemotron_h_matches_flop_counter_except_the_analytic_scan(tmp_path: Path) -> None:
    model = tiny_model(tmp_path, "nemotron-nano-9b-v2-tiny", "eager")
    run = forward_fn(model)
    full, _causal = profiled(model, run, tmp_path / "t.json.gz", metadata_of(model))
    fcm = fcm_counts(run)
    fcm_tot = totals(fcm)
    root = type(model).__name__
    ours = inclusive_by_module(full, root)
    mixers = sorted({k.rsplit(".", 1)[0] for k in fcm if k.endswith(".mixer.in_proj")})
    assert len(mixers) == 2  # pattern "M-M*-": two Mamba2 mixers
    is_mamba_scope = lambda k: any(k == m or m.startswith(k + ".") for m in mixers)  # noqa: E731
    # Everything but the Mamba2 mixers and their ancestors: exact.
    assert_modules_match(ours, fcm_tot, skip=lambda k: is_mamba_scope(k) and not k.endswith("_proj"))
    cfg = model.config
    h, p, n, g, q, k_conv = (
        cfg.mamba_num_heads,
        cfg.mamba_head_dim,
        cfg.ssm_state_size,
        cfg.n_groups,
        cfg.chunk_size,
        cfg.conv_kernel,
    )
    chunks = math.ceil(SEQ / q)
    # SSD chunked scan (CB, diagonal Y, chunk states, state passing, off-diagonal Y) + causal conv1d.
    scan = 2 * chunks * q * q * g * n + 2 * chunks * q * q * h * p + 2 * chunks * q * h * p * n
    scan += 2 * chunks * h * p * n + 2 * chunks * q * h * p * n
    conv = 2 * SEQ * (h * p + 2 * g * n) * k_conv
    by_hand = BATCH * (scan + conv)
    for mixer in mixers:
        own_ours = ours[mixer] - ours[f"{mixer}.in_proj"] - ours[f"{mixer}.out_proj"]
        own_fcm = fcm_tot[mixer] - fcm_tot[f"{mixer}.in_proj"] - fcm_tot[f"{mixer}.out_proj"]
        assert own_ours == by_hand
        # FCM sees only the depthwise conv (the reference scan is broadcast multiplies), over
        # L + K - 1 padded positions; the analytic conv term counts the L kept ones.
        assert (
            own_fcm == fcm[mixer]["aten.convolution"] == 2 * BATCH * (h * p + 2 * g * n) * (SEQ + k_conv - 1) * k_conv
        )
    labels = set(full.flops.op_name[full.flops.analytic].tolist())
    assert labels == {"analytic: NemotronHMamba2Mixer SSD scan + conv1d"}
    print(f"nemotron-h tiny: mixer own ours {by_hand} (analytic) vs FCM conv {own_fcm}")


# ---- 1b. SDPA backends under the `full` convention ----------------------------------------


@pytest.mark.parametrize("backend", [SDPBackend.FLASH_ATTENTION, SDPBackend.MATH], ids=["cpu-flash", "math"])
@pytest.mark.parametrize("kv_heads", [4, 2], ids=["mha", "gqa"])
def test_sdpa_matches_flop_counter(tmp_path: Path, backend: Any, kv_heads: int) -> None:
    model = tiny_model(tmp_path, "llama-3.1-8b-tiny", "sdpa", num_key_value_heads=kv_heads)
    run = forward_fn(model, lambda: sdpa_kernel(backend))
    full, causal = profiled(model, run, tmp_path / "t.json.gz", metadata_of(model))
    fcm = fcm_counts(run)
    root = type(model).__name__
    ours = inclusive_by_module(full, root)
    assert_modules_match(ours, totals(fcm))
    kernel = "aten::_scaled_dot_product_flash_attention_for_cpu" if backend == SDPBackend.FLASH_ATTENTION else None
    names = {e for e in full.trace.events.names if "scaled_dot_product" in e}
    if kernel:
        assert kernel in names
    else:
        assert "aten::_scaled_dot_product_attention_math" in names
    # Attention counted once per layer, as the SDPA op; `causal` keeps the unmasked triangle.
    cfg = model.config
    attn_full = full.flops.total(("attention",))
    d = cfg.hidden_size // cfg.num_attention_heads
    layers = cfg.num_hidden_layers
    assert attn_full == layers * 2 * BATCH * cfg.num_attention_heads * SEQ * SEQ * 2 * d
    triangle = SEQ * (SEQ + 1) // 2  # is_causal=True: query i sees keys 0..i
    assert causal.flops.total(("attention",)) == layers * 2 * BATCH * cfg.num_attention_heads * triangle * 2 * d
    assert causal.flops.total(("gemm",)) == full.flops.total(("gemm",))
    assert full.report.general.attention_flops == "full"
    assert causal.report.general.attention_flops == "causal"


# ---- 1c. a small conv model: 1d/2d/3d, grouped, depthwise, dilated, strided, transposed ---


class ConvStack(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(6, 12, 3, padding="same")
        self.dw1 = nn.Conv1d(12, 12, 4, padding=3, groups=12)  # depthwise, causal-conv style
        self.t1 = nn.ConvTranspose1d(12, 8, 4, stride=3, groups=2)
        self.c2 = nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2, bias=False)
        self.dw2 = nn.Conv2d(8, 8, 3, dilation=2, groups=8)
        self.t2 = nn.ConvTranspose2d(8, 6, 3, stride=2, padding=1, output_padding=1)
        self.c3 = nn.Conv3d(2, 4, (2, 3, 3), stride=(1, 2, 1))

    def forward(self, x1: Any, x2: Any, x3: Any) -> Any:
        y1 = self.t1(self.dw1(self.c1(x1)))
        y2 = self.t2(self.dw2(self.c2(x2)))
        return y1.sum() + y2.sum() + self.c3(x3).sum()


def conv_inputs() -> tuple[Any, Any, Any]:
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(2, 6, 11, generator=g),
        torch.randn(2, 4, 9, 10, generator=g),
        torch.randn(1, 2, 4, 7, 6, generator=g),
    )


def bias_adds(model: nn.Module, run: Callable[[], Any]) -> dict[str, int]:
    """N·C_out·prod(out) per conv with a bias, from the output shapes the forward produces."""
    out: dict[str, int] = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, _i, y, name=name: out.__setitem__(name, y.numel() if mod.bias is not None else 0)
        )
        for name, m in model.named_modules()
        if name
    ]
    run()
    for hk in hooks:
        hk.remove()
    return out


@pytest.fixture(scope="module")
def conv_traces(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("conv")
    torch.manual_seed(0)
    model = ConvStack()
    xs = conv_inputs()

    def forward() -> None:
        with torch.no_grad():
            model(*xs)

    def train() -> None:
        model.zero_grad(set_to_none=True)
        model(*xs).backward()

    fwd, _ = profiled(model, forward, tmp / "fwd.json.gz")
    bwd, _ = profiled(model, train, tmp / "train.json.gz")
    return {
        "model": model,
        "fwd": fwd,
        "train": bwd,
        "fcm_fwd": fcm_counts(forward),
        "fcm_train": fcm_counts(train),
        "bias": bias_adds(model, forward),
    }


def test_conv_stack_matches_flop_counter_plus_bias(conv_traces: dict[str, Any]) -> None:
    ours = inclusive_by_module(conv_traces["fwd"], "ConvStack")
    fcm = totals(conv_traces["fcm_fwd"])
    bias = conv_traces["bias"]
    assert set(bias) == {"c1", "dw1", "t1", "c2", "dw2", "t2", "c3"}
    for name, extra in bias.items():
        assert ours[f"ConvStack.{name}"] == fcm[f"ConvStack.{name}"] + extra, name
    assert ours["ConvStack"] == fcm["Global"] + sum(bias.values())
    # Counted once per conv, at aten::convolution (conv1d/_convolution/mkldnn below it are not).
    names = conv_traces["fwd"].flops.op_name[conv_traces["fwd"].flops.kind == 2]
    assert sorted(set(names.tolist())) == ["aten::convolution"] and names.size == 7
    print({k: (ours[f"ConvStack.{k}"], fcm[f"ConvStack.{k}"]) for k in bias})


def test_conv_backward_counts_grad_input_and_grad_weight(conv_traces: dict[str, Any]) -> None:
    """Backward = one forward conv per gradient computed (+ the bias-grad reduction), per module.

    FlopCounterMode's total agrees once its one quirk is accounted for: its grad-weight formula
    ignores `groups`, so it counts a grouped conv's grad-weight `groups` times. (Its per-module
    split of backward work is not usable: it hands all of it to the last module called.)
    """
    ours = inclusive_by_module(conv_traces["train"], "ConvStack", phase=BACKWARD)
    fcm_fwd, fcm_train = conv_traces["fcm_fwd"], conv_traces["fcm_train"]
    bias = conv_traces["bias"]
    fcm_overcount = 0
    for name, mod in conv_traces["model"].named_children():
        key = f"ConvStack.{name}"
        conv_only = fcm_fwd[key]["aten.convolution"]  # 2·multiply-adds, no bias
        # c1, c2 and c3 read the raw inputs, which need no grad: output_mask [False, True, …].
        grads = 1 if name in ("c1", "c2", "c3") else 2
        assert ours[key] == grads * conv_only + bias[name], name
        fcm_overcount += (mod.groups - 1) * conv_only
    assert fcm_overcount > 0
    flops = conv_traces["train"].flops
    bwd = flops.total(("conv",), phase=BACKWARD)
    assert fcm_train["Global"]["aten.convolution_backward"] == bwd - sum(bias.values()) + fcm_overcount
    assert flops.total(("conv",), phase=FORWARD) == fcm_train["Global"]["aten.convolution"] + sum(bias.values())
    assert set(flops.op_name[flops.phase == BACKWARD].tolist()) >= {"aten::convolution_backward"}
