"""Lay out the sections: table (terminal), markdown, json (the contract), csv."""

from __future__ import annotations

import csv
import io
import json

from tabulate import tabulate

from traceparse.render.i18n import t
from traceparse.render.sections import sections
from traceparse.report import Report

FORMATS = ("table", "markdown", "json", "csv")


def _text(report: Report, lang: str, tablefmt: str, heading: str) -> str:
    parts = []
    title = report.general.model or report.source
    parts.append(f"{heading} {title}\n\n{t(lang, 'per_step', n=report.general.steps)}\n")
    for s in sections(report, lang):
        parts.append(f"{heading}# {s.title}\n")
        if s.key == "general":
            parts.append(tabulate(s.rows, tablefmt=tablefmt if tablefmt != "simple" else "plain"))
        else:
            parts.append(tabulate(s.rows, headers=s.headers, tablefmt=tablefmt, disable_numparse=True))
        parts.append("")
    if report.notes:
        parts.append(f"{heading}# {t(lang, 'notes')}\n")
        parts.extend(f"- {n}" for n in report.notes)
        parts.append("")
    return "\n".join(parts)


def _csv(report: Report, lang: str) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for s in sections(report, lang):
        w.writerow(
            ["section", *(h or "value" for h in s.headers)] if s.key != "general" else ["section", "key", "value"]
        )
        for row in s.rows:
            w.writerow([s.key, *row])
        w.writerow([])
    return buf.getvalue()


def render(report: Report, fmt: str = "table", lang: str = "en") -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if fmt == "csv":
        return _csv(report, lang)
    if fmt == "markdown":
        return _text(report, lang, "github", "#")
    return _text(report, lang, "simple", "=")
