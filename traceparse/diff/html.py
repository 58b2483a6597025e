"""The diff as one self-contained HTML page: the same sections as the text, and a per-block Δ chart.

The chart is inline SVG written here (no matplotlib): one bar per block, Δ ms from A to B, coloured
by verdict, with each block's noise band drawn behind its bar, so a bar inside its band reads as
noise at a glance. No scripts, fonts or files from elsewhere: the page opens offline.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from traceparse import __version__
from traceparse.diff.compare import IMPROVEMENT, REGRESSION, Change, Diff
from traceparse.diff.render import Section, sections, title

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d1d1f;
background:#fafafa}main{max-width:1500px;margin:0 auto;padding:24px 32px 64px}
h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:32px 0 10px;padding-bottom:4px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:6px 0 8px;box-shadow:0 0 0 1px #e3e3e3}
th,td{padding:3px 10px;border-bottom:1px solid #eee;text-align:left;white-space:nowrap}
th{background:#f0f2f5}td.slower{color:#b3261e;font-weight:600}td.faster{color:#1b7f3b;font-weight:600}
.scroll{overflow-x:auto}.foot{color:#666;font-size:12px}figure{margin:10px 0;background:#fff;padding:8px;
box-shadow:0 0 0 1px #e3e3e3;overflow-x:auto}figcaption{color:#555;font-size:12px}footer{margin-top:40px;color:#777;
font-size:12px}
"""
_COLOURS = {REGRESSION: "#d9534f", IMPROVEMENT: "#3c9d5d"}
_NEUTRAL = "#9aa0a6"


def _table(s: Section) -> str:
    out = ['<div class="scroll"><table>']
    out.append("<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in s.headers) + "</tr></thead><tbody>")
    for row in s.rows:
        cells = []
        for v in row:
            cls = ' class="slower"' if v == "slower" else ' class="faster"' if v == "faster" else ""
            cells.append(f"<td{cls}>{html.escape(v)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    if s.footer:
        out.append(f'<p class="foot">{html.escape(s.footer)}</p>')
    return "\n".join(out)


def block_chart(rows: Sequence[Change]) -> str:
    """Δ ms per block as an SVG bar chart (empty string when no block is on both sides)."""
    both = [c for c in rows if c.delta_ms is not None]
    if not both:
        return ""
    gap, height, pad_l, pad_b, pad_t = 6, 240, 64, 40, 16
    # Bars fill at least 520 px (room for the axis caption), each 10–60 px wide.
    bar_w = int(min(60, max(10, (520 - pad_l) / len(both) - gap)))
    width = max(pad_l + len(both) * (bar_w + gap) + gap, 520)
    top = max(max(abs(c.delta_ms or 0.0), c.noise_ms or 0.0) for c in both) or 1.0
    half = (height - pad_t - pad_b) / 2
    zero = pad_t + half

    def y(v: float) -> float:
        return zero - v / top * half

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Δ ms per block">',
        f'<line x1="{pad_l}" y1="{zero:.1f}" x2="{width}" y2="{zero:.1f}" stroke="#555" stroke-width="1"/>',
    ]
    for v in (top, -top):
        parts.append(
            f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:+.3f} ms</text>'
            f'<line x1="{pad_l}" y1="{y(v):.1f}" x2="{width}" y2="{y(v):.1f}" stroke="#eee"/>'
        )
    for i, c in enumerate(both):
        x = pad_l + gap + i * (bar_w + gap)
        d, n = c.delta_ms or 0.0, c.noise_ms or 0.0
        parts.append(
            f'<rect x="{x - 2}" y="{y(n):.1f}" width="{bar_w + 4}" height="{max(y(-n) - y(n), 0.5):.1f}" '
            'fill="#e8eaed"/>'
        )
        colour = _COLOURS.get(c.status, _NEUTRAL)
        y0, y1 = sorted((y(0.0), y(d)))
        label = f"block {c.key[0]} ({c.key[1]}): {d:+.3f} ms, noise ±{n:.3f}"
        if c.family:
            label += f"; moved most: {c.family} {c.family_delta_ms or 0.0:+.3f} ms"
        parts.append(
            f'<rect x="{x}" y="{y0:.1f}" width="{bar_w}" height="{max(y1 - y0, 0.5):.1f}" fill="{colour}">'
            f"<title>{html.escape(label)}</title></rect>"
        )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - pad_b + 14}" font-size="10" '
            f'text-anchor="middle">{html.escape(str(c.key[0]))}</text>'
        )
    parts.append(
        f'<text x="{pad_l + (width - pad_l) / 2:.1f}" y="{height - 6}" font-size="11" text-anchor="middle">'
        "block (grey band: noise ±; red: slower in B, green: faster)</text></svg>"
    )
    return "".join(parts)


def render_html(d: Diff, top: int = 15) -> str:
    head = title(d)
    body = [f"<h1>{html.escape(head)}</h1>"]
    for s in sections(d, top):
        body.append(f'<section id="{s.key}"><h2>{html.escape(s.title)}</h2>')
        if s.key == "blocks":
            chart = block_chart(d.tables.get("blocks", ()))
            if chart:
                body.append(f"<figure>{chart}<figcaption>Δ GPU ms per block, A → B</figcaption></figure>")
        if s.key == "notes":
            body.append("<ul>" + "".join(f"<li>{html.escape(r[0])}</li>" for r in s.rows) + "</ul>")
        else:
            body.append(_table(s) if s.rows else f'<p class="foot">{html.escape(s.footer or "")}</p>')
        body.append("</section>")
    body.append(f"<footer>traceparse {html.escape(__version__)} · diff schema traceparse.diff/1</footer>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(head)}</title>\n<style>{_CSS}</style>\n</head>\n"
        "<body><main>\n" + "\n".join(body) + "\n</main></body>\n</html>\n"
    )
