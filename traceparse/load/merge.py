"""The streamed reader's merge: block after block, in file order, into one set of columns.

Each block's codes are local to the process that decoded it (`Tables`); merging maps them to
global ids, so names, pids, tids, shapes and collectives come out numbered as a sequential read
of the file numbers them (the whole-file reader's `columns`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from traceparse.load.blocks import INT_COLS, NUL, TABLES, Block
from traceparse.load.schema import NO_ID, CommArgs, Events, Interner, ShapeArgs, ShapesFor, category_counts


class Columns:
    """Columns of the kept events, merged block by block in file order (same rows and ids as
    `load._columns`: names, pids and tids are numbered in order of first appearance)."""

    def __init__(self, shapes_for: ShapesFor = None, meanwhile: Callable[[], None] = lambda: None) -> None:
        self.shapes_for = shapes_for
        self.meanwhile = meanwhile  # work for this process while workers decode
        self.names: dict[str, int] = {}
        self.pid_of, self.tid_of = Interner(), Interner()
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in COLS}
        self.shapes: list[ShapeArgs] = []
        self.comms: list[CommArgs] = []
        self.ids: dict[str, dict[Any, int]] = {k: {} for k in TABLES}  # value → global id
        self.maps: dict[tuple[int, int], dict[str, list[int]]] = {}  # per process: local code → global id
        self.shapes_recorded = False
        self.dropped = 0
        self.other_cats: dict[Any, int] = {}
        self.max_abs_ts = 0.0

    def _global(self, table: str, value: Any) -> int:
        if table == "name":
            return self.names.setdefault(value or "", len(self.names))
        if table == "pid":
            return self.pid_of(value)
        if table == "tid":
            return self.tid_of(value)
        if table == "comm":
            self.comms.append(CommArgs.of_key(value))
            return len(self.comms) - 1
        dims, types, concrete = value.split(NUL)
        self.shapes.append(ShapeArgs(msgspec.Raw(dims), msgspec.Raw(types) or None, msgspec.Raw(concrete) or None))
        return len(self.shapes) - 1

    def merge(self, b: Block) -> None:
        self.dropped += b.dropped
        for cat, count in b.other_cats.items():
            self.other_cats[cat] = self.other_cats.get(cat, 0) + count
        self.max_abs_ts = max(self.max_abs_ts, b.max_abs_ts)
        self.shapes_recorded = self.shapes_recorded or b.shapes_recorded
        if not b.m:
            return
        maps = self.maps.setdefault(b.token, {k: [] for k in TABLES})
        for table in TABLES:
            ids, local = self.ids[table], maps[table]
            for v in b.new[table]:
                got = ids.get(v)
                if got is None:
                    got = ids[v] = self._global(table, v)
                local.append(got)
        p = self.parts
        for k, col in b.cols.items():
            p[k].append(col)
        for k in TABLES:  # local code → global id; NO_ID (-1, no shape) picks the appended NO_ID
            p[k].append(np.array([*maps[k], NO_ID], np.int64)[b.codes[k]])

    def events(self) -> Events:
        p = self.parts

        def cat(k: str, dtype: Any) -> np.ndarray:
            return np.concatenate(p[k]).astype(dtype, copy=False) if p[k] else np.empty(0, dtype)

        return Events(
            kind=cat("kind", np.uint8),
            name=cat("name", np.int32),
            names=tuple(self.names),
            ts=cat("ts", np.float64),
            dur=cat("dur", np.float64),
            pid=cat("pid", np.int64),
            tid=cat("tid", np.int64),
            external_id=cat("external_id", np.int64),
            correlation=cat("correlation", np.int64),
            seq=cat("seq", np.int64),
            fwd_tid=cat("fwd_tid", np.int64),
            stream=cat("stream", np.int64),
            device=cat("device", np.int64),
            py_id=cat("py_id", np.int64),
            py_parent=cat("py_parent", np.int64),
            nbytes=cat("nbytes", np.float64),
            shape=cat("shape", np.int32),
            shapes=tuple(self.shapes),
            shapes_recorded=self.shapes_recorded,
            comm=cat("comm", np.int32) if self.comms else None,
            comms=tuple(self.comms),
            other_categories=category_counts(self.other_cats),
        )


COLS = ("kind", "name", "ts", "dur", "pid", "tid", "nbytes", "shape", "comm", *INT_COLS)
