"""Issue #7, fast at scale: the streamed loader gives exactly what the full decoder gives, the
benchmark's replicated traces stay valid, and the vectorized stages agree with plain algorithms."""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import H200, NEMOTRON_8L_TRAIN, QWEN_TRAIN, USER_STACK, USER_TRAIN
from traceparse import load as L
from traceparse.index import _thread_ids, build_forest
from traceparse.load import stream, whole
from traceparse.load.schema import RawTrace

FIXTURES = sorted(H200.glob("*.pt.trace.json.gz"))
ROOT = Path(__file__).resolve().parent.parent


def _bench():
    spec = importlib.util.spec_from_file_location("bench_analyze", ROOT / "scripts" / "bench_analyze.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_analyze"] = mod
    spec.loader.exec_module(mod)
    return mod


def _full(path: Path, shapes_for: L.ShapesFor = None) -> tuple[RawTrace, L.Events, int]:
    decoded, _ = whole.decode(whole.read_bytes(path), path)
    events, dropped = whole.columns(decoded.traceEvents, shapes_for)
    return decoded, events, dropped


def assert_same_events(a: L.Events, b: L.Events) -> None:
    for f in fields(L.Events):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        else:
            assert x == y, f.name


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name.split(".pt.")[0])
def test_streamed_columns_are_those_of_the_full_decoder(path: Path) -> None:
    fast = stream.load_columns(path)
    assert fast is not None, "the fast path should take every Kineto fixture"
    top, events, dropped, _form = fast
    decoded, ref, ref_dropped = _full(path)
    assert_same_events(events, ref)
    assert dropped == ref_dropped
    assert top.traceparse == decoded.traceparse
    assert top.deviceProperties == decoded.deviceProperties


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four back-to-back copies of a training trace (fwdbwd flows, sequence numbers), ~20 MB."""
    bench = _bench()
    out = tmp_path_factory.mktemp("scale") / "qwen-x4.pt.trace.json"
    bench.write_trace(bench.load_template(QWEN_TRAIN), 4, out)
    return out


@pytest.mark.parametrize("path", FIXTURES[:3], ids=lambda p: p.name.split(".pt.")[0])
def test_only_the_shapes_the_flop_counter_reads_are_kept_and_alike_on_both_paths(path: Path) -> None:
    from traceparse.flops.formulas import shapes_needed

    fast = stream.load_columns(path, shapes_for=shapes_needed, n_workers=2, block=256 << 10)
    assert fast is not None
    events = fast[1]
    assert_same_events(events, _full(path, shapes_needed)[1])
    every = _full(path)[1]
    names = np.array(events.names, dtype=object)
    kept = events.shape >= 0
    assert events.shapes_recorded and 0 < kept.sum() < (every.shape >= 0).sum()
    assert all(shapes_needed(n) for n in set(names[events.name[kept]]))
    wanted = np.array([shapes_needed(n) for n in every.names])[every.name] & (every.shape >= 0)
    np.testing.assert_array_equal(kept, wanted)  # every wanted op kept its shapes
    for row in np.flatnonzero(kept)[:: max(1, int(kept.sum()) // 50)]:
        assert events.shape_of(int(row)) == every.shape_of(int(row))


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("gz", [False, True])
def test_small_blocks_workers_and_gzip_do_not_change_the_columns(replicated: Path, workers: int, gz: bool) -> None:
    if workers > 1 and sys.platform.startswith("linux"):
        assert stream._can_fork(), "the worker path should run here"
    path = replicated
    if gz:
        path = replicated.with_suffix(".json.gz")
        if not path.exists():
            path.write_bytes(gzip.compress(replicated.read_bytes(), 1))
    fast = stream.load_columns(path, block=256 << 10, n_workers=workers)  # dozens of blocks
    assert fast is not None
    _, ref, ref_dropped = _full(replicated)
    assert_same_events(fast[1], ref)
    assert fast[2] == ref_dropped


@pytest.mark.parametrize("layout", ["one line", "compact", "indented", "array", "CRLF"])
@pytest.mark.parametrize("gz", [False, True])
def test_every_layout_streams_in_many_blocks(tmp_path: Path, layout: str, gz: bool) -> None:
    """Issue #21: a trace saved by another tool streams like Kineto's own file, block by block,
    in workers, to the same columns as the whole-file reader gives."""
    doc = json.loads(gzip.decompress(USER_TRAIN.read_bytes()))
    events = doc["traceEvents"]
    data = {
        "one line": lambda: json.dumps(doc),
        "compact": lambda: json.dumps(doc, separators=(",", ":")),
        "indented": lambda: json.dumps(doc, indent=2),
        "array": lambda: json.dumps(events),
        "CRLF": lambda: json.dumps(doc, indent=1).replace("\n", "\r\n"),
    }[layout]().encode()
    path = tmp_path / ("t.json.gz" if gz else "t.json")
    path.write_bytes(gzip.compress(data, 1) if gz else data)
    fast = stream.load_columns(path, block=256 << 10, n_workers=2)  # a dozen blocks
    assert fast is not None, "the streamed reader should take this layout"
    assert fast.form == ("array" if layout == "array" else "object")
    ref_path = tmp_path / "ref.json"
    ref_path.write_bytes(data)
    _, ref, ref_dropped = _full(ref_path)
    assert_same_events(fast.events, ref)
    assert fast.dropped == ref_dropped


@pytest.mark.parametrize("gz", [False, True])
def test_a_worker_that_cannot_start_or_dies_leaves_one_process_doing_it(
    replicated: Path, monkeypatch, gz: bool
) -> None:
    from concurrent.futures.process import BrokenProcessPool

    path = replicated
    if gz:
        path = replicated.with_suffix(".json.gz")
        if not path.exists():
            path.write_bytes(gzip.compress(replicated.read_bytes(), 1))
    monkeypatch.setattr(stream.ProcessPoolExecutor, "submit", lambda self, *a, **k: _failed(BrokenProcessPool("x")))
    fast = stream.load_columns(path, block=256 << 10, n_workers=2)
    assert fast is not None
    assert_same_events(fast[1], _full(replicated)[1])


def test_no_process_pool_to_be_had_leaves_one_process_doing_it(replicated: Path, monkeypatch) -> None:
    def no_pool(*_a: object, **_k: object) -> None:
        raise OSError("no semaphores here")

    monkeypatch.setattr(stream, "ProcessPoolExecutor", no_pool)
    fast = stream.load_columns(replicated, block=256 << 10, n_workers=2)
    assert fast is not None
    assert_same_events(fast[1], _full(replicated)[1])


def _failed(exc: BaseException):
    from concurrent.futures import Future

    fut: Future[object] = Future()
    fut.set_exception(exc)
    return fut


def test_progress_reports_bytes_up_to_the_file_size(replicated: Path) -> None:
    seen: list[tuple[int, int]] = []
    assert stream.load_columns(replicated, lambda done, total: seen.append((done, total)), block=1 << 20) is not None
    assert len(seen) > 3
    assert seen[-1] == (replicated.stat().st_size, replicated.stat().st_size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def _kineto(events: list[dict], **top: object) -> bytes:
    """Kineto's layout: one event per `\\n  {` block."""
    body = ",\n".join("  " + json.dumps(e, indent=None) for e in events)
    head = "".join(f'  "{k}": {json.dumps(v)},\n' for k, v in top.items())
    return ("{\n" + head + '  "traceEvents": [\n' + body + "\n  ],\n" + '  "traceName": "x"\n}').encode()


