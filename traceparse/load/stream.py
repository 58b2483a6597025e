"""The fast path of stage 1: a Kineto trace streamed from disk into columns, block by block.

`load_trace` tries this first. The file is cut into blocks of ~16 MiB of whole events; each is
wrapped in brackets and decoded by msgspec into small structs with strict field types, which
become numpy columns through C-level `map(attrgetter)` passes and value→code tables (no
per-event Python statements); events of other phases (flows are a quarter of a Kineto trace)
decode into field-less structs, so msgspec only skips over them. Only one block's structs exist
at a time per process, and the
shape arguments are kept once per distinct value, so peak memory is the columns, not the JSON
text nor a Python object per event. On Linux an uncompressed file's blocks are decoded by
forked worker processes (one per core, up to 4; TRACEPARSE_WORKERS=1 decodes in this process)
while this one only merges their columns: merging is cheap, so keeping it off the workers' path
beats decoding here too. A gzip is inflated and cut by this process, and each block's text goes
to a worker through memory shared with it (gzipped.py). Blocks are merged in file order, so ids
come out as a sequential read numbers them.

Cutting needs no JSON scanner: a JSON string cannot hold a raw newline, so Kineto's event
separator `},\n  {` (the whitespace seen between `[` and the first event) occurs only between
events. Other writers' separators (`}, {` of json.dump, `},{` compact; layout.py picks the one the
file uses) can occur inside a string too, but a cut there leaves a string or a bracket open,
which the decode of that block rejects (the first block starts at the first event, so by
induction every accepted cut is real), and the whole-file reader takes over.

Anything this path does not handle exactly like the whole-file reader (`whole.decode` +
`whole.columns`) makes it return None and `load_trace` starts over there: a value
of an unexpected type (string ids, huge ints, a missing or unknown phase), nanosecond timestamps,
an array without its closing bracket, and every malformed file (so error messages stay those of
the full path). Tests check that both paths give identical columns on every fixture.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from traceparse.errors import TraceparseError
from traceparse.load.blocks import (
    DECODER,
    Bail,
    Block,
    Tables,
    columnize,
    decode_mapped,
    decode_range,
    init_worker,
)
from traceparse.load.gzipped import CARRY_ROOM, GZIP_ERRORS, GzipFile, Ring, cut_blocks
from traceparse.load.layout import Layout, read_layout
from traceparse.load.merge import Columns
from traceparse.load.schema import NS_MAGNITUDE, TRACE_DECODER, Events, RawTrace, ShapesFor
from traceparse.load.whole import find_trace_in_dir

# A damaged file (I/O, truncated or corrupt gzip): the full path reports it.
DAMAGED: tuple[type[Exception], ...] = (OSError, EOFError, *GZIP_ERRORS)

BLOCK = 16 << 20  # bytes of JSON decoded at a time (small enough to balance two workers' last blocks)
MAX_WORKERS = 4
_LAST = re.compile(rb"\}[ \t\r\n]*\]")

Progress = Callable[[int, int], None]  # (bytes read, total bytes) of the file on disk


class Streamed(NamedTuple):
    """What the streamed reader gives `load_trace`."""

    top: RawTrace  # the top-level keys, with no events
    events: Events
    dropped: int  # complete events without a usable ts/dur
    form: str  # "object" or "array" (Chrome's JSON-array form)


class _NoWorkers(Exception):
    """Worker processes could not be started or one died: decode in this process instead."""


def _can_fork() -> bool:
    """Workers are forked, on Linux only, from a process with no other Python thread (fork would
    copy a lock another thread holds) that may have children (not a daemonic worker itself).
    spawn is not used: it re-imports the caller's __main__, which a script may not guard."""
    return (
        sys.platform.startswith("linux")
        and "fork" in multiprocessing.get_all_start_methods()
        and threading.active_count() == 1
        and not multiprocessing.current_process().daemon
    )


