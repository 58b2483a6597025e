"""Issue #13, the mechanisms one at a time: small hand-built traces whose right answer is known
by construction (the corpus tests in test_foreign_corpus.py check the same on real traces).

Each trace is built the way its producer writes it (category spellings, id fields, ordering), and
the expected numbers are computed here from the events, not read from traceparse's output.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import QWEN_TRAIN, ROOT, analysis
from traceparse.api import run_pipeline
from traceparse.errors import NotATraceError

Event = dict[str, Any]


def _x(cat: str, name: str, ts: float, dur: float, tid: int = 1, pid: int = 1, **args: Any) -> Event:
    return {"ph": "X", "cat": cat, "name": name, "pid": pid, "tid": tid, "ts": ts, "dur": dur, "args": args}


def _write(tmp: Path, events: list[Event], name: str = "t.json", array: bool = False, **top: Any) -> Path:
    path = tmp / name
    doc: Any = events if array else {"traceEvents": events, **top}
    data = json.dumps(doc).encode()
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def _old_era_trace() -> tuple[list[Event], list[float]]:
    """torch 1.8-1.10: "Operator"/"Runtime"/"Kernel"/"Memcpy" categories, lowercase "external id",
    ProfilerStep#N as an Operator. Two steps of three GPU items each."""
    events: list[Event] = []
    per_step: list[float] = []
    corr = 100
    for step in range(2):
        t0 = 1000.0 * step
        events.append(_x("Operator", f"ProfilerStep#{step + 3}", t0, 900.0))
        events.append(_x("Operator", "aten::mm", t0 + 10, 100.0, **{"external id": 10 + step}))
        total = 0.0
        for j, (cat, name, dur) in enumerate(
            (
                ("Kernel", "volta_sgemm_128x64_nn", 40.0),
                ("Kernel", "vectorized_elementwise_kernel", 5.0),
                ("Memcpy", "Memcpy DtoD (Device -> Device)", 3.0),
            )
        ):
            corr += 1
            events.append(
                _x("Runtime", "cudaLaunchKernel", t0 + 20 + j, 2.0, correlation=corr, **{"external id": 10 + step})
            )
            events.append(
                _x(
                    cat,
                    name,
                    t0 + 200 + 50 * j,
                    dur,
                    tid=7,
                    pid=0,
                    correlation=corr,
                    stream=7,
                    device=0,
                    **{"external id": 10 + step},
                )
            )
            total += dur
        per_step.append(total)
    return events, per_step


@pytest.mark.parametrize("array", [False, True], ids=["object form", "array form"])
def test_old_era_categories_give_kernels_and_steps(tmp_path: Path, array: bool) -> None:
    events, per_step = _old_era_trace()
    report = run_pipeline(_write(tmp_path, events, array=array)).report
    assert report.attribution == "operators"  # not "cpu": the Kernel/Memcpy events are GPU items
    assert report.general.steps == 2
    assert [s.number for s in report.steps] == [3, 4]
    assert [s.kernel_ms for s in report.steps] == pytest.approx([us / 1e3 for us in per_step])
    # The step marker is not taken for the op that launched the kernels.
    assert report.top_operators[0]["operator"] == "aten::mm"
    assert not any(o["operator"].startswith("ProfilerStep") for o in report.top_operators)


def test_unlaunched_items_before_the_first_launched_one_are_the_previous_step(tmp_path: Path) -> None:
    """An optimizer of the unprofiled step still running when ProfilerStep#2 begins: its kernels
    have no launch event in the trace and start before the step's own first kernel."""
    events = [_x("user_annotation", "ProfilerStep#2", 0.0, 1000.0), _x("cpu_op", "aten::mm", 100, 50)]
    events += [
        _x("kernel", "multi_tensor_apply_kernel", 5.0 + 10 * i, 8.0, tid=7, pid=0, stream=7, correlation=900 + i)
        for i in range(5)
    ]  # 40 µs of leftovers
    events += [
        _x("cuda_runtime", "cudaLaunchKernel", 110, 5, correlation=1),
        _x("kernel", "sm90_xmma_gemm_bf16", 200.0, 30.0, tid=7, pid=0, stream=7, correlation=1),
        # unlaunched but after the step's first launched item: kept (its start is inside the step)
        _x("kernel", "vectorized_elementwise_kernel", 260.0, 4.0, tid=7, pid=0, stream=7, correlation=950),
    ]
    report = run_pipeline(_write(tmp_path, events)).report
    assert report.general.kernel_ms == pytest.approx(0.034)
    assert report.general.kernel_ms <= report.general.wall_ms
    assert any("previous step" in n and "5 GPU items" in n for n in report.notes), report.notes


