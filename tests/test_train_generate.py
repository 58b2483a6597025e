"""Training and generation traces: backward and decode attributed to modules (issue 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import NEMOTRON_8L_GENERATE, NEMOTRON_8L_TRAIN, QWEN_GENERATE, QWEN_TRAIN, analysis
from traceparse.api import run_pipeline
from traceparse.cli import app
from traceparse.scopes import BACKWARD, FORWARD


@pytest.mark.parametrize("path", [QWEN_TRAIN, NEMOTRON_8L_TRAIN])
def test_train_trace_leaves_at_most_one_percent_unattributed(path: Path) -> None:
    r = analysis(path).report
    assert r.general.mode == "train"
    assert r.general.unattributed_ms <= 0.01 * r.general.kernel_ms
    phases = {p.phase: p for p in r.phases}
    assert set(phases) >= {"forward", "backward", "loss", "optimizer"}
    assert sum(p.kernel_ms for p in r.phases) == pytest.approx(r.general.kernel_ms, rel=1e-9)
    # Each block has both directions, backward slower than forward.
    for b in r.blocks:
        assert b.forward_ms > 0 and b.backward_ms > b.forward_ms


@pytest.mark.parametrize("path", [QWEN_TRAIN, NEMOTRON_8L_TRAIN])
def test_backward_gemm_flops_are_twice_forward(path: Path) -> None:
    flops = analysis(path).flops
    fwd = flops.total(("gemm",), phase=FORWARD)
    bwd = flops.total(("gemm",), phase=BACKWARD)
    assert fwd > 0
    assert bwd / fwd == pytest.approx(2.0, rel=1e-3)


def test_backward_kernels_land_in_the_modules_they_differentiate() -> None:
    a = analysis(QWEN_TRAIN)
    r = a.report
    per_block_bwd = next(b for b in r.phases if b.phase == "backward").blocks
    assert len(per_block_bwd) == 4 and all(b["gpu_ms"] > 0 for b in per_block_bwd)
    assert all(b["flops"] and b["flops"] > 0 for b in per_block_bwd)


@pytest.mark.parametrize("path", [QWEN_GENERATE, NEMOTRON_8L_GENERATE])
def test_generate_splits_prefill_and_decode(path: Path) -> None:
    r = analysis(path).report
    gen = r.generation
    assert gen is not None and r.general.mode == "generate"
    assert gen["new_tokens"] == 8
    assert gen["decode_steps_per_step"] == gen["new_tokens"] - 1  # the prefill makes the first token
    assert gen["prefill_gpu_ms"] > gen["decode_gpu_ms_median"] > 0
    assert gen["decode_ms_p90"] >= gen["decode_ms_median"] > 0
    assert gen["decode_bandwidth_gpu_gbps"] == pytest.approx(gen["weight_bytes"] / (gen["decode_gpu_ms_median"] * 1e6))
    assert len(gen["decode_block_ms"]) == r.general.num_blocks
    assert [p.phase for p in r.phases][:2] == ["prefill", "decode"]


def test_cpu_train_and_generate_on_a_tiny_model(tmp_path: Path) -> None:
    runner = CliRunner()
    for mode, extra in (("train", []), ("generate", ["--new-tokens", "5"])):
        out = tmp_path / mode
        result = runner.invoke(
            app,
            ["capture", "--preset", "qwen3-0.6b-tiny", "--device", "cpu", "--mode", mode, "--steps", "1",
             "--seq-len", "16", "-o", str(out), "-q", "--no-report", *extra],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        (trace,) = out.glob("*.pt.trace.json.gz")
        r = run_pipeline(trace).report
        assert r.attribution == "cpu" and r.general.mode == mode
        if mode == "train":
            assert {"forward", "backward", "optimizer"} <= {p.phase for p in r.phases}
            # On the CPU the autograd engine's own time between nodes is self time of the backward
            # marker, outside every module (how much depends on machine load); every gradient
            # node's time is attributed, except the parameter-gradient accumulation nodes.
            a = run_pipeline(trace)
            items, forest, ev = a.attribution.items, a.attribution.index.forest, a.attribution.index.events
            left = (items.call < 0) & (items.phase == BACKWARD)
            names = {ev.names[int(ev.name[forest.rows[p]])] for p in items.anchor[left]}
            engine = ("traceparse:backward", "AccumulateGrad", "detach", "aten::detach", "aten::ones_like",
                      "aten::empty_like", "aten::empty_strided", "aten::fill_")  # fmt: skip
            assert all(any(e in n for e in engine) for n in names), names
            bwd = next(p for p in r.phases if p.phase == "backward")
            assert all(b["gpu_ms"] > 0 for b in bwd.blocks)
        else:
            assert r.generation is not None and r.generation["decode_steps_per_step"] == 4


def test_plain_user_training_loop_links_backward_to_forward_operators() -> None:
    """No scopes, no with_stack: backward kernels are named by the forward op they differentiate."""
    from tests.conftest import USER_TRAIN

    r = analysis(USER_TRAIN).report
    ops = {o["operator"]: o["kernel_ms"] for o in r.top_operators}
    assert ops["aten::linear (backward)"] > ops["aten::linear"] > 0
    assert "aten::scaled_dot_product_attention (backward)" in ops
    assert not any(name.startswith("autograd::engine") for name in ops)
