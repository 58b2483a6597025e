"""`traceparse annotate`: the original events kept byte for byte, and new tracks that nest strictly."""

from __future__ import annotations

import gzip
import json
import math
from collections import defaultdict
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import NEMOTRON_8L, NEMOTRON_8L_TRAIN, QWEN_GENERATE, USER_STACK, USER_TRAIN, analysis
from traceparse.annotate import CATEGORY, NestingError, Slice, annotate_trace, assign_lanes, check_nesting, to_ns
from traceparse.annotate import events as ann_events
from traceparse.api import run_pipeline
from traceparse.cli import app
from traceparse.errors import UsageError

runner = CliRunner()


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _raw_events(data: bytes) -> tuple[list[bytes], dict[str, msgspec.Raw]]:
    if data.lstrip()[:1] == b"[":
        return [bytes(r) for r in msgspec.json.decode(data, type=list[msgspec.Raw])], {}
    top = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
    return [bytes(r) for r in msgspec.json.decode(top["traceEvents"], type=list[msgspec.Raw])], top


def _strict_json(raw: bytes) -> Any:
    """Standard JSON only (no NaN/Infinity), numbers exact (Decimal) so nesting is checked in exact ns."""

    def bad(token: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {token}")

    return json.loads(raw, parse_float=Decimal, parse_constant=bad)


@cache
def _annotated(path: Path, tmp: Path) -> tuple[list[bytes], list[bytes], dict[str, msgspec.Raw], Any]:
    out = tmp / (path.name.split(".pt.")[0] + ".annotated.json.gz")
    summary = annotate_trace(path, out, analysis(path))
    original, _ = _raw_events(_read_bytes(path))
    data = gzip.decompress(out.read_bytes())
    annotated, top = _raw_events(data)
    return original, annotated, top, summary


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("annotate")


CASES = [NEMOTRON_8L, NEMOTRON_8L_TRAIN, QWEN_GENERATE, USER_STACK]
IDS = ["forward", "train", "generate", "with_stack"]


def _ids(raw: list[bytes]) -> set[Any]:
    out = set()
    for r in raw:
        e = json.loads(r)
        out.add(("pid", e.get("pid")))
        out.add(("tid", e.get("tid")))
    return out


@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_original_events_are_kept_byte_for_byte_in_order(path: Path, tmp: Path) -> None:
    original, annotated, top, summary = _annotated(path, tmp)
    assert len(annotated) > len(original)
    assert annotated[: len(original)] == original  # every original event, same bytes, same order
    assert summary.original_events == len(original)
    assert summary.added_events == len(annotated) - len(original)
    src_top = msgspec.json.decode(_read_bytes(path), type=dict[str, msgspec.Raw])
    for key, value in src_top.items():  # every other top-level key too
        if key != "traceEvents":
            assert bytes(top[key]) == bytes(value), key
    new = [_strict_json(r) for r in annotated[len(original) :]]
    assert all(e["ph"] == "M" or e["cat"] == CATEGORY for e in new)
    # New pids/tids are used by no original event, and every one is named.
    old_pids = {json.loads(r).get("pid") for r in original}
    old_tids = {json.loads(r).get("tid") for r in original}
    new_pids = {e["pid"] for e in new}
    new_tids = {e["tid"] for e in new if "tid" in e}
    assert not (new_pids | new_tids) & (old_pids | old_tids)
    assert not new_pids & new_tids
    named_p = {e["pid"] for e in new if e["ph"] == "M" and e["name"] == "process_name"}
    named_t = {e["tid"] for e in new if e["ph"] == "M" and e["name"] == "thread_name"}
    assert named_p == new_pids
    assert named_t == {e["tid"] for e in new if e["ph"] == "X"}


@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_slices_nest_strictly_on_every_track(path: Path, tmp: Path) -> None:
    original, annotated, _, _ = _annotated(path, tmp)
    tracks: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
    for r in annotated[len(original) :]:
        e = _strict_json(r)
        if e["ph"] == "X":
            start = int(Decimal(e["ts"]) * 1000)  # exact: the digits as written
            assert Decimal(e["ts"]) * 1000 == start and Decimal(e["dur"]) * 1000 == int(Decimal(e["dur"]) * 1000)
            tracks[(e["pid"], e["tid"])].append((start, start + int(Decimal(e["dur"]) * 1000)))
    assert tracks
    for key, spans in tracks.items():
        spans.sort(key=lambda s: (s[0], -s[1]))
        stack: list[tuple[int, int]] = []
        for s, e in spans:
            assert e >= s
            while stack and stack[-1][1] <= s:
                stack.pop()
            assert not stack or e <= stack[-1][1], f"track {key}: {s}..{e} crosses {stack[-1]}"
            stack.append((s, e))


def test_module_slices_span_their_kernels_and_carry_the_report_numbers(tmp: Path) -> None:
    a = analysis(NEMOTRON_8L)
    original, annotated, _, _ = _annotated(NEMOTRON_8L, tmp)
    new = [json.loads(r) for r in annotated[len(original) :]]
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in new if e["ph"] == "M" and e["name"] == "thread_name"}
    modules = [e for e in new if e["ph"] == "X" and names[(e["pid"], e["tid"])].startswith("modules")]
    blocks = [e for e in new if e["ph"] == "X" and names[(e["pid"], e["tid"])].startswith("blocks")]
    attr = a.attribution
    calls, items, ev = attr.calls, attr.items, attr.index.events
    # Independently: the kernels of each call's subtree (a plain walk up the parents).
    spans: dict[int, list[int]] = {}
    rows = items.event_row
    start = to_ns(ev.ts[rows])
    end = start + to_ns(ev.dur[rows])
    for i in np.flatnonzero(items.call >= 0):
        c = int(items.call[i])
        while c >= 0:
            s = spans.setdefault(c, [start[i], end[i], 0, 0.0])
            s[0], s[1], s[2], s[3] = min(s[0], start[i]), max(s[1], end[i]), s[2] + 1, s[3] + items.dur[i]
            c = int(calls.parent[c])
    assert len(modules) == len(spans)  # forward only, one stream: one slice per call with kernels
    # (Root and inner model are both "model": the class tells them apart.)
    by_module_and_step = {(e["args"]["module"], e["args"]["class"], e["args"]["step"]): e for e in modules}
    assert len(by_module_and_step) == len(modules)
    for c, (s, e, n, us) in spans.items():
        sl = by_module_and_step[(str(calls.qual[c]), str(calls.cls[c]), int(calls.step[c]))]
        assert int(to_ns(np.array([sl["ts"]]))[0]) == s
        assert int(to_ns(np.array([sl["ts"]]))[0] + to_ns(np.array([sl["dur"]]))[0]) == e
        assert sl["args"]["kernels"] == n
        assert sl["args"]["inclusive_ms"] == pytest.approx(us / 1e3, abs=1e-6)
        assert sl["args"]["span_ms"] == pytest.approx((e - s) / 1e6)
    # Per block: FLOPs over kernel time across the steps is the report's block TFLOP/s.
    rep = {b.index: b for b in a.report.blocks}
    assert {e["args"]["block"] for e in blocks} == set(rep)
    for idx, row in rep.items():
        mine = [e["args"] for e in blocks if e["args"]["block"] == idx]
        assert len(mine) == a.report.general.steps
        flops = sum(m["flops"] for m in mine)
        ms = sum(m["inclusive_ms"] for m in mine)
        assert flops / len(mine) == pytest.approx(row.flops, rel=1e-9)
        assert ms / len(mine) == pytest.approx(row.gpu_ms, rel=1e-6)
        assert flops / (ms * 1e9) == pytest.approx(row.tflops, rel=1e-6)
        assert e_name_kind(blocks, idx) == f"block {idx} · {row.kind}"