def test_backward_goes_to_the_op_that_created_the_node_not_an_earlier_one_sharing_its_number(tmp_path: Path) -> None:
    """zero_grad's `zero_` and the compiled forward share sequence number 7 (only node creation
    moves the counter): the backward kernels belong to the backward phase, not to zero_grad."""
    events = [
        _x("user_annotation", "ProfilerStep#1", 0.0, 10_000.0),
        _x("user_annotation", "Optimizer.zero_grad#AdamW.zero_grad", 10, 100),
        _x("cpu_op", "aten::zero_", 20, 30, **{"Sequence number": 7, "Fwd thread id": 0}),
        _x("cpu_op", "CompiledFunction", 200, 1000, **{"Sequence number": 7, "Fwd thread id": 0}),
        _x("cuda_runtime", "cudaLaunchKernel", 300, 5, correlation=1),
        _x("kernel", "triton_poi_fused_0", 400, 100, tid=7, pid=0, correlation=1),
        _x(
            "cpu_op",
            "autograd::engine::evaluate_function: CompiledFunctionBackward",
            2000,
            1000,
            tid=2,
            **{"Sequence number": 7, "Fwd thread id": 1},
        ),
        _x("cuda_runtime", "cudaLaunchKernel", 2100, 5, tid=2, correlation=2),
        _x("kernel", "triton_poi_fused_1", 2200, 300, tid=7, pid=0, correlation=2),
    ]
    report = run_pipeline(_write(tmp_path, events)).report
    assert report.top_operators[0] == {"operator": "CompiledFunction (backward)", "kernel_ms": 0.3, "items": 1.0}
    assert not any("zero_" in o["operator"] for o in report.top_operators)


def test_cuda_graph_gemms_make_flops_unknown_not_zero(tmp_path: Path) -> None:
    """Kernels replayed from a CUDA graph have no operator with shapes: 0.00 FLOPs beside ms of
    GEMMs would be wrong. The counted operators stay as a lower bound."""
    events = [
        _x("user_annotation", "ProfilerStep#1", 0.0, 5000.0),
        _x(
            "cpu_op",
            "aten::mm",
            10,
            50,
            **{"Input Dims": [[64, 128], [128, 256]], "Input type": ["c10::BFloat16", "c10::BFloat16"]},
        ),
        _x("cuda_runtime", "cudaLaunchKernel", 20, 5, correlation=1),
        _x("kernel", "nvjet_tst_64x8_64x16_2x1_v_bz_TNT", 100, 10, tid=7, pid=0, correlation=1),
        _x("cuda_runtime", "cudaGraphLaunch", 200, 20, correlation=2),
        *[
            _x("kernel", "sm90_xmma_gemm_bf16bf16_bf16f32", 300 + 200 * i, 150, tid=7, pid=0, correlation=2)
            for i in range(4)
        ],
    ]
    report = run_pipeline(_write(tmp_path, events)).report
    g = report.general
    assert g.flops is None and g.effective_tflops is None and g.mfu is None and g.kernel_tflops is None
    assert g.flops_counted == 2 * 64 * 128 * 256
    assert any("CUDA-graph replays" in n and "4 GPU items" in n for n in report.notes), report.notes


def test_effective_rate_divides_by_gpu_time_never_a_cpu_span(tmp_path: Path) -> None:
    """The CPU returns long before the GPU finishes: a 1 ms CPU forward launching 10 ms of GEMMs."""
    dims = {"Input Dims": [[4096, 4096], [4096, 4096]], "Input type": ["c10::BFloat16", "c10::BFloat16"]}
    events = [
        _x("user_annotation", "ProfilerStep#1", 0.0, 1000.0),
        _x("cpu_op", "aten::mm", 10, 20, **dims),
        _x("cuda_runtime", "cudaLaunchKernel", 15, 5, correlation=1),
        _x("kernel", "sm90_xmma_gemm_bf16", 100, 10_000, tid=7, pid=0, correlation=1),
    ]
    report = run_pipeline(_write(tmp_path, events, deviceProperties=[{"name": "NVIDIA H200"}])).report
    g = report.general
    flops = 2 * 4096**3
    assert g.flops == flops and g.effective_basis == "gpu_span_ms"
    assert g.effective_tflops == pytest.approx(flops / 10e-3 / 1e12)  # / 10 ms of GPU span, not the 1 ms step
    assert g.effective_tflops <= g.kernel_tflops
    assert 0 < g.mfu <= 1


def test_an_impossible_mfu_is_null_with_a_note() -> None:
    """A peak far below what the run achieved (as an FP8 run against a bf16 peak would be)."""
    g = analysis(QWEN_TRAIN).report.general
    assert g.mfu is not None and g.effective_tflops is not None
    report = run_pipeline(QWEN_TRAIN, peak_tflops=g.effective_tflops / 2).report
    assert report.general.mfu is None
    assert any("MFU would be 200.0 %" in n for n in report.notes), report.notes


