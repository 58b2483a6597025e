"""analyze on real H200 traces: blocks, kinds, per-step averaging, counts, the invariant."""

from __future__ import annotations

import gzip
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import LLAMA_4L, NEMOTRON_8L, NEMOTRON_9B, USER_STACK, USER_TRAIN, analysis
from traceparse.capture.presets import NEMOTRON_9B_PATTERN

KIND_OF_CHAR = {"M": "mamba", "-": "mlp", "*": "attention"}


def _raw(path: Path) -> dict:
    with gzip.open(path) as fh:
        return json.load(fh)


def test_nemotron_9b_blocks_and_kinds_follow_the_hybrid_pattern() -> None:
    report = analysis(NEMOTRON_9B).report
    assert report.general.num_blocks == 56
    assert [b.kind for b in report.blocks] == [KIND_OF_CHAR[c] for c in NEMOTRON_9B_PATTERN]
    assert [b.index for b in report.blocks if b.kind == "attention"] == [14, 21, 30, 39]
    assert report.attribution == "scopes"


def test_counts_are_per_step_not_summed_over_steps() -> None:
    report = analysis(NEMOTRON_9B).report
    assert report.general.steps == 3
    types = {t.type: t for t in report.module_types}
    # 27 mixers × (in_proj, out_proj) + 25 MLPs × (up, down) + 4 attention × (q, k, v, o) + lm_head
    assert types["Linear"].count == 27 * 2 + 25 * 2 + 4 * 4 + 1 == 121
    assert types["NemotronHRMSNorm"].count == 57  # one per block + the final norm
    assert types["NemotronHMamba2Mixer"].count == 27
    assert all(m.calls == 1 for m in report.slowest_modules)


def test_per_step_kernel_time_is_the_mean_of_independent_per_step_sums() -> None:
    """Recompute kernel ms per step with plain json: kernels grouped by the step their launch is in."""
    raw = _raw(NEMOTRON_8L)["traceEvents"]
    steps = sorted(
        (e["ts"], e["ts"] + e["dur"]) for e in raw if e.get("cat") == "user_annotation" and "ProfilerStep#" in e["name"]
    )
    launch_ts = {e["args"]["correlation"]: e["ts"] for e in raw if e.get("cat") in ("cuda_runtime", "cuda_driver")}
    per_step = [0.0] * len(steps)
    for e in raw:
        if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"):
            t = launch_ts[e["args"]["correlation"]]
            for i, (s0, s1) in enumerate(steps):
                if s0 <= t <= s1:
                    per_step[i] += e["dur"]
    report = analysis(NEMOTRON_8L).report
    assert report.general.steps == len(steps) == 3
    assert report.general.kernel_ms == pytest.approx(np.mean(per_step) / 1e3, rel=1e-9)
    assert report.general.wall_ms == pytest.approx(np.mean([b - a for a, b in steps]) / 1e3, rel=1e-9)


def test_invariant_self_plus_unattributed_equals_total() -> None:
    for path in (NEMOTRON_9B, NEMOTRON_8L, LLAMA_4L, USER_STACK, USER_TRAIN):
        a = analysis(path)
        a.attribution.self_check()
        total = a.attribution.total_us()
        parts = a.attribution.self_us().sum() + a.attribution.unattributed_us()
        assert parts == pytest.approx(total, rel=1e-12)
    r = analysis(NEMOTRON_9B).report
    type_self = sum(t.self_ms for t in r.module_types)
    assert type_self + r.general.unattributed_ms == pytest.approx(r.general.kernel_ms, rel=1e-9)