BASE = [
    {"ph": "X", "cat": "user_annotation", "name": "ProfilerStep#1", "pid": 1, "tid": 1, "ts": 0.0, "dur": 100.0},
    {"ph": "X", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 1.0, "dur": 10.0,
     "args": {"External id": 7, "Input Dims": [[2, 3], [3, 4]], "Input type": ["float", "float"],
              "Sequence number": 3}},
    {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": 2.0, "dur": 1.0,
     "args": {"correlation": 9, "External id": 7}},
    {"ph": "s", "cat": "ac2g", "name": "ac2g", "id": 9, "pid": 1, "tid": 1, "ts": 2.0},
    {"ph": "X", "cat": "kernel", "name": "gemm_kernel", "pid": 0, "tid": 7, "ts": 5.0, "dur": 3.0,
     "args": {"correlation": 9, "External id": 7, "stream": 7, "device": 0}},
    {"ph": "f", "cat": "ac2g", "name": "ac2g", "id": 9, "pid": 0, "tid": 7, "ts": 5.0, "bp": "e"},
    {"ph": "X", "cat": "gpu_memcpy", "name": "Memcpy", "pid": 0, "tid": 7, "ts": 9.0, "dur": 1.0,
     "args": {"bytes": 4096, "stream": 7}},
    {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "python"}},
    {"ph": "X", "cat": "Trace", "name": "PyTorch Profiler (0)", "pid": "Spans", "tid": "PyTorch Profiler",
     "ts": 0.0, "dur": 120.0},
    {"ph": "i", "s": "g", "name": "Record Window End", "pid": "", "tid": "", "ts": 120.0},
]  # fmt: skip