def e_name_kind(blocks: list[dict[str, Any]], idx: int) -> str:
    return next(e["name"] for e in blocks if e["args"]["block"] == idx)


def test_train_slices_are_per_phase_and_counters_follow_blocks(tmp: Path) -> None:
    original, annotated, _, summary = _annotated(NEMOTRON_8L_TRAIN, tmp)
    new = [json.loads(r) for r in annotated[len(original) :]]
    xs = [e for e in new if e["ph"] == "X"]
    phases = {e["args"]["phase"] for e in xs}
    assert {"forward", "backward"} <= phases
    assert any(e["name"].endswith("[backward]") for e in xs)
    counters = [e for e in new if e["ph"] == "C"]
    keys = {(e["name"], *e["args"]) for e in counters}
    assert keys == {("block", "TFLOP/s"), ("block copy", "GB/s")}  # copy bytes are known here (memcpy/memset)
    tflops = [e for e in counters if "TFLOP/s" in e["args"]]
    assert all(math.isfinite(e["args"]["TFLOP/s"]) and e["args"]["TFLOP/s"] >= 0 for e in tflops)
    block_values = {round(e["args"]["tflops"], 4) for e in xs if e["name"].startswith("block ")}
    assert {round(e["args"]["TFLOP/s"], 4) for e in tflops} - {0.0} <= block_values
    assert tflops[-1]["args"]["TFLOP/s"] == 0.0  # back to 0 after the last block
    assert [c.rsplit(" / ", 1)[1] for c in summary.counters] == ["block TFLOP/s", "block copy GB/s"]


def test_generate_root_slices_are_labeled_prefill_and_decode(tmp: Path) -> None:
    original, annotated, _, _ = _annotated(QWEN_GENERATE, tmp)
    roots = [json.loads(r) for r in annotated[len(original) :]]
    labels = [e["args"]["forward"] for e in roots if e["ph"] == "X" and "forward" in e["args"]]
    assert labels.count("prefill") == 2  # two profiler steps
    assert "decode 7" in labels and "decode 8" not in labels


