"""The report's sections, one module each, in display order.

`build_report` computes every registered section from one shared `Context`; the renderers lay out
each section's declared table and draw its charts. A new section is a module with a `SECTION`
(a `SectionSpec` whose key is a `Report` field) added to `SECTIONS`, plus its test.
"""

from __future__ import annotations

from typing import Any

from traceparse.sections import (
    block_stacks,
    blocks,
    families,
    general,
    generation,
    kernels,
    module_types,
    modules,
    notes,
    operators,
    phases,
    recovered,
    roofline_ops,
    steps,
)
from traceparse.sections.base import ChartData, Column, SectionSpec, TableSpec
from traceparse.sections.context import Context, make_context

# Display order (text, Markdown, CSV, HTML, charts); the notes come last.
SECTIONS: tuple[SectionSpec, ...] = (
    general.SECTION,
    blocks.SECTION,
    steps.SECTION,
    phases.SECTION,
    generation.SECTION,
    module_types.SECTION,
    modules.SECTION,
    operators.SECTION,
    roofline_ops.SECTION,
    roofline_ops.SHAPES_SECTION,
    families.SECTION,
    kernels.SECTION,
    recovered.SECTION,
    recovered.FUSIONS_SECTION,
    block_stacks.SECTION,
    notes.SECTION,
)


def compute_order(sections: tuple[SectionSpec, ...] = SECTIONS) -> list[SectionSpec]:
    """The sections with each after those it `needs` (otherwise in display order)."""
    by_key = {s.key: s for s in sections}
    order: list[SectionSpec] = []
    placed: set[str] = set()
    visiting: set[str] = set()

    def visit(s: SectionSpec) -> None:
        if s.key in placed:
            return
        if s.key in visiting:
            raise ValueError(f"report sections depend on each other in a cycle through {s.key!r}")
        visiting.add(s.key)
        for key in s.needs:
            visit(by_key[key])
        visiting.discard(s.key)
        placed.add(s.key)
        order.append(s)

    for s in sections:
        visit(s)
    return order


def compute_sections(ctx: Context, sections: tuple[SectionSpec, ...] = SECTIONS) -> dict[str, Any]:
    """Every section's value by its key (a `Report` field)."""
    done: dict[str, Any] = {}
    for s in compute_order(sections):
        done[s.key] = s.compute(ctx, done)
    return done


__all__ = [
    "SECTIONS",
    "ChartData",
    "Column",
    "Context",
    "SectionSpec",
    "TableSpec",
    "compute_order",
    "compute_sections",
    "make_context",
]