def _variant(change: str) -> tuple[bytes, bool]:
    """(trace bytes, whether the fast path must take it) for one unusual but valid input."""
    events = json.loads(json.dumps(BASE))
    if change == "plain":
        return _kineto(events, schemaVersion=1), True
    if change == "keys after the events":  # a "]" in the top-level keys that follow the events
        return _kineto(events)[:-2] + b',\n  "deviceProperties": [{"name": "X]"}]\n}', True
    if change == "null fields":
        events[1]["args"]["Python parent id"] = None
        events[2]["pid"] = None
        events[1]["args"]["Sequence number"] = None
        return _kineto(events), True
    if change == "missing ts and dur":
        del events[1]["dur"]
        del events[3]["ts"]
        return _kineto(events), True
    if change == "string External id":
        events[1]["args"]["External id"] = "0x7"
        return _kineto(events), False
    if change == "huge id":
        events[4]["args"]["correlation"] = 2**70
        return _kineto(events), False
    if change == "unknown phase":
        events.append({"ph": "Z", "name": "z", "pid": 1, "tid": 1, "ts": 1.0})
        return _kineto(events), False
    if change == "missing phase":
        del events[1]["ph"]
        return _kineto(events), False
    if change == "phase not the first key":
        events[2] = {k: v for k, v in events[2].items() if k != "ph"} | {"ph": "X"}
        return _kineto(events), True
    if change == "other phases with a duration and ids":  # never kept, never counted as dropped
        events.append({"ph": "i", "name": "mark", "pid": 1, "tid": 1, "ts": 3.0, "dur": 2.0})
        events.append({"ph": "B", "cat": "cpu_op", "name": "aten::mm", "pid": 1, "tid": 1, "ts": 4.0,
                       "args": {"correlation": 9, "External id": 7}})  # fmt: skip
        return _kineto(events), True
    if change == "nanoseconds":
        for e in events:
            if isinstance(e.get("ts"), float):
                e["ts"] = int(e["ts"] * 1000) + 1_790_000_000_000_000_000  # an epoch in ns
            if isinstance(e.get("dur"), float):
                e["dur"] = int(e["dur"] * 1000)
        return _kineto(events, displayTimeUnit="ns"), False
    # Other writers' layouts stream too (issue #21): the separator is read from the file.
    if change == "array form":
        return json.dumps(events).encode(), True
    if change == "array form, indented":
        return json.dumps(events, indent=1).encode(), True
    if change == "array form without its closing bracket":
        return json.dumps(events).encode()[:-1], False
    if change == "minified":
        return json.dumps({"traceEvents": events}, separators=(",", ":")).encode(), True
    if change == "json.dump on one line":
        return json.dumps({"traceEvents": events, "schemaVersion": 1}).encode(), True
    if change == "json.dump indented":
        return json.dumps({"schemaVersion": 1, "traceEvents": events}, indent=4).encode(), True
    if change == "CRLF line ends":
        return _kineto(events).replace(b"\n", b"\r\n"), True
    if change == "byte-order mark":
        return b"\xef\xbb\xbf" + _kineto(events), False
    raise AssertionError(change)


VARIANTS = [
    "plain",
    "keys after the events",
    "null fields",
    "missing ts and dur",
    "string External id",
    "huge id",
    "unknown phase",
    "missing phase",
    "phase not the first key",
    "other phases with a duration and ids",
    "nanoseconds",
    "array form",
    "array form, indented",
    "array form without its closing bracket",
    "minified",
    "json.dump on one line",
    "json.dump indented",
    "CRLF line ends",
    "byte-order mark",
]