def test_reanalyzing_the_annotated_trace_gives_the_same_report(tmp: Path) -> None:
    _annotated(NEMOTRON_8L, tmp)
    out = tmp / "nemotron-nano-9b-v2-8l-forward-seq215.annotated.json.gz"
    before = analysis(NEMOTRON_8L).report.to_dict()
    after = run_pipeline(out).report.to_dict()
    before.pop("source")
    after.pop("source")
    assert after == before


def test_array_form_unclosed_trace(tmp_path: Path) -> None:
    original, _ = _raw_events(_read_bytes(USER_STACK))
    src = tmp_path / "array.json"
    src.write_bytes(b"[" + b",\n".join(original) + b",\n")  # the Chrome format allows no closing bracket
    out = tmp_path / "array.annotated.json"
    annotate_trace(src, out)
    data = out.read_bytes()
    assert data.lstrip().startswith(b"[")
    annotated, _ = _raw_events(data)
    assert annotated[: len(original)] == original and len(annotated) > len(original)


def test_nanosecond_traces_are_refused_not_misplaced(tmp_path: Path) -> None:
    trace = json.loads(_read_bytes(USER_STACK))
    for e in trace["traceEvents"]:
        for k in ("ts", "dur"):
            if isinstance(e.get(k), int | float):
                e[k] = round(e[k] * 1000)
    trace["displayTimeUnit"] = "ns"
    src = tmp_path / "ns.json"
    src.write_text(json.dumps(trace))
    with pytest.raises(UsageError, match="microseconds"):
        annotate_trace(src, tmp_path / "out.json")


def test_check_nesting_accepts_nested_and_touching_and_rejects_crossing() -> None:
    check_nesting([(0, 10), (0, 10), (2, 5), (5, 5), (5, 8), (10, 20), (10, 10)])
    with pytest.raises(NestingError):
        check_nesting([(0, 10), (5, 15)])
    with pytest.raises(NestingError):
        check_nesting([(0, 10), (2, 6), (4, 8)])


def _slice(start: int, end: int, key: int, parent: int | None, depth: int) -> Slice:
    return Slice(start, end, f"c{key}", depth, (0, 0, key), None if parent is None else (0, 0, parent), {})


def test_overlapping_siblings_go_to_new_lanes_and_children_follow_their_parent() -> None:
    # root 0..100; siblings A 0..50 and B 45..100 overlap (async kernels); B's child 60..70; C after.
    slices = [
        _slice(0, 100, 0, None, 0),
        _slice(0, 50, 1, 0, 1),
        _slice(45, 100, 2, 0, 1),
        _slice(60, 70, 3, 2, 2),
        _slice(10, 20, 4, 1, 2),
    ]
    lanes = assign_lanes(slices)
    assert len(lanes) == 2
    for lane in lanes:
        check_nesting([(s.start_ns, s.end_ns) for s in lane])
    lane_of = {s.key[2]: i for i, lane in enumerate(lanes) for s in lane}
    assert lane_of[0] == lane_of[1] == lane_of[4] == 0
    assert lane_of[2] == lane_of[3] == 1
    assert sorted(s.key[2] for lane in lanes for s in lane) == [0, 1, 2, 3, 4]


def test_annotation_validates_nesting_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lane assignment that let slices cross is caught by check_nesting, and nothing is written."""

    def one_lane(slices: list[Slice], prefer_parent: bool = True) -> list[list[Slice]]:
        crossed = sorted(slices, key=lambda s: s.start_ns)
        if len(crossed) >= 2:
            a, b = crossed[0], crossed[1]
            crossed[1] = Slice(a.start_ns + 1, a.end_ns + 1, b.name, b.depth, b.key, b.parent, b.args)
        return [crossed]

    monkeypatch.setattr(ann_events, "assign_lanes", one_lane)
    out = tmp_path / "x.json.gz"
    with pytest.raises(NestingError):
        annotate_trace(USER_STACK, out, analysis(USER_STACK))
    assert not out.exists()


def test_annotate_cli(tmp_path: Path) -> None:
    out = tmp_path / "a.json.gz"
    result = runner.invoke(app, ["annotate", str(USER_STACK), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and "original events kept" in result.output
    result = runner.invoke(app, ["annotate", str(USER_TRAIN), "-o", str(tmp_path / "b.json.gz")])
    assert result.exit_code == 3 and "no module calls" in result.output  # an input problem
    assert not (tmp_path / "b.json.gz").exists()
    result = runner.invoke(app, ["annotate", str(out), "-o", str(out)])
    assert result.exit_code == 2 and "overwrite the input" in result.output
