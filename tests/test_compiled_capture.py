"""`capture --compile` on the CPU: Inductor's provenance recorded per call site, and analyze
recovering module calls under the compiled blocks from it.

The CPU's generated C++ kernels launch no op of their own, so on the CPU only the extern GEMMs
(ATen ops inside the compiled graph call) can be recovered; the GPU fixtures
(tests/test_compiled_h200.py) check the Triton side.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from traceparse.api import run_pipeline  # noqa: E402
from traceparse.capture.compiled import relative_path  # noqa: E402
from traceparse.capture.options import CaptureOptions  # noqa: E402
from traceparse.errors import UsageError  # noqa: E402
from traceparse.recover.compiled import site_op_name  # noqa: E402
from traceparse.recover.synth import chain_below, common_path  # noqa: E402


def test_dynamo_paths_become_module_names() -> None:
    assert relative_path("L['self'].self_attn.q_proj") == "self_attn.q_proj"
    assert relative_path("L['self'].model.layers[3].mlp") == "model.layers.3.mlp"
    assert relative_path("L['self']._modules['model']._modules['layers'][0]") == "model.layers.0"
    assert relative_path("getattr(L['self'].model.layers, '7').mlp") == "model.layers.7.mlp"
    assert relative_path("L['self']") == ""


def test_site_names_and_paths() -> None:
    assert site_op_name("extern_kernels.mm") == "aten::mm"
    assert site_op_name("torch.ops.aten._scaled_dot_product_cudnn_attention.default") == (
        "aten::_scaled_dot_product_cudnn_attention"
    )
    assert site_op_name("triton_poi_fused_mul_silu_7") == "triton_poi_fused_mul_silu_7"
    assert common_path(["mlp.gate_proj", "mlp.up_proj", "mlp.act_fn"]) == "mlp"
    assert common_path(["post_attention_layernorm", "self_attn.o_proj"]) == ""
    classes = {"model.layers.0": "Block", "model.layers.0.mlp": "MLP", "model.layers.0.mlp.up_proj": "Linear"}
    assert chain_below("model.layers.0", "model.layers.0.mlp.up_proj", classes) == (
        ("model.layers.0.mlp", "MLP"),
        ("model.layers.0.mlp.up_proj", "Linear"),
    )
    assert chain_below("", "model.layers.0", classes) == (
        ("model", "?"),
        ("model.layers", "?"),
        ("model.layers.0", "Block"),
    )


def test_compile_options_are_checked() -> None:
    with pytest.raises(UsageError, match="--compile must be one of"):
        CaptureOptions(preset="llama-3.1-8b-tiny", compile="fast").validate()
    with pytest.raises(UsageError, match="--compile-scope"):
        CaptureOptions(preset="llama-3.1-8b-tiny", compile="default", compile_scope="layer").validate()
    with pytest.raises(UsageError, match="already replays CUDA graphs"):
        CaptureOptions(preset="llama-3.1-8b-tiny", compile="reduce-overhead", cuda_graphs=True).validate()
    with pytest.raises(UsageError, match="forward or generate"):
        CaptureOptions(preset="llama-3.1-8b-tiny", mode="train", cuda_graphs=True).validate()


@pytest.fixture(scope="module")
def compiled_blocks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Captured in a child process: torch.compile leaves Inductor's compile threads behind, and a
    process with other threads must not fork the loader's workers (later tests need them)."""
    out = tmp_path_factory.mktemp("compiled")
    cmd = [sys.executable, "-m", "traceparse", "capture", "--preset", "llama-3.1-8b-tiny", "--seq-len", "32"]
    cmd += ["--steps", "2", "--compile", "default", "-o", str(out), "--name", "tiny", "--no-report", "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return out / "tiny.pt.trace.json.gz"


def test_blocks_compile_records_one_site_per_kernel_call(compiled_blocks: Path) -> None:
    analysis = run_pipeline(compiled_blocks)
    comp = analysis.trace.metadata["compile"]
    assert comp["mode"] == "default" and comp["scope"] == "blocks" and comp["regions"] == 3
    assert comp["warmup"][0]["stable"]
    # The three blocks share one compiled graph (parameters are its inputs): one inference graph.
    graphs = [g for g in comp["graphs"] if not g["backward"]]
    assert len(graphs) == 1
    paths = [comp["modules"][i][0] for _, mods in graphs[0]["sites"] for i in mods]
    # Relative to the block, the seven projections of a Llama block each own an extern GEMM.
    gemm_sites = [mods for kernel, mods in graphs[0]["sites"] if kernel == "extern_kernels.mm"]
    gemm_paths = sorted(comp["modules"][m[0]][0] for m in gemm_sites)
    assert gemm_paths == sorted(
        [
            *("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
            *("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
        ]
    )
    assert "input_layernorm" in paths


def test_blocks_compile_recovers_the_linear_calls(compiled_blocks: Path) -> None:
    """Every Linear of the model is called once per forward, compiled or not: 7 per block in 3
    blocks plus lm_head, the count the eager capture's scopes give."""
    report = run_pipeline(compiled_blocks).report
    types = {t.type: t for t in report.module_types}
    assert types["Linear"].count == 22
    assert types["LlamaDecoderLayer"].count == 3
    assert [b.index for b in report.blocks] == [0, 1, 2]
    assert any("Compiled regions" in n and "6 of 6 graph calls matched" in n for n in report.notes), report.notes
