"""The report's tables as (title, headers, rows): computed once for every text format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from traceparse.render.i18n import col, t
from traceparse.report import Report


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    headers: list[str]
    rows: list[list[Any]]


def _num(v: float | None, fmt: str = "{:.3f}", unknown: str = "unknown") -> str:
    return unknown if v is None else fmt.format(v)


def _int(v: int | None, unknown: str) -> str:
    return unknown if v is None else f"{v:,}".replace(",", " ")


def general_rows(r: Report, lang: str) -> list[list[str]]:
    g = r.general
    u = t(lang, "unknown")
    model = g.model if g.model else u
    if g.model_class and g.model:
        model = f"{g.model} ({g.model_class})"
    rows = [
        ["model", model],
        ["device", g.device or u],
        ["steps", str(g.steps)],
        ["hidden_size", _int(g.hidden_size, u)],
        ["seq_len", _int(g.seq_len, u)],
        ["batch_size", _int(g.batch_size, u)],
        ["num_blocks", str(g.num_blocks)],
        ["params", _int(g.params, u)],
        ["params_linear", _int(g.params_linear, u)],
        ["kernel_ms", f"{g.kernel_ms:.3f} ms"],
        *(
            [["kernel_split", f"{g.kernels_only_ms:.3f} / {g.memcpy_ms:.3f} / {g.memset_ms:.3f} ms"]]
            if g.kernels_only_ms is not None and g.memcpy_ms is not None and g.memset_ms is not None
            else []
        ),
        ["gpu_busy_ms", _num(g.gpu_busy_ms, "{:.3f} ms", u)],
        ["gpu_span_ms", _num(g.gpu_span_ms, "{:.3f} ms", u)],
        [
            "wall_ms",
            f"{_num(g.wall_ms, '{:.3f}', u)} ms ({_num(g.wall_ms_min, '{:.3f}', u)}–"
            f"{_num(g.wall_ms_max, '{:.3f}', u)})",
        ],
        ["forward_ms_profiled", _num(g.forward_ms_profiled, "{:.3f} ms", u)],
        ["forward_ms_uninstrumented", _num(g.forward_ms_uninstrumented, "{:.3f} ms", u)],
        ["forward_ms_scopes", _num(g.forward_ms_scopes, "{:.3f} ms", u)],
        ["step_ms_uninstrumented", _num(g.step_ms_uninstrumented, "{:.3f} ms", u)],
        ["gpu_idle_pct", _num(g.gpu_idle_pct, "{:.1f} %", u)],
        ["flops", _num(None if g.flops is None else g.flops / 1e9, "{:.2f} GFLOPs", u)],
        *(
            [["flops_counted", _num(g.flops_counted / 1e9, "{:.2f} GFLOPs", u)]]
            if g.flops is None and g.flops_counted is not None
            else []
        ),
        ["flops_analytic", _num(None if g.flops_analytic is None else g.flops_analytic / 1e9, "{:.2f} GFLOPs", u)],
        [
            "flops_elementwise",
            _num(None if g.flops_elementwise is None else g.flops_elementwise / 1e9, "{:.2f} GFLOPs", u),
        ],
        [
            "effective_tflops",
            _num(g.effective_tflops, "{:.2f} TFLOP/s", u) + (f" (/{g.effective_basis})" if g.effective_basis else ""),
        ],
        ["kernel_tflops", _num(g.kernel_tflops, "{:.2f} TFLOP/s", u)],
        [
            "mfu",
            _num(None if g.mfu is None else 100 * g.mfu, "{:.1f} %", u)
            + (f" (peak {g.peak_tflops:.0f} TFLOP/s {g.dtype})" if g.peak_tflops and g.dtype else ""),
        ],
        ["flop_coverage", _num(None if g.flop_coverage is None else 100 * g.flop_coverage, "{:.1f} %", u)],
        ["attention_flops", f"{g.attention_flops}, backward {g.attention_backward:g}× forward"],
        ["unattributed_ms", f"{g.unattributed_ms:.3f} ms"],
        ["attribution", r.attribution],
    ]
    return [[t(lang, k), v] for k, v in rows]


def sections(r: Report, lang: str = "en") -> list[Section]:
    u = t(lang, "unknown")
    out = [Section("general", t(lang, "general"), ["", ""], general_rows(r, lang))]
    if r.blocks:
        out.append(
            Section(
                "blocks",
                t(lang, "blocks"),
                [
                    col(lang, h)
                    for h in [
                        "block",
                        "kind",
                        "gpu ms",
                        "share %",
                        "GFLOPs",
                        "TFLOP/s",
                        "MFU %",
                        "coverage %",
                        "params",
                    ]
                ],
                [
                    [
                        b.index,
                        b.kind,
                        f"{b.gpu_ms:.3f}",
                        f"{b.share_pct:.1f}",
                        _num(None if b.flops is None else b.flops / 1e9, "{:.2f}", u),
                        _num(b.tflops, "{:.2f}", u),
                        _num(None if b.mfu is None else 100 * b.mfu, "{:.1f}", u),
                        _num(None if b.flop_coverage is None else 100 * b.flop_coverage, "{:.0f}", u),
                        _int(b.params, u),
                    ]
                    for b in r.blocks
                ],
            )
        )
    if len(r.steps) > 1:
        out.append(
            Section(
                "steps",
                t(lang, "step_table"),
                [col(lang, h) for h in ["step", "wall ms", "kernel ms", "busy ms", "span ms", "items"]],
                [
                    [
                        "" if s.number is None else s.number,
                        f"{s.wall_ms:.3f}",
                        f"{s.kernel_ms:.3f}",
                        _num(s.gpu_busy_ms, "{:.3f}", u),
                        _num(s.gpu_span_ms, "{:.3f}", u),
                        s.items,
                    ]
                    for s in r.steps
                ],
            )
        )
    if len([p for p in r.phases]) > 1:
        out.append(
            Section(
                "phases",
                t(lang, "phases"),
                [col(lang, h) for h in ["phase", "kernel ms", "GFLOPs", "unattributed ms"]],
                [
                    [
                        p.phase,
                        f"{p.kernel_ms:.3f}",
                        _num(None if p.flops is None else p.flops / 1e9, "{:.2f}", u),
                        f"{p.unattributed_ms:.3f}",
                    ]
                    for p in r.phases
                ],
            )
        )
    if r.generation:
        out.append(Section("generation", t(lang, "generation"), ["", ""], _generation_rows(r.generation, u)))
    if r.module_types:
        out.append(
            Section(
                "module_types",
                t(lang, "types"),
                [col(lang, h) for h in ["type", "calls/step", "total ms", "mean ms", "self ms", "self share %"]],
                [
                    [
                        m.type,
                        f"{m.count:g}",
                        f"{m.total_ms:.3f}",
                        f"{m.mean_ms:.4f}",
                        f"{m.self_ms:.3f}",
                        f"{m.self_share_pct:.1f}",
                    ]
                    for m in r.module_types
                ],
            )
        )
    if r.slowest_modules:
        out.append(
            Section(
                "slowest_modules",
                t(lang, "slowest", n=len(r.slowest_modules)),
                [col(lang, h) for h in ["module", "type", "self ms", "inclusive ms", "calls/step"]],
                [
                    [m.name, m.type, f"{m.self_ms:.3f}", f"{m.inclusive_ms:.3f}", f"{m.calls:g}"]
                    for m in r.slowest_modules
                ],
            )
        )
    if r.top_operators:
        out.append(
            Section(
                "top_operators",
                t(lang, "operators"),
                ["operator", "ms", "items/step"],
                [[o["operator"], f"{o['kernel_ms']:.3f}", f"{o['items']:g}"] for o in r.top_operators],
            )
        )
    kinds = sorted({k for f in r.kernel_families for k in f.by_block_kind})
    out.append(
        Section(
            "kernel_families",
            t(lang, "families"),
            [col(lang, h) for h in ["family", "kernel ms", "share %", "count/step"]] + [f"{k} ms" for k in kinds],
            [
                [f.family, f"{f.kernel_ms:.3f}", f"{f.share_pct:.1f}", f"{f.count:g}"]
                + [f"{f.by_block_kind.get(k, 0.0):.3f}" for k in kinds]
                for f in r.kernel_families
            ],
        )
    )
    return out


_GENERATION_FIELDS = (
    ("decode_steps_per_step", "{:g}"),
    ("prefill_ms", "{:.3f} ms"),
    ("prefill_gpu_ms", "{:.3f} ms"),
    ("decode_ms_median", "{:.3f} ms"),
    ("decode_ms_p90", "{:.3f} ms"),
    ("decode_gpu_ms_median", "{:.3f} ms"),
    ("decode_gpu_ms_p90", "{:.3f} ms"),
    ("decode_tflops", "{:.3f} TFLOP/s"),
    ("decode_bandwidth_gbps", "{:.1f} GB/s"),
    ("decode_bandwidth_gpu_gbps", "{:.1f} GB/s"),
)


def _generation_rows(gen: dict[str, Any], unknown: str) -> list[list[Any]]:
    rows: list[list[Any]] = [[k, _num(gen.get(k), fmt, unknown)] for k, fmt in _GENERATION_FIELDS]
    rows += [[f"block {b['index']} decode ms/token", f"{b['ms_per_token']:.4f}"] for b in gen["decode_block_ms"]]
    return rows
