"""One self-contained HTML report: every section as a table, the charts inline as SVG data URIs.

No scripts, no fonts, no stylesheets or images from elsewhere: the file opens offline in any
browser and can be mailed or attached as is. The tables are the same rows as the text formats
(`sections()`); each chart sits above the table it illustrates.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import TYPE_CHECKING

from traceparse import __version__
from traceparse.atomic import write_text_atomic
from traceparse.errors import TraceparseError
from traceparse.render.charts import ChartData, chart_data, render_chart, write_charts
from traceparse.render.i18n import t
from traceparse.render.sections import Section, sections
from traceparse.report import Report

if TYPE_CHECKING:
    from traceparse.api import Analysis

_NUMERIC = re.compile(r"^[-+]?[\d\s.,]+(?:\s?(?:ms|%|GFLOPs|TFLOP/s|GB/s))?$|^unknown$|^неизвестно$")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;
background:#fafafa}
main{max-width:1500px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:36px 0 10px;padding-bottom:4px;border-bottom:1px solid #ddd}
.sub{color:#555;margin:0 0 16px}.sub code{font-size:12px}
nav{margin:12px 0 8px;display:flex;flex-wrap:wrap;gap:6px 14px}nav a{color:#2a5db0;text-decoration:none}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:6px 0 12px;box-shadow:0 0 0 1px #e3e3e3}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
th{background:#f0f2f5;position:sticky;top:0}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafbfc}.kv td:first-child{color:#444}
figure{margin:10px 0 14px;background:#fff;box-shadow:0 0 0 1px #e3e3e3;padding:8px;overflow-x:auto}
figure img{display:block;max-width:100%;height:auto}figcaption{color:#555;font-size:12px;margin-top:4px}
.scroll{overflow-x:auto}ul.notes li{margin:4px 0}footer{margin-top:40px;color:#777;font-size:12px}
"""


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    cls = ' class="n"' if _NUMERIC.match(text.strip() or "x") else ""
    return f"<td{cls}>{html.escape(text)}</td>"


def _table(section: Section) -> str:
    kv = section.layout == "kv"
    out = [f'<div class="scroll"><table class="{"kv" if kv else "grid"}">']
    if not kv:
        out.append(
            "<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in section.headers) + "</tr></thead>"
        )
    out.append("<tbody>")
    out.extend("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in section.rows)
    out.append("</tbody></table></div>")
    return "\n".join(out)


def _notes(title: str, notes: list[str]) -> str:
    items = "".join(f"\n<li>{html.escape(n)}</li>" for n in notes)
    return f'<section id="notes"><h2>{html.escape(title)}</h2><ul class="notes">{items}\n</ul></section>'


def _figure(chart: ChartData, image: bytes, mime: str) -> str:
    uri = f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"
    title = html.escape(chart.title)
    return (
        f'<figure id="chart-{chart.name}"><img alt="{title}" src="{uri}">'
        f"<figcaption>{title} (chart <code>{chart.name}</code>)</figcaption></figure>"
    )


def render_html(
    report: Report, analysis: Analysis | None = None, lang: str = "en", charts: bool = True, image_format: str = "svg"
) -> str:
    """The whole report as one HTML page. `analysis` adds the per-block kernel-family chart."""
    figures: dict[str, list[str]] = {}
    chart_note = None
    if charts:
        try:
            mime = "image/svg+xml" if image_format == "svg" else "image/png"
            for c in chart_data(report, analysis):
                figures.setdefault(c.section, []).append(_figure(c, render_chart(c, image_format), mime))
        except TraceparseError as exc:  # matplotlib missing: the tables still make a report
            chart_note = str(exc)
    secs = sections(report, lang)
    tables = [s for s in secs if s.layout != "list"]
    lists = [s for s in secs if s.layout == "list"]  # the notes: after the tables and any leftover chart
    title = report.general.model or Path(report.source).name
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="sub">{html.escape(t(lang, "per_step", n=report.general.steps))} · '
        f"{html.escape(t(lang, 'attribution'))}: {html.escape(report.attribution)} · "
        f"<code>{html.escape(report.source)}</code></p>",
        "<nav>" + "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in [*tables, *lists]) + "</nav>",
    ]
    for s in tables:
        body.append(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>')
        body.extend(figures.get(s.key, []))
        body.append(_table(s))
        body.append("</section>")
    placed = {s.key for s in tables}
    leftover = [f for key, figs in figures.items() if key not in placed for f in figs]
    if leftover:
        body.append('<section id="charts"><h2>Charts</h2>' + "".join(leftover) + "</section>")
    chart_notes = [chart_note] if chart_note else []
    for s in lists:
        body.append(_notes(s.title, [str(row[0]) for row in s.rows] + chart_notes))
        chart_notes = []
    if chart_notes:  # no notes of the report's own: the chart's still gets said
        body.append(_notes(t(lang, "notes"), chart_notes))
    body.append(f"<footer>traceparse {html.escape(__version__)} · report schema traceparse.report/1</footer>")
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(lang)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>traceparse: {html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        "<body><main>\n" + "\n".join(body) + "\n</main></body>\n</html>\n"
    )


def write_html(path: str | Path, report: Report, analysis: Analysis | None = None, lang: str = "en") -> Path:
    path = Path(path)
    write_text_atomic(path, render_html(report, analysis, lang))
    return path


def write_pictures(
    analysis: Analysis, charts_dir: str | Path | None = None, html_path: str | Path | None = None, lang: str = "en"
) -> list[Path]:
    """What `--charts DIR` and `--html FILE` write (analyze and capture share it); returns the paths."""
    written: list[Path] = []
    if charts_dir is not None:
        written += write_charts(analysis.report, charts_dir, analysis)
    if html_path is not None:
        written.append(write_html(html_path, analysis.report, analysis, lang))
    return written
