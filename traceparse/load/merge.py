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

# Each column's dtype in `Events`; blocks arrive with int32 codes and int64 ids.
DTYPES: dict[str, Any] = {
    "kind": np.uint8,
    "name": np.int32,
    "ts": np.float64,
    "dur": np.float64,
    "pid": np.int64,
    "tid": np.int64,
    "nbytes": np.float64,
    "shape": np.int32,
    "comm": np.int32,
    **{k: np.int64 for k in INT_COLS},
}


class Columns:
    """Columns of the kept events, merged block by block in file order (same rows and ids as
    `load._columns`: names, pids and tids are numbered in order of first appearance).

    Each block is copied into its place in columns sized for the whole file when the first block
    arrives (from the share of the file it came from, with a margin; grown if short), so the end
    of the load joins nothing: a million events' columns were 0.1 s of concatenation after the
    last block, with one core idle. Room reserved but never filled is never touched, so it takes
    address space, not memory."""

    def __init__(self, shapes_for: ShapesFor = None, meanwhile: Callable[[], None] = lambda: None) -> None:
        self.shapes_for = shapes_for
        self.meanwhile = meanwhile  # work for this process while workers decode
        self.names: dict[str, int] = {}
        self.pid_of, self.tid_of = Interner(), Interner()
        self.cols: dict[str, np.ndarray] = {}
        self.n = 0  # rows merged
        self.shapes: list[ShapeArgs] = []
        self.comms: list[CommArgs] = []
        self.ids: dict[str, dict[Any, int]] = {k: {} for k in TABLES}  # value → global id
        # per process: local code → global id, as a list and as an array (+ NO_ID last, for code -1)
        self.maps: dict[tuple[int, int], dict[str, list[int]]] = {}
        self.luts: dict[tuple[int, int], dict[str, np.ndarray]] = {}
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

    def _reserve(self, rows: int, share: float | None) -> None:
        """Room for `rows` rows: on the first block, for the whole file as extrapolated from the
        `share` (0-1] of the input read so far; later, 1.5x more whenever short."""
        have = next(iter(self.cols.values())).shape[0] if self.cols else 0
        if rows <= have:
            return
        grown = max(rows, int(have * 1.5), 1 << 16)
        want = int(rows / min(1.0, share) * 1.1) + 4096 if share and not have else grown
        try:
            fresh = {k: np.empty(want, dtype) for k, dtype in DTYPES.items()}
        except MemoryError:  # a guess beyond what the system will lend: what is needed, with room
            fresh = {k: np.empty(grown, dtype) for k, dtype in DTYPES.items()}
        for k, col in fresh.items():
            if have:
                col[: self.n] = self.cols[k][: self.n]
            self.cols[k] = col

    def merge(self, b: Block, share: float | None = None) -> None:
        """Append a block's rows (`share`: of the input read once this block was cut, if known)."""
        self.dropped += b.dropped
        for cat, count in b.other_cats.items():
            self.other_cats[cat] = self.other_cats.get(cat, 0) + count
        self.max_abs_ts = max(self.max_abs_ts, b.max_abs_ts)
        self.shapes_recorded = self.shapes_recorded or b.shapes_recorded
        if not b.m:
            return
        maps = self.maps.setdefault(b.token, {k: [] for k in TABLES})
        luts = self.luts.setdefault(b.token, {})
        for table in TABLES:
            ids, local = self.ids[table], maps[table]
            for v in b.new[table]:
                got = ids.get(v)
                if got is None:
                    got = ids[v] = self._global(table, v)
                local.append(got)
            if table not in luts or luts[table].shape[0] != len(local) + 1:
                luts[table] = np.array([*local, NO_ID], DTYPES[table])
        lo, hi = self.n, self.n + b.m
        self._reserve(hi, share)
        c = self.cols
        for k, col in b.cols.items():
            c[k][lo:hi] = col
        for k in TABLES:  # local code → global id; NO_ID (-1, no shape) picks the appended NO_ID
            np.take(luts[k], b.codes[k], out=c[k][lo:hi], mode="wrap")  # "wrap": no buffer; -1 is last
        self.n = hi

    def events(self) -> Events:
        n = self.n
        c = self.cols if n else {k: np.empty(0, dtype) for k, dtype in DTYPES.items()}

        def col(k: str) -> np.ndarray:
            return c[k][:n]

        return Events(
            kind=col("kind"),
            name=col("name"),
            names=tuple(self.names),
            ts=col("ts"),
            dur=col("dur"),
            pid=col("pid"),
            tid=col("tid"),
            external_id=col("external_id"),
            correlation=col("correlation"),
            seq=col("seq"),
            fwd_tid=col("fwd_tid"),
            stream=col("stream"),
            device=col("device"),
            py_id=col("py_id"),
            py_parent=col("py_parent"),
            nbytes=col("nbytes"),
            shape=col("shape"),
            shapes=tuple(self.shapes),
            shapes_recorded=self.shapes_recorded,
            comm=col("comm") if self.comms else None,
            comms=tuple(self.comms),
            other_categories=category_counts(self.other_cats),
        )