@pytest.mark.parametrize("change", VARIANTS)
def test_unusual_inputs_load_as_the_full_path_loads_them(tmp_path: Path, change: str, monkeypatch) -> None:
    data, fast_ok = _variant(change)
    path = tmp_path / "t.json"
    path.write_bytes(data)
    fast = stream.load_columns(path)
    if fast_ok:
        assert fast is not None
    else:
        assert fast is None
    got = L.load_trace(path)
    monkeypatch.setattr(stream, "load_columns", lambda *a, **k: None)
    ref = L.load_trace(path)
    assert_same_events(got.events, ref.events)
    assert (got.dropped_events, got.notes, got.metadata, got.device_properties) == (
        ref.dropped_events,
        ref.notes,
        ref.metadata,
        ref.device_properties,
    )


@pytest.mark.parametrize("path", [QWEN_TRAIN, USER_STACK, USER_TRAIN], ids=lambda p: p.name.split(".pt.")[0])
def test_reports_from_both_loaders_are_identical(path: Path, monkeypatch) -> None:
    """Also covers count_flops keyed by Raw identity (shared Raws) vs by raw bytes (full path)."""
    from traceparse.api import run_pipeline

    fast = run_pipeline(path).report.to_dict()
    monkeypatch.setattr(stream, "load_columns", lambda *a, **k: None)
    assert run_pipeline(path).report.to_dict() == fast


def test_replicated_traces_are_valid_copies_of_the_fixture(tmp_path: Path) -> None:
    """The benchmark's traces: N copies give N times the steps and the same per-step report."""
    from traceparse.api import run_pipeline

    bench = _bench()
    out = tmp_path / "x3.pt.trace.json"
    template = bench.load_template(NEMOTRON_8L_TRAIN)
    n = bench.write_trace(template, 3, out)
    one, three = run_pipeline(NEMOTRON_8L_TRAIN).report, run_pipeline(out).report
    original = len(json.loads(gzip.decompress(NEMOTRON_8L_TRAIN.read_bytes()))["traceEvents"])
    assert template.events_per_copy + len(template.once) == original
    assert n == 3 * template.events_per_copy + len(template.once)
    assert len(json.loads(out.read_bytes())["traceEvents"]) == n
    assert three.general.steps == 3 * one.general.steps
    assert three.general.kernel_ms == pytest.approx(one.general.kernel_ms, rel=1e-12)
    assert [b.gpu_ms for b in three.blocks] == pytest.approx([b.gpu_ms for b in one.blocks], rel=1e-12)
    assert [p.kernel_ms for p in three.phases] == pytest.approx([p.kernel_ms for p in one.phases], rel=1e-12)