class InOrder:
    """Decodes blocks in this process, or in forked worker processes when asked and possible,
    and merges their columns in submission order (so codes come out as a sequential read numbers
    them). With workers, at most `ahead` blocks are in flight (default two per worker: a gzip's
    reader stays ahead without holding the whole file); this process merges, and does
    `cols.meanwhile` once that many are queued. `shared`: block size of a gzip's blocks, for which
    the workers get a ring of buffers shared with this process (`ring`, None without workers)."""

    def __init__(
        self, cols: Columns, n_workers: int, merged: Callable[[int], Any], shared: int = 0, ahead: int = 0
    ) -> None:
        self.cols, self.merged = cols, merged
        self.tables = Tables((os.getpid(), id(cols)), cols.shapes_for)
        self.pool: ProcessPoolExecutor | None = None
        self.ring: Ring | None = None
        self.limit = ahead or 2 * n_workers
        self.pending: deque[tuple[Future[Block], int, float | None, int | None]] = deque()
        if n_workers > 1 and _can_fork():
            try:
                # A slot per block in flight, and one being filled (made before the workers fork).
                self.ring = Ring(self.limit + 1, shared + 2 + CARRY_ROOM) if shared else None
                self.pool = ProcessPoolExecutor(
                    n_workers,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=init_worker,
                    initargs=(cols.shapes_for, self.ring.mem if self.ring else None),
                )
            except (OSError, RuntimeError, ValueError) as exc:  # no semaphores or processes here
                self._close_ring()
                raise _NoWorkers from exc

    def __enter__(self) -> InOrder:
        return self

    def submit(
        self, fn: Callable[..., Block], args: tuple[Any, ...], nbytes: int, share: float | None, slot: int | None = None
    ) -> None:
        """Decode fn(*args) (`nbytes` of the input, `share` of it read by then); `slot`: the
        ring slot the block lies in, free again once its result is back."""
        if self.pool is None:
            self._merge(fn(*args, self.tables), nbytes, share)
            return
        try:
            with _sigint_blocked():  # a worker forked here inherits the block: Ctrl-C is the parent's alone
                self.pending.append((self.pool.submit(fn, *args), nbytes, share, slot))
        except (OSError, RuntimeError, AssertionError) as exc:  # no processes to be had
            raise _NoWorkers from exc
        if len(self.pending) == self.limit:
            self.cols.meanwhile()  # every worker has work queued: this process is free until they finish
        while len(self.pending) > self.limit:
            self.take_one()

    def take_one(self) -> None:
        """Wait for the oldest block in flight and merge it."""
        fut, nbytes, share, slot = self.pending.popleft()
        try:
            block = fut.result()
        except BrokenProcessPool as exc:  # a worker died (killed for memory?): one process then
            raise _NoWorkers from exc
        if slot is not None and self.ring is not None:
            self.ring.free.append(slot)
        self._merge(block, nbytes, share)

    def _merge(self, block: Block, nbytes: int, share: float | None) -> None:
        self.cols.merge(block, share)
        self.merged(nbytes)

    def _close_ring(self) -> None:
        if self.ring is not None:
            self.ring.close()
            self.ring = None

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            while exc_type is None and self.pending:
                self.take_one()
        finally:
            if self.pool is not None:
                for fut, *_ in self.pending:
                    fut.cancel()
                self.pool.shutdown(wait=True, cancel_futures=True)
            self._close_ring()


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    """SIGINT blocked (not ignored: one that arrives meanwhile is delivered on leaving) while
    worker processes may be forked. A terminal's Ctrl-C goes to the whole process group; a worker
    interrupted mid-fork or mid-decode prints its own traceback, so workers never take it: the
    parent stops, cancels them and says "interrupted"."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _open(path: Path) -> tuple[Any, Any, int, bool] | None:
    """(text stream, file on disk, its size, gzip?), or None for what the full path must report."""
    try:
        if path.is_dir():
            path = find_trace_in_dir(path)
        raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except (OSError, TraceparseError):
        return None
    size = os.fstat(raw.fileno()).st_size
    if raw.read(2) != b"\x1f\x8b":
        raw.seek(0)
        return raw, raw, size, False
    raw.seek(0)
    text = GzipFile(fileobj=raw, mode="rb")
    if text.peek(2)[:2] == b"\x1f\x8b":  # gzip inside gzip: the full path unwraps it
        raw.close()
        return None
    return text, raw, size, True


def workers() -> int:
    """Worker processes decoding an uncompressed file (1: decode in this process instead):
    TRACEPARSE_WORKERS, else one per core (at most 4)."""
    env = os.environ.get("TRACEPARSE_WORKERS", "")
    if env.strip().isdigit():
        return max(1, int(env))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(MAX_WORKERS, cores))


def load_columns(
    path: str | os.PathLike[str],
    progress: Progress | None = None,
    block: int = BLOCK,
    n_workers: int | None = None,
    shapes_for: ShapesFor = None,
    meanwhile: Callable[[], None] | None = None,
) -> Streamed | None:
    """(top-level fields with no events, the kept events as columns, events dropped), or None
    when the full path must load this file (see the module docstring). `shapes_for` and
    `meanwhile` as in `load_trace` (called here once, by the end at the latest)."""
    once = _Once(meanwhile)
    try:
        try:
            return _load_columns(path, progress, block, n_workers or workers(), shapes_for, once)
        except _NoWorkers:  # no processes to be had, or one died: start over in this process
            return _load_columns(path, progress, block, 1, shapes_for, once)
    finally:
        once()


class _Once:
    def __init__(self, fn: Callable[[], None] | None) -> None:
        self.fn = fn

    def __call__(self) -> None:
        fn, self.fn = self.fn, None
        if fn is not None:
            fn()


def _load_columns(
    path: str | os.PathLike[str],
    progress: Progress | None,
    block: int,
    n_workers: int,
    shapes_for: ShapesFor,
    meanwhile: _Once,
) -> Streamed | None:
    opened = _open(Path(path))
    if opened is None:
        return None
    stream, raw, size, gz = opened
    try:
        layout, first = read_layout(stream)
        cols = Columns(shapes_for, meanwhile)
        if gz:
            top = _stream(stream, raw, size, layout, first, cols, progress, block, n_workers)
        else:
            start = raw.tell() - len(first)  # file offset of the first event's "{"
            top = _ranges(raw, size, layout, start, cols, progress, block, n_workers)
        if top.displayTimeUnit == "ns" or cols.max_abs_ts > NS_MAGNITUDE:
            raise Bail  # nanoseconds: the full path converts them
        return Streamed(top, cols.events(), cols.dropped, layout.form)
    except (Bail, msgspec.DecodeError, ValueError, OverflowError, TypeError):
        return None
    except DAMAGED:
        return None
    finally:
        raw.close()


def _stream(
    stream: Any,
    raw: Any,
    size: int,
    layout: Layout,
    carry: bytes,
    cols: Columns,
    progress: Progress | None,
    block: int,
    n_workers: int,
) -> RawTrace:
    """A gzip (no random access): this process inflates and cuts block after block
    (gzipped.cut_blocks), and the decoding goes to the workers, if any."""
    with InOrder(cols, n_workers, lambda _nbytes: progress and progress(raw.tell(), size), shared=block) as decoder:
        rest = cut_blocks(stream, layout, carry, decoder, block, lambda: raw.tell() / size if size else None)
    return _finish(rest, layout, cols, Tables((os.getpid(), id(rest)), cols.shapes_for))


def _ranges(
    raw: Any,
    size: int,
    layout: Layout,
    first: int,
    cols: Columns,
    progress: Progress | None,
    block: int,
    n_workers: int,
) -> RawTrace:
    """An uncompressed file, events from offset `first`: find the cuts by reading a little around
    every `block` bytes, then decode the ranges between them (in workers too, when there are)."""
    window = 1 << 20
    # The last separator in the file: the last event and the closing keys come after it.
    last, pos = -1, size
    while last < 0 and pos > first:
        lo = max(first, pos - window)
        raw.seek(lo)
        chunk = raw.read(pos - lo + len(layout.sep))
        i = chunk.rfind(layout.sep)
        last = lo + i if i >= 0 else -1
        pos = lo
    cuts = [first]  # block starts; a block ends at the "}" before the next start's separator
    ends = []
    # The last blocks are a quarter size: the workers then finish close together, instead of
    # one idling while another decodes a whole last block.
    tail = 2 * n_workers * block if n_workers > 1 else 0
    pos = first + block
    while last > 0 and pos < last:
        raw.seek(pos)
        chunk = raw.read(window)
        i = chunk.find(layout.sep)
        if i < 0:
            pos += max(1, len(chunk) - len(layout.sep))
            continue
        cut = pos + i
        if cut >= last:
            break
        ends.append(cut + 1)
        cuts.append(cut + len(layout.sep) - 1)
        pos = cut + (block if last - cut > tail else max(block // 4, 1))
    ranges = list(zip(cuts, [*ends, last + 1], strict=True)) if last > 0 else []
    done = first

    def merged(nbytes: int) -> None:
        nonlocal done
        done += nbytes
        if progress is not None:
            progress(done, size)

    # Every range is queued at once (a range is two offsets; the workers read the file): a worker
    # that is done takes the next range even while this process waits for an older, slower block
    # to merge in order. Two blocks per worker in flight left one idle for ~0.07 s at the end.
    with InOrder(cols, n_workers if len(ranges) > 1 else 1, merged, ahead=len(ranges)) as decoder:
        decode = decode_range if decoder.pool is None else decode_mapped
        for a, b in ranges:
            decoder.submit(decode, (raw.name, a, b), b - a, (b - first) / max(1, last + 1 - first))
    raw.seek(last + len(layout.sep) - 1 if last > 0 else first)
    tail = raw.read()
    if progress is not None:
        progress(size, size)
    return _finish(tail, layout, cols, Tables((os.getpid(), id(tail)), cols.shapes_for))


def _finish(rest: bytes, layout: Layout, cols: Columns, tables: Tables) -> RawTrace:
    """Decode the last event and the top-level keys after the event list (the array form has
    none: what follows its "]" may only be blanks)."""
    for m in _LAST.finditer(rest):
        buf = bytearray(b"[" + rest[: m.start() + 1] + b"]")
        try:
            last = DECODER.decode(buf)
            top = TRACE_DECODER.decode(layout.header + b"]" + layout.closing + rest[m.end() :])
        except msgspec.DecodeError:
            continue
        cols.merge(columnize(last, tables), 1.0)
        return top
    raise Bail
