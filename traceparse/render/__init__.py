"""Stage 6, render: the report as terminal tables, Markdown, JSON or CSV.

`sections()` computes the rows of every table once (memray's reporters: rows first, render
second); each format only lays them out.
"""

from __future__ import annotations

from traceparse.render.formats import FORMATS, prepare, render

__all__ = ["FORMATS", "prepare", "render"]