def _nested(seed: int) -> list[tuple[int, float, float]]:
    """Strictly nested intervals on a few threads (distinct starts, no touching): (thread, start, dur)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[int, float, float]] = []

    def fill(thread: int, lo: float, hi: float, depth: int) -> None:
        k = int(rng.integers(0, 4)) if depth < 5 else 0
        if k == 0 or hi - lo < 8:
            return
        cuts = np.sort(rng.choice(np.arange(int(lo) + 1, int(hi)), size=2 * k, replace=False)).astype(float)
        for a, b in zip(cuts[::2], cuts[1::2], strict=True):
            out.append((thread, a, b - a))
            fill(thread, a, b, depth + 1)

    for thread in range(int(rng.integers(1, 4))):
        fill(thread, 0.0, 10_000.0, 0)
    rng.shuffle(out)  # events come in any order
    return out


def _cpu_ops(intervals: list[tuple[int, float, float]] | list[tuple[int, int, int]]) -> L.Events:
    """CPU ops of one process from (thread, start, duration) triples."""
    n = len(intervals)
    return L.Events(
        kind=np.full(n, L.CPU_OP, np.uint8),
        name=np.zeros(n, np.int32),
        names=("op",),
        ts=np.array([s for _, s, _ in intervals], float),
        dur=np.array([d for _, _, d in intervals], float),
        pid=np.ones(n, np.int64),
        tid=np.array([t for t, _, _ in intervals], np.int64),
        **{k: np.full(n, -1, np.int64) for k in L_INT},
        nbytes=np.zeros(n),
        shape=np.full(n, -1, np.int32),
        shapes=(),
        shapes_recorded=False,
    )


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_forest_parents_are_the_innermost_containers(seed: int) -> None:
    intervals = _nested(seed)
    ev = _cpu_ops(intervals)
    forest = build_forest(ev)
    got = {int(r): (int(forest.rows[p]) if p >= 0 else -1) for r, p in zip(forest.rows, forest.parent, strict=True)}
    for i, (t, s, d) in enumerate(intervals):
        around = [j for j, (u, a, e) in enumerate(intervals) if u == t and a < s and a + e > s + d]
        assert got[i] == (min(around, key=lambda j: intervals[j][2]) if around else -1)


L_INT = ("external_id", "correlation", "seq", "fwd_tid", "stream", "device", "py_id", "py_parent")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([-5, -2, 0, 3, 749, 2**40]), st.sampled_from([-7, 1, 591, 2**50])), max_size=60)
)
def test_thread_ids_number_pairs_in_pid_tid_order(pairs: list[tuple[int, int]]) -> None:
    pid = np.array([p for p, _ in pairs], np.int64)
    tid = np.array([t for _, t in pairs], np.int64)
    if not pairs:
        return
    ref = np.unique(np.stack([pid, tid], axis=1), axis=0, return_inverse=True)[1].reshape(-1)
    np.testing.assert_array_equal(_thread_ids(pid, tid), ref)


def test_progress_shows_only_after_the_delay_and_only_when_asked() -> None:
    from rich.console import Console

    from traceparse.progress import Progress

    out = io.StringIO()
    with Progress(console=Console(file=out, force_terminal=True, width=80), delay=0.0) as p:
        p("reading", 0.5)
        p("indexing", None)
    assert p.shown and "indexing" in out.getvalue()
    with Progress(console=Console(file=io.StringIO(), force_terminal=True), delay=60) as p:
        p("reading", 0.5)
    assert not p.shown
    with Progress(enabled=False, console=Console(file=io.StringIO(), force_terminal=True), delay=0) as p:
        p("reading", 0.5)
    assert not p.shown


def test_quiet_analyze_writes_nothing_on_stderr() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "traceparse", "analyze", "-f", "json", "--quiet", str(QWEN_TRAIN)],
        capture_output=True,
        check=True,
    )
    assert done.stderr == b""
    assert json.loads(done.stdout)["general"]["steps"] == 2


@pytest.mark.slow
def test_a_million_events_within_the_memory_target(tmp_path: Path) -> None:
    """~1M events: the whole analyze's peak RSS stays under 2.5x the JSON (bench: scripts/bench_analyze.py)."""
    bench = _bench()
    template = bench.load_template(bench.DEFAULT_FIXTURE)
    path = tmp_path / "1M.pt.trace.json"
    n = bench.write_trace(template, bench.copies_for(template, 1_000_000), path)
    r = bench.run_child(
        [sys.executable, "-m", "traceparse", "analyze", "-f", "json", "-q", str(path)], dict(os.environ)
    )
    assert r.ok and n > 900_000
    assert r.rss_mb * 1e6 <= 2.5 * path.stat().st_size


def test_shape_arguments_are_numbered_once_per_distinct_value() -> None:
    fast = stream.load_columns(QWEN_TRAIN)
    assert fast is not None
    ev = fast[1]
    with_shape = ev.shape[ev.shape >= 0]
    assert with_shape.size > 10 * len(ev.shapes) > 0
    assert sorted(set(with_shape.tolist())) == list(range(len(ev.shapes)))  # every code used
    texts = [(bytes(s.dims), bytes(s.types or b""), bytes(s.concrete or b"")) for s in ev.shapes]
    assert len(set(texts)) == len(texts)  # no two codes for one value
    assert all(isinstance(s.dims, msgspec.Raw) and msgspec.json.decode(s.dims) is not None for s in ev.shapes)
    assert (ev.kind[ev.shape >= 0] == L.CPU_OP).all()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 1.0, 1.5, 2.0, 7.25]), st.integers(-3, 3)), max_size=80)
)
def test_nearly_sorted_lexsort_is_lexsort(rows: list[tuple[int, float, int]]) -> None:
    from traceparse.index import lexsort_nearly_sorted

    thread = np.array([r[0] for r in rows], np.int64)
    time_ = np.array([r[1] for r in rows], float)
    minor = np.array([r[2] for r in rows], np.int64)
    keys = (minor, time_, thread)
    np.testing.assert_array_equal(lexsort_nearly_sorted(keys), np.lexsort(keys))


