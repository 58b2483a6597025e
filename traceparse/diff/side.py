"""One side of a diff: a run's headline figures and its tables keyed for alignment.

A side comes from a trace (the whole pipeline, every table complete, per-step values for each row)
or from a saved `traceparse.report/1` JSON (the report's tables only: the 20 slowest modules, no
kernel names, no per-step values per row; the noise of such a side is estimated from its steps).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from traceparse.errors import NotATraceError, UnreadableError

if TYPE_CHECKING:
    from traceparse.api import Analysis

REPORT_SCHEMA = "traceparse.report/1"
DIFF_SCHEMA = "traceparse.diff/1"

# The aligned dimensions, in display order, with the fields of their keys.
DIMENSIONS: dict[str, tuple[str, ...]] = {
    "blocks": ("index", "kind"),
    "module_types": ("type",),
    "modules": ("module", "class"),
    "kernel_families": ("family",),
    "operators": ("operator",),
    "kernels": ("kernel",),
}


@dataclass(frozen=True)
class Row:
    """One row of one side: its time per profiler step (mean), and each step's where known."""

    key: tuple[Any, ...]
    ms: float  # blocks, families, operators, kernels: GPU time; modules and types: self time
    steps: tuple[float, ...] | None = None  # the same, step by step (None: only the mean is known)
    flops: float | None = None  # per step; None when unknown (never 0 for unknown)
    inclusive_ms: float | None = None  # modules and types: with their sub-modules
    calls: float | None = None  # per step
    families: Mapping[str, float] | None = None  # blocks: GPU ms per kernel family


@dataclass(frozen=True)
class Table:
    rows: tuple[Row, ...]
    complete: bool = True  # False: the source lists only its top rows (a report's 20 slowest modules)

    def by_key(self) -> dict[tuple[Any, ...], Row]:
        return {r.key: r for r in self.rows}


@dataclass(frozen=True)
class Side:
    label: str  # what the user passed
    kind: str  # "trace" or "report"
    general: Mapping[str, Any]  # the report's `general`
    steps: tuple[Mapping[str, Any], ...]  # the report's `steps`
    tables: Mapping[str, Table] = field(default_factory=dict)

    @property
    def model(self) -> str | None:
        return self.general.get("model")


def _head(path: Path, n: int = 4096) -> bytes:
    try:
        with path.open("rb") as fh:
            raw = fh.read(n)
            if raw[:2] == b"\x1f\x8b":  # a gzip: a report is never saved gzipped, but read the head anyway
                fh.seek(0)
                with gzip.open(fh) as gz:
                    return gz.read(n)
            return raw
    except OSError as exc:
        raise UnreadableError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (EOFError, gzip.BadGzipFile) as exc:
        raise UnreadableError(f"{path}: corrupt gzip ({exc})") from None


def _schema_in(head: bytes) -> str | None:
    """The schema a saved report or diff names near its start (`render` writes it first)."""
    text = head.decode("utf-8", "replace")
    for schema in (REPORT_SCHEMA, DIFF_SCHEMA):
        if f'"schema": "{schema}"' in text or f'"schema":"{schema}"' in text:
            return schema
    return None


def load_side(source: str | os.PathLike[str], progress: Any = None) -> Side:
    """A trace, a saved report JSON, or a folder holding one trace."""
    path = Path(source)
    if not path.exists():
        raise UnreadableError(f"{path}: no such file or directory")
    if path.is_file():
        schema = _schema_in(_head(path))
        if schema == DIFF_SCHEMA:
            raise NotATraceError(f"{path}: a traceparse diff, not a trace or a report")
        if schema == REPORT_SCHEMA:
            return side_of_report(_read_report(path), str(source))
    from traceparse.api import run_pipeline

    return side_of_analysis(run_pipeline(path, progress=progress), str(source))


def _read_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except OSError as exc:
        raise UnreadableError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UnreadableError(f"{path}: a {REPORT_SCHEMA} JSON that does not parse ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA or not isinstance(data.get("general"), dict):
        raise NotATraceError(f"{path}: not a {REPORT_SCHEMA} report")
    return data


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _rows(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    rows = data.get(key)
    return [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []


def side_of_report(data: Mapping[str, Any], label: str) -> Side:
    """A saved report: its own tables, as complete as the report keeps them."""
    try:
        tables = {
            "blocks": Table(
                tuple(
                    Row((int(b["index"]), str(b["kind"])), float(b["gpu_ms"]), flops=_num(b.get("flops")))
                    for b in _rows(data, "blocks")
                )
            ),
            "module_types": Table(
                tuple(
                    Row(
                        (str(t["type"]),),
                        float(t["self_ms"]),
                        inclusive_ms=_num(t.get("total_ms")),
                        calls=_num(t.get("count")),
                    )
                    for t in _rows(data, "module_types")
                )
            ),
            "modules": Table(
                tuple(
                    Row(
                        (str(m["name"]), str(m["type"])),
                        float(m["self_ms"]),
                        inclusive_ms=_num(m.get("inclusive_ms")),
                        calls=_num(m.get("calls")),
                    )
                    for m in _rows(data, "slowest_modules")
                ),
                complete=False,
            ),
            "kernel_families": Table(
                tuple(
                    Row((str(f["family"]),), float(f["kernel_ms"]), calls=_num(f.get("count")))
                    for f in _rows(data, "kernel_families")
                )
            ),
            "operators": Table(
                tuple(
                    Row((str(o["operator"]),), float(o["kernel_ms"]), calls=_num(o.get("items")))
                    for o in _rows(data, "top_operators")
                ),
                complete=False,
            ),
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise NotATraceError(f"{label}: a {REPORT_SCHEMA} report with a malformed row ({exc})") from None
    if not tables["operators"].rows:  # the report keeps operators only for traces without modules
        del tables["operators"]
    return Side(label, "report", dict(data["general"]), tuple(_rows(data, "steps")), tables)


def side_of_analysis(analysis: Analysis, label: str) -> Side:
    from dataclasses import asdict

    from traceparse.diff.tables import tables_of

    report = analysis.report
    return Side(
        label,
        "trace",
        asdict(report.general),
        tuple(asdict(s) for s in report.steps),
        tables_of(analysis),
    )