def test_block_gpu_time_agrees_with_a_simpler_independent_computation() -> None:
    """Second method, plain json: a block's kernels are those launched (runtime call on the same
    thread) while its scope was open; no nesting forest, no attribution code."""
    raw = _raw(NEMOTRON_8L)["traceEvents"]
    block_re = re.compile(r"^model\.layers\.(\d+) \(")
    scopes = [
        (int(m.group(1)), e["tid"], e["ts"], e["ts"] + e["dur"])
        for e in raw
        if e.get("ph") == "X" and (m := block_re.match(e.get("name", "")))
    ]
    kernel_dur = {
        e["args"]["correlation"]: e["dur"] for e in raw if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")
    }
    per_block: dict[int, float] = defaultdict(float)
    for e in raw:
        if e.get("cat") in ("cuda_runtime", "cuda_driver") and e["args"]["correlation"] in kernel_dur:
            for block, tid, s0, s1 in scopes:
                if tid == e["tid"] and s0 <= e["ts"] <= s1:
                    per_block[block] += kernel_dur[e["args"]["correlation"]]
    report = analysis(NEMOTRON_8L).report
    assert len(report.blocks) == 8
    for b in report.blocks:
        assert b.gpu_ms == pytest.approx(per_block[b.index] / 3 / 1e3, rel=0.01)


def test_mamba_mixer_self_time_dominates_the_9b_forward() -> None:
    """What the seed report hid: most GPU time is the Mamba2 mixers' own kernels, outside Linear."""
    r = analysis(NEMOTRON_9B).report
    types = {t.type: t for t in r.module_types}
    mixer_self_share = types["NemotronHMamba2Mixer"].self_ms / r.general.kernel_ms
    linear_share = types["Linear"].self_ms / r.general.kernel_ms
    assert mixer_self_share > 0.9
    assert linear_share < 0.05
    families = {f.family: f.kernel_ms for f in r.kernel_families}
    assert (families["elementwise"] + families["reduction"]) / r.general.kernel_ms > 0.9
    assert r.slowest_modules[0].type == "NemotronHMamba2Mixer"


def test_gpu_busy_and_wall_time_are_reported_separately() -> None:
    g = analysis(LLAMA_4L).report.general
    assert g.gpu_busy_ms is not None and g.wall_ms is not None
    assert g.gpu_busy_ms <= g.kernel_ms + 1e-9  # union never exceeds the sum
    assert g.gpu_busy_ms < g.wall_ms  # launch-bound at 215 tokens: GPU idles
    assert g.gpu_idle_pct == pytest.approx(100 * (1 - g.gpu_busy_ms / g.wall_ms))
    assert g.forward_ms_uninstrumented is not None and g.forward_ms_scopes is not None


def test_foreign_with_stack_trace_uses_nn_module_events() -> None:
    r = analysis(USER_STACK).report
    assert r.attribution == "with_stack"
    assert r.general.num_blocks == 4
    assert {b.kind for b in r.blocks} == {"decoder"}
    assert all(b.name.startswith("Qwen3DecoderLayer_") for b in r.blocks)
    assert r.general.params is None and r.general.model is None  # unknown, not 0
    assert any("with_stack" in n for n in r.notes)


def test_foreign_trace_without_scopes_falls_back_to_operators() -> None:
    r = analysis(USER_TRAIN).report
    assert r.attribution == "operators"
    assert r.blocks == [] and r.module_types == []
    assert r.top_operators and r.top_operators[0]["kernel_ms"] > 0
    assert any("falls back to operators" in n for n in r.notes)
    assert {p.phase for p in r.phases} >= {"forward", "backward", "optimizer"}


def test_json_contract() -> None:
    d = analysis(NEMOTRON_9B).report.to_dict()
    assert d["schema"] == "traceparse.report/1"
    for key in (
        "model", "device", "steps", "hidden_size", "seq_len", "batch_size", "num_blocks", "params",
        "params_linear", "kernel_ms", "gpu_busy_ms", "wall_ms", "forward_ms_uninstrumented", "flops",
        "effective_tflops", "kernel_tflops", "mfu", "flop_coverage", "attention_flops",
    ):  # fmt: skip
        assert key in d["general"], key
    assert set(d["blocks"][0]) >= {"index", "name", "kind", "gpu_ms", "self_ms", "flops", "tflops", "params"}
    assert set(d["module_types"][0]) >= {"type", "count", "total_ms", "mean_ms", "self_ms"}
    assert set(d["slowest_modules"][0]) >= {"name", "type", "self_ms", "inclusive_ms", "calls"}
    assert set(d["kernel_families"][0]) >= {"family", "kernel_ms", "count"}
    assert d["attribution"] == "scopes" and "unattributed_ms" in d
    assert len(d["slowest_modules"]) == 20
    json.dumps(d, allow_nan=False)