def test_analyze_keeps_openblas_to_one_thread_unless_the_user_chose(monkeypatch) -> None:
    from traceparse import cli

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delitem(sys.modules, "numpy")  # as in a fresh `traceparse analyze` process
    cli.no_blas_threads()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "6")
    cli.no_blas_threads()
    assert os.environ["OPENBLAS_NUM_THREADS"] == "6"
    done = subprocess.run(  # the command itself: numpy is first imported after the setting
        [
            sys.executable,
            "-c",
            "import os, sys; from traceparse.cli import main; sys.argv = ['traceparse', *sys.argv[1:]]\n"
            "try: main()\nexcept SystemExit: pass\nprint(os.environ.get('OPENBLAS_NUM_THREADS'))",
            "analyze",
            "-q",
            "-f",
            "json",
            "-o",
            os.devnull,
            str(QWEN_TRAIN),
        ],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"},
        check=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "1"


def _sweep_depths(thread: np.ndarray, start: np.ndarray, dur: np.ndarray) -> np.ndarray:
    """Reference: walk every start and end point in time order, counting open intervals (at one
    instant: non-empty ends, then starts in position order, then empty ends innermost first)."""
    points = []
    for i, (t, s, d) in enumerate(zip(thread.tolist(), start.tolist(), dur.tolist(), strict=True)):
        points.append((t, s, 1, i, True))
        points.append((t, s + d, 0 if d > 0 else 2, -i, False))
    depth = np.zeros(thread.size, np.int64)
    open_now, current = 0, None
    for t, _, _, key, is_start in sorted(points):
        if t != current:
            open_now, current = 0, t
        if is_start:
            depth[key] = open_now
        open_now += 1 if is_start else -1
    return depth


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 12), st.sampled_from([0, 0, 1, 2, 3, 7, 20])), max_size=50))
def test_forest_depths_and_parents_follow_the_sweep_with_ties_and_empty_intervals(
    intervals: list[tuple[int, int, int]],
) -> None:
    """Equal starts, touching intervals, zero-length ones and partial overlaps: depth is the
    number of intervals open at a start in sweep order; the parent is the last earlier interval
    one level up in the same thread."""
    n = len(intervals)
    ev = _cpu_ops(intervals)
    forest = build_forest(ev)
    thread = ev.tid[forest.rows]
    np.testing.assert_array_equal(forest.depth, _sweep_depths(thread, forest.start, forest.end - forest.start))
    for i in range(n):
        up = [j for j in range(i) if thread[j] == thread[i] and forest.depth[j] == forest.depth[i] - 1]
        assert forest.parent[i] == (up[-1] if up else -1)
    for level in forest.levels():  # grouped by depth, ascending within a level
        assert (forest.depth[level] == forest.depth[level[0]]).all() and (np.diff(level) > 0).all()
    own = np.arange(n) % 3 == 0
    got = forest.propagate(np.arange(n), own)
    for i in range(n):
        j = i
        while j >= 0 and not own[j]:
            j = int(forest.parent[j])
        assert got[i] == j


@pytest.mark.parametrize("plain", [False, True], ids=["gzip", "plain file"])
@pytest.mark.parametrize("name", ["hta-nccl_data.json.gz", "tl-b200-eager_trace.json.gz"])
def test_collective_arguments_are_read_alike_by_both_readers(name: str, plain: bool, tmp_path: Path) -> None:
    """NCCL kernels carry their collective's name, sizes, group and dtype (torch ≥ 2.1); both
    the gzip stream and the plain file's ranges (small blocks: most hold no collective) find them."""
    path = H200.parent / "foreign" / name
    if plain:
        path = tmp_path / name.removesuffix(".gz")
        path.write_bytes(gzip.decompress((H200.parent / "foreign" / name).read_bytes()))
    fast = stream.load_columns(path, block=64 << 10, n_workers=2)
    assert fast is not None
    _, full, _ = _full(path)
    assert_same_events(fast.events, full)
    assert full.comm is not None and full.comms
    doc = json.loads(gzip.decompress((H200.parent / "foreign" / name).read_bytes()))
    expected = {
        (e["args"]["Collective name"], e["args"].get("In msg nelems"), e["args"].get("Group size"))
        for e in doc["traceEvents"]
        if e.get("cat") == "kernel" and "Collective name" in e.get("args", {})
    }
    got = {(c.collective, c.in_nelems, c.group_size) for c in full.comms}
    assert got == expected