def test_a_chrome_trace_of_another_framework_is_refused(tmp_path: Path) -> None:
    """A TensorFlow profiler trace: Chrome format, but none of torch.profiler's categories."""
    events = [_x("Op", "MatMul", 10.0 * i, 5.0, pid=3) for i in range(10)]
    events += [{"ph": "M", "name": "process_name", "pid": 3, "args": {"name": "/device:GPU:0 Compute"}}]
    with pytest.raises(NotATraceError, match=r"not a torch.profiler trace.*Op ×10"):
        run_pipeline(_write(tmp_path, events))


def test_other_device_types_are_named(tmp_path: Path) -> None:
    events = [
        _x("user_annotation", "ProfilerStep#1", 0.0, 1000.0),
        _x("cpu_op", "aten::add", 10, 20),
        _x("mtia_ccp_events", "mtia_kernel_0", 100, 50, pid=9),
    ]
    report = run_pipeline(_write(tmp_path, events)).report
    assert any("mtia_ccp_events ×1" in n for n in report.notes), report.notes


def _scoped(qual: str, cls: str, ts: float, dur: float) -> Event:
    return _x("user_annotation", f"{qual} ({cls})", ts, dur)


def test_every_block_stack_is_found_and_the_busiest_is_shown(tmp_path: Path) -> None:
    """An SD3-like pipeline: a 12-layer text encoder with little GPU time, then a 4-block
    diffusion transformer run 3 times with most of it."""
    events = [_x("user_annotation", "ProfilerStep#1", 0.0, 100_000.0), _scoped("pipe", "Pipeline", 1, 99_000)]
    t, corr = 10.0, 0
    gpu_t = 10.0

    def block(qual: str, cls: str, inner: list[tuple[str, str]], kernel_us: float) -> None:
        nonlocal t, corr, gpu_t
        events.append(_scoped(qual, cls, t, 100))
        for k, (sub, sub_cls) in enumerate(inner):
            events.append(_scoped(f"{qual}.{sub}", sub_cls, t + 1 + 40 * k, 30))
            events.append(_x("cpu_op", "aten::mm", t + 2 + 40 * k, 20))
            corr += 1
            events.append(_x("cuda_runtime", "cudaLaunchKernel", t + 3 + 40 * k, 5, correlation=corr))
            events.append(_x("kernel", "sm90_gemm", gpu_t, kernel_us, tid=7, pid=0, correlation=corr))
            gpu_t += kernel_us + 1
        t += 101

    for i in range(12):
        block(
            f"text_encoder.text_model.encoder.layers.{i}",
            "CLIPEncoderLayer",
            [("self_attn", "CLIPAttention"), ("mlp", "CLIPMLP")],
            2.0,
        )
    for _ in range(3):
        for i in range(4):
            block(
                f"transformer.transformer_blocks.{i}",
                "JointTransformerBlock",
                [("attn", "Attention"), ("ff", "FeedForward")],
                500.0,
            )
    report = run_pipeline(_write(tmp_path, events)).report
    assert [b.index for b in report.blocks] == [0, 1, 2, 3]
    assert {b.kind for b in report.blocks} == {"decoder"}
    stacks = {s["container"]: s for s in report.block_stacks}
    assert list(stacks) == ["transformer.transformer_blocks", "text_encoder.text_model.encoder.layers"]
    assert stacks["text_encoder.text_model.encoder.layers"]["blocks"] == 12
    assert stacks["text_encoder.text_model.encoder.layers"]["kinds"] == {"encoder": 12}
    assert stacks["transformer.transformer_blocks"]["gpu_ms"] == pytest.approx(3 * 4 * 2 * 0.5)
    assert any("2 repeated block stacks" in n for n in report.notes)


def test_a_repeated_run_is_layers_not_its_multiples() -> None:
    from traceparse.inferred_blocks import repeated_run

    layer = [5, 6, 7, 8, 9, 6]
    seq = np.array([1, 2] + layer * 4 + [3, 4])
    assert repeated_run(seq) == (2, 6, 4)  # the period, not twice it; head and tail left out
    assert repeated_run(np.array([1, 2, 3, 4, 5, 6, 7, 8])) is None


def test_iterations_of_a_model_are_not_taken_for_its_layers() -> None:
    """AlexNet run twice in a trace without steps: the repeat is the whole model."""
    r = run_pipeline(ROOT / "fixtures/foreign/hta-alexnet-benchmark_result_2869224_1695835535_trace.json.gz").report
    assert r.blocks == []
