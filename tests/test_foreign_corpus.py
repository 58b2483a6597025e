"""Issue #13: right on the traces people already have — the foreign corpus.

`fixtures/foreign/` holds real Kineto traces written by other people (HTA, TraceLens, kineto,
param: torch 1.8 to now, CUDA and ROCm, training and inference, graph replays, compile, ranks;
SOURCES.md). `reference.json` beside them was computed by `scripts/reference_figures.py`, a
stdlib-only script that shares no code with traceparse: per ProfilerStep, the GPU items whose
launch call lies in the step, the unlaunched ones that start in it, and those of them that start
before the step's first launched item (the previous step's tail). Every test here compares
traceparse's report with those figures, or checks an invariant no report may break.
"""

from __future__ import annotations

import gzip
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from traceparse.api import run_pipeline
from traceparse.errors import NotATraceError
from traceparse.kernels import family_of
from traceparse.report import Report

FOREIGN = ROOT / "fixtures" / "foreign"
REFERENCE: dict[str, dict[str, Any]] = json.loads((FOREIGN / "reference.json").read_text())
KINETO = sorted(name for name in REFERENCE if not name.startswith("not-kineto/"))
NOT_KINETO = sorted(p.name for p in (FOREIGN / "not-kineto").iterdir())


@cache
def report(name: str) -> Report:
    return run_pipeline(FOREIGN / name).report


def test_the_corpus_is_what_the_issue_asks() -> None:
    """≥ 30 traces, ≤ 15 MB, torch 1.8 to now, CUDA and ROCm, graphs, compile, several ranks."""
    assert len(KINETO) >= 30
    assert sum(p.stat().st_size for p in FOREIGN.rglob("*") if p.is_file()) <= 15 * 2**20
    ref = [REFERENCE[n] for n in KINETO]
    assert {"old", "new", "rocm"} <= {r["producer"] for r in ref}
    assert sum(r["has_graph_launch"] for r in ref) >= 3
    assert sum(r["has_compiled_region"] for r in ref) >= 2
    assert sum(bool(r["rank"] is not None and (r["world_size"] or 0) > 1) for r in ref) >= 5
    assert sum(r["form"] == "array" for r in ref) >= 1
    listed = (FOREIGN / "SOURCES.md").read_text()
    for name in KINETO + [f"not-kineto/{n}" for n in NOT_KINETO]:
        assert f"`{name}`" in listed, name


def _expected_step_us(step: dict[str, Any]) -> float:
    """The reference's GPU time of a step: launched in it, plus unlaunched items that start in it
    and are not the previous step's tail."""
    return float(step["gpu_us_launched"] + step["unlinked_us"] - step["tail_us"])


@pytest.mark.parametrize("name", KINETO)
def test_per_step_gpu_time_is_the_independent_sum(name: str) -> None:
    ref, r = REFERENCE[name], report(name)
    if not ref["gpu_count"]:
        assert r.attribution == "cpu"  # no GPU items at all: CPU self times, said so
        assert any("CPU-only trace" in n for n in r.notes)
        return
    ours = {s.number: s.kernel_ms * 1e3 for s in r.steps}
    if not ref["steps"]:
        assert list(ours) == [None] and any("No ProfilerStep#" in n for n in r.notes)
        assert ours[None] == pytest.approx(ref["gpu_us"], rel=1e-9, abs=1e-6)
        return
    for step in ref["steps"]:
        if step["n"] not in ours:  # dropped: only an incomplete last step, and the report says so
            assert step is ref["steps"][-1], (step["n"], list(ours))
            assert any("incomplete ProfilerStep" in n for n in r.notes)
            continue
        assert ours[step["n"]] == pytest.approx(_expected_step_us(step), rel=1e-9, abs=1e-6), step["n"]
    if any(s["tail_count"] for s in ref["steps"] if s["n"] in ours):
        assert any("work of the previous step" in n for n in r.notes), r.notes


@pytest.mark.parametrize("name", KINETO)
def test_no_headline_figure_breaks_an_invariant(name: str) -> None:
    r = report(name)
    g = r.general
    assert r.attribution in ("scopes", "with_stack", "operators", "cpu")
    if g.mfu is not None:
        assert 0 < g.mfu <= 1.0
    for b in r.blocks:
        assert b.mfu is None or 0 < b.mfu <= 1.0
    # unknown is null, never 0
    for value in (g.flops, g.effective_tflops, g.kernel_tflops, g.mfu):
        assert value is None or value > 0
    if g.effective_tflops is not None and g.effective_basis == "gpu_span_ms":
        assert g.kernel_tflops is not None and g.effective_tflops <= g.kernel_tflops * (1 + 1e-9)
    if g.gpu_idle_pct is not None:
        assert 0.0 <= g.gpu_idle_pct <= 100.0
    for s in r.steps:
        if s.gpu_busy_ms is not None and s.gpu_span_ms is not None:
            assert s.gpu_busy_ms <= s.gpu_span_ms * (1 + 1e-9) + 1e-9
            # µs-epoch timestamps (~1.7e15) carry up to ~0.25 µs of float error per item end
            assert s.gpu_busy_ms <= s.kernel_ms + s.items * 0.5e-3
    if not REFERENCE[name]["has_input_dims"]:
        assert g.flops is None and g.flops_counted is None


