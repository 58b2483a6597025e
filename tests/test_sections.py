"""The report's sections as units: each declares its key, table and charts, and every renderer
(text, Markdown, CSV, HTML) lays out whatever the registry holds."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import NEMOTRON_8L_GENERATE, USER_TRAIN, analysis
from traceparse.render import render
from traceparse.render import sections as render_sections
from traceparse.render.charts import chart_data
from traceparse.render.html import render_html
from traceparse.render.i18n import TEXT
from traceparse.report import Report
from traceparse.sections import SECTIONS, Column, SectionSpec, TableSpec, compute_order


def test_every_section_fills_one_report_field_once() -> None:
    keys = [s.key for s in SECTIONS]
    assert len(keys) == len(set(keys))
    fields = {f.name for f in dataclasses.fields(Report)}
    assert set(keys) <= fields
    # What the sections do not compute is the run's own: where it came from, how it was attributed.
    assert fields - set(keys) == {"source", "attribution", "step_wall_ms"}


def test_sections_compute_after_what_they_need() -> None:
    order = [s.key for s in compute_order()]
    for s in SECTIONS:
        for need in s.needs:
            assert order.index(need) < order.index(s.key)


def test_a_cycle_between_sections_is_refused() -> None:
    a = SectionSpec(key="a", compute=lambda _c, _d: None, needs=("b",))
    b = SectionSpec(key="b", compute=lambda _c, _d: None, needs=("a",))
    with pytest.raises(ValueError, match="cycle"):
        compute_order((a, b))


def test_every_table_title_is_translated() -> None:
    for s in SECTIONS:
        if s.table is not None:
            assert s.table.title in TEXT["en"] and s.table.title in TEXT["ru"], s.key


def test_charts_illustrate_their_own_section() -> None:
    a = analysis(NEMOTRON_8L_GENERATE)
    keys = {s.key for s in SECTIONS}
    for spec in SECTIONS:
        for c in spec.charts(a.report, a):
            assert c.section == spec.key
    assert {c.section for c in chart_data(a.report, a)} <= keys


def test_a_new_section_is_laid_out_by_every_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A section the renderers have never seen: its declaration alone puts it in every format."""
    extra = SectionSpec(
        key="phase_shares",
        compute=lambda _c, _d: None,
        table=TableSpec(
            title="phase_shares",
            shown=lambda r: bool(r.phases),
            rows=lambda r, _lang: r.phases,
            columns=(
                Column("phase", lambda p, _u: p.phase),
                Column("kernel ms", lambda p, _u: f"{p.kernel_ms:.3f}"),
            ),
        ),
    )
    monkeypatch.setattr(render_sections, "SECTIONS", (*SECTIONS, extra))
    report = analysis(USER_TRAIN).report
    first = report.phases[0]
    cell = f"{first.kernel_ms:.3f}"
    assert "phase_shares" in render(report, "table") and cell in render(report, "table")
    assert "| phase " in render(report, "markdown").split("# phase_shares")[1]
    # CSV is the JSON contract in tidy form (raw numbers), not the tables' formatted cells
    assert f"phases,0,kernel_ms,{first.kernel_ms!r}," in render(report, "csv")
    assert 'id="phase_shares"' in render_html(report, charts=False)
