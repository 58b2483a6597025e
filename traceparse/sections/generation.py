"""Generation: prefill time and per-token decode time, TFLOP/s and bandwidth (generate traces).

The numbers come from `traceparse.generation.generation_summary` (shared with the phases section,
whose prefill/decode rows it also returns).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from traceparse.report import Report
from traceparse.sections.base import Column, SectionSpec, TableSpec, kv_value, num
from traceparse.sections.context import Context

_FIELDS = (
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


def compute(ctx: Context, _done: Mapping[str, Any]) -> dict[str, Any] | None:
    return ctx.generation[0]


def _rows(report: Report, lang: str) -> list[tuple[str, Any]]:
    gen = report.generation or {}
    rows: list[tuple[str, Any]] = [(k, lambda u, k=k, fmt=fmt: num(gen.get(k), fmt, u)) for k, fmt in _FIELDS]
    block = _BLOCK_ROW.get(lang, _BLOCK_ROW["en"])
    rows += [(block.format(i=b["index"]), f"{b['ms_per_token']:.4f}") for b in gen["decode_block_ms"]]
    return rows


# Row labels are i18n keys (label_keys); the per-block rows are worded here, per language.
_BLOCK_ROW = {"en": "Block {i}: decode ms per token", "ru": "Блок {i}: декодирование, мс на токен"}


SECTION = SectionSpec(
    key="generation",
    compute=compute,
    table=TableSpec(
        title="generation",
        shown=lambda r: bool(r.generation),
        rows=_rows,
        layout="kv",
        # Blank headers; in CSV both columns are named "value" (as the CSV has always had it).
        columns=(Column("", lambda row, _u: row[0]), Column("", kv_value)),
        label_keys=True,
    ),
)
