"""Lay out the sections: table (terminal), markdown, json (the contract), csv."""

from __future__ import annotations

import csv
import io
import json

from traceparse.render.i18n import t
from traceparse.render.sections import Section, sections
from traceparse.report import Report

FORMATS = ("table", "markdown", "json", "csv")


def _heading(text: str, level: int, markdown: bool) -> str:
    if markdown:
        return f"{'#' * level} {text}\n"
    return f"{text}\n{('=' if level == 1 else '-') * len(text)}\n"


def prepare(fmt: str) -> None:
    """Import what rendering `fmt` needs, ahead of time (tabulate and its wcwidth take ~0.13 s,
    which the JSON and CSV formats never need)."""
    if fmt in ("table", "markdown"):
        import tabulate  # noqa: F401


def _body(s: Section, markdown: bool) -> list[str]:
    from tabulate import tabulate

    if s.layout == "list":
        return [f"- {row[0]}" for row in s.rows]
    if s.layout == "kv":  # no header row; Markdown needs one, so it is blank
        if markdown:
            return [tabulate(s.rows, headers=s.headers, tablefmt="github", disable_numparse=True)]
        return [tabulate(s.rows, tablefmt="plain", disable_numparse=True)]
    tablefmt = "github" if markdown else "simple"
    return [tabulate(s.rows, headers=s.headers, tablefmt=tablefmt, disable_numparse=True)]


def _text(report: Report, lang: str, markdown: bool) -> str:
    parts = [_heading(report.general.model or report.source, 1, markdown), t(lang, "per_step", n=report.general.steps)]
    parts.append("")
    for s in sections(report, lang):
        parts.append(_heading(s.title, 2, markdown))
        parts.extend(_body(s, markdown))
        parts.append("")
    return "\n".join(parts)


def _csv(report: Report, lang: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for s in sections(report, lang):
        if s.layout == "list":  # the notes are prose, not a table
            continue
        w.writerow(["section", *s.csv_headers])
        for row in s.rows:
            w.writerow([s.key, *row])
        w.writerow([])
    return buf.getvalue()


def render(report: Report, fmt: str = "table", lang: str = "en") -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if fmt == "csv":
        return _csv(report, lang)
    return _text(report, lang, markdown=fmt == "markdown")