@pytest.mark.parametrize("name", NOT_KINETO)
def test_files_kept_beside_traces_are_refused(name: str) -> None:
    with pytest.raises(NotATraceError):
        run_pipeline(FOREIGN / "not-kineto" / name)


def _kernel_names(path: Path) -> set[str]:
    """Read independently of traceparse's loader: plain json."""
    doc = json.loads(gzip.decompress(path.read_bytes()))
    events = doc if isinstance(doc, list) else doc["traceEvents"]
    return {e["name"] for e in events if e.get("ph") == "X" and str(e.get("cat", "")).lower() == "kernel"}


# Kernels that are "other" for a stated reason: each name here was looked at.
OTHER_WITH_A_REASON = (
    (re.compile(r"spin_kernel"), "torch.cuda._sleep: a busy-wait, no work"),
    (re.compile(r"^Kernel$"), "a kernel without a name (kineto docs' sample trace)"),
    (re.compile(r"compute_cuda_kernel<long>"), "an unnamed custom kernel of a test trace (HTA)"),
)


def test_every_corpus_kernel_has_a_family_or_a_reason() -> None:
    unexplained = set()
    for name in KINETO:
        for kernel in _kernel_names(FOREIGN / name):
            if family_of(kernel) == "other" and not any(p.search(kernel) for p, _ in OTHER_WITH_A_REASON):
                unexplained.add(kernel)
    assert not unexplained, sorted(unexplained)[:20]


def test_old_era_training_is_split_into_forward_and_backward() -> None:
    """torch 1.9 named autograd nodes plainly ("CudnnConvolutionBackward"), with no
    `autograd::engine::evaluate_function:` around them."""
    r = report("kineto-resnet50_nw0-worker0.1623143089861.pt.trace.json.gz")
    phases = {p.phase: p.kernel_ms for p in r.phases}
    assert r.general.mode == "train"
    assert phases["backward"] > phases["forward"] > 0
    # The phases add up to the GPU time of the step.
    assert sum(phases.values()) == pytest.approx(r.general.kernel_ms)


def test_graph_replays_and_compiled_kernels_have_unknown_flops() -> None:
    """vLLM full-graph decode: 83 % of the time is GEMM/attention replayed from CUDA graphs."""
    r = report("tl-vllm_decode_full-graph_execution.json.gz")
    assert r.general.flops is None and r.general.mfu is None
    assert r.general.flops_counted is not None and r.general.flops_counted > 0
    assert any("CUDA-graph replays" in n for n in r.notes)


def test_old_convolutions_without_concrete_inputs_are_not_guessed() -> None:
    """torch 1.9 recorded no stride or padding: convolution FLOPs are unknown, not stride-1 guesses."""
    r = report("kineto-resnet50_nw0-worker0.1623143089861.pt.trace.json.gz")
    assert r.general.flops is None
    assert r.general.flops_counted is not None and r.general.flops_counted < 1e9  # the fc layer's GEMMs only


def test_a_gpu_that_lags_the_cpu_gives_no_negative_idle() -> None:
    r = report("hta-ns_resolution-rank-0.Apr_03_18_51_38.1102.pt.trace.json.gz")
    assert r.general.gpu_idle_pct is not None and r.general.gpu_idle_pct >= 0
    assert any("GPU lags the CPU" in n for n in r.notes)


@pytest.mark.parametrize("name", [n for n in KINETO if REFERENCE[n]["gpu_count"] and REFERENCE[n]["steps"]])
def test_kernel_time_is_split_from_copies_as_a_viewer_counts_it(name: str) -> None:
    """TensorBoard's "Kernel" time excludes memcpy/memset: the report shows both, and they add up."""
    ref, g = REFERENCE[name], report(name).general
    assert g.kernels_only_ms is not None and g.memcpy_ms is not None and g.memset_ms is not None
    assert g.kernels_only_ms + g.memcpy_ms + g.memset_ms == pytest.approx(g.kernel_ms, rel=1e-9, abs=1e-9)
    kept = [s for s in ref["steps"] if s["n"] in {r.number for r in report(name).steps}]
    if all(s["unlinked_count"] == 0 for s in kept):
        expected = sum(s["kernel_us_launched"] for s in kept) / len(kept)
        assert g.kernels_only_ms * 1e3 == pytest.approx(expected, rel=1e-9, abs=1e-6)
