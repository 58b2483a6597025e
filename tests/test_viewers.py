"""Annotated and captured traces in the viewers PyTorch users have (issue 24).

TensorBoard's profiler plugin (torch-tb-profiler) loads a trace with its own parser, and its
Trace tab serves the file with GPU-utilisation counters spliced in by cutting the text at the
last "]"; Catapult's trace viewer (chrome://tracing, and that Trace tab) then imports it. The
splice check runs always; the plugin's loader where torch-tb-profiler is installed (the dev
extra); Catapult in headless Chromium, with the viewer page shipped in the plugin's wheel.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections import defaultdict
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from tests import catapult
from tests.conftest import NEMOTRON_8L, NEMOTRON_8L_TRAIN, QWEN_GENERATE, USER_STACK, analysis
from traceparse.annotate import CATEGORY, FIRST_NEW_ID, annotate_trace
from traceparse.capture.export import METADATA_KEY, export_trace
from traceparse.cli import app

runner = CliRunner()
# torch-tb-profiler 0.4.3 passes astype(copy=False), which pandas 3 deprecates: its noise, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:The copy keyword is deprecated:Warning")

CASES = [NEMOTRON_8L, NEMOTRON_8L_TRAIN, QWEN_GENERATE, USER_STACK]
IDS = ["forward", "train", "generate", "with_stack"]
# What the plugin splices in: its counters look like this (torch_tb_profiler/profiler/gpu_metrics_parser.py).
PLUGIN_COUNTER = '{"ph":"C", "name":"GPU 0 Utilization", "pid":0, "ts":1.5, "args":{"GPU Utilization":0.5}}'
# Every series the annotated trace's counters carry, by counter name.
SERIES = {"block": {"TFLOP/s"}, "block copy": {"GB/s"}}


def plugin_splice(raw: bytes, counters: list[str]) -> bytes:
    """torch_tb_profiler 0.4.3's RunProfile.append_gpu_metrics, without its gzip."""
    return raw[: raw.rfind(b"]")] + ", {}".format(", ".join(counters)).encode() + b"]}"


def _text(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _keys(raw: bytes) -> list[str]:
    return list(msgspec.json.decode(raw, type=dict[str, msgspec.Raw]))


@cache
def _annotated(path: Path, tmp: Path) -> bytes:
    out = tmp / (path.name.split(".pt.")[0] + ".annotated.pt.trace.json.gz")
    annotate_trace(path, out, analysis(path))
    return out.read_bytes()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("viewers")


# ---- (a) the plugin's splice, and counters Catapult can read: always --------------------------


@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_annotated_trace_survives_the_plugins_splice(path: Path, tmp: Path) -> None:
    raw = gzip.decompress(_annotated(path, tmp))
    assert _keys(raw)[-1] == "traceEvents"  # nothing after the events array can catch the cut
    before = json.loads(raw)
    after = json.loads(plugin_splice(raw, [PLUGIN_COUNTER]))
    assert after["traceEvents"] == [*before["traceEvents"], json.loads(PLUGIN_COUNTER)]
    assert {k: v for k, v in after.items() if k != "traceEvents"} == {
        k: v for k, v in before.items() if k != "traceEvents"
    }
    # The source's other keys all kept, our block before the events.
    assert set(_keys(_text(path))) | {"traceparseAnnotate"} == set(before)


@pytest.mark.parametrize("path", CASES, ids=IDS)
def test_every_counter_carries_one_set_of_series_in_time_order(path: Path, tmp: Path) -> None:
    events = json.loads(gzip.decompress(_annotated(path, tmp)), parse_float=Decimal)["traceEvents"]
    counters: dict[tuple[Any, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e.get("ph") == "C" and e.get("cat") == CATEGORY:
            counters[(e["pid"], e["name"])].append(e)
    assert counters
    for (pid, name), evs in counters.items():
        series = {frozenset(e["args"]) for e in evs}
        assert series == {frozenset(SERIES[name])}, (pid, name, series)
        ts = [e["ts"] for e in evs]
        assert all(a < b for a, b in itertools.pairwise(ts)), (pid, name)
        assert evs[-1]["args"] == dict.fromkeys(SERIES[name], 0)  # back to 0 after the last block
    names = {name for _, name in counters}
    assert names == set(SERIES) if path != USER_STACK else names <= set(SERIES)


def test_counter_values_are_the_running_blocks_values(tmp: Path) -> None:
    """Each TFLOP/s and GB/s sample is the value of the block slice that runs at that time."""
    events = json.loads(gzip.decompress(_annotated(NEMOTRON_8L_TRAIN, tmp)), parse_float=Decimal)["traceEvents"]
    blocks = [e for e in events if e.get("cat") == CATEGORY and e["ph"] == "X" and e["name"].startswith("block ")]
    samples = [e for e in events if e.get("cat") == CATEGORY and e["ph"] == "C"]
    checked = 0
    for c in samples:
        ((series, value),) = c["args"].items()
        running = [b for b in blocks if b["pid"] == c["pid"] and b["ts"] <= c["ts"] < b["ts"] + b["dur"]]
        if not running:
            assert value == 0
            continue
        b = max(running, key=lambda b: b["ts"])["args"]  # the latest started wins
        want = b.get("tflops") if series == "TFLOP/s" else Decimal(b["copy_bytes"]) / (b["inclusive_ms"] * 1_000_000)
        assert float(value) == pytest.approx(float(want or 0), rel=1e-9), (series, c["ts"])
        checked += 1
    assert checked >= len(blocks), (checked, len(blocks))  # a sample at (nearly) every block start


def test_annotate_names_what_its_times_sum(tmp: Path) -> None:
    """GPU time = kernels + memcpy + memset: each slice carries the split, and the file says so."""
    data = json.loads(gzip.decompress(_annotated(NEMOTRON_8L, tmp)))
    meta = data["traceparseAnnotate"]
    assert "kernels + memcpy + memset" in meta["definitions"]["inclusive_ms"]
    assert set(meta["definitions"]) >= {"block TFLOP/s", "block copy GB/s", "kernels_only_ms", "memcpy_ms"}
    xs = [e["args"] for e in data["traceEvents"] if e.get("cat") == CATEGORY and e["ph"] == "X"]
    split = ("kernels_only_ms", "memcpy_ms", "memset_ms")
    assert all(a["inclusive_ms"] == pytest.approx(sum(a[k] for k in split), abs=3e-6) for a in xs)
    assert any(a["memcpy_ms"] > 0 for a in xs) and all(a["kernels_only_ms"] > 0 for a in xs if a["kernels"] > 3)
    # Against the report: in a forward trace every GPU operation is inside the root call, so the
    # root slices' split per step is the report's General split.
    gen = analysis(NEMOTRON_8L).report.general
    roots = [a for a in xs if a["module"] == "model" and a["class"] == "NemotronHForCausalLM"]
    for key in split:
        assert sum(a[key] for a in roots) / gen.steps == pytest.approx(getattr(gen, key), abs=2e-3), key


def test_captured_trace_survives_the_plugins_splice(tmp_path: Path) -> None:
    args = ["capture", "--preset", "qwen3-0.6b-tiny", "--device", "cpu", "--seq-len", "24", "--steps", "1"]
    result = runner.invoke(app, [*args, "-q", "-o", str(tmp_path), "--no-report"])
    assert result.exit_code == 0, result.output
    (trace,) = tmp_path.glob("*.pt.trace.json.gz")
    raw = _text(trace)
    keys = _keys(raw)
    assert keys[0] == METADATA_KEY and keys[-1] == "traceEvents"
    assert "traceName" in keys  # Kineto's trailing key, moved to the front, not dropped
    before = json.loads(raw)
    after = json.loads(plugin_splice(raw, [PLUGIN_COUNTER]))
    assert after["traceEvents"] == [*before["traceEvents"], json.loads(PLUGIN_COUNTER)]
    assert after[METADATA_KEY] == before[METADATA_KEY]


class _Prof:
    """Stands in for torch.profiler.profile: exports a fixed text."""

    def __init__(self, text: bytes) -> None:
        self.text = text

    def export_chrome_trace(self, path: str) -> None:
        Path(path).write_bytes(self.text)


@pytest.mark.parametrize(
    "tail",
    [
        b'\n  ],\n  "traceName": "/tmp/odd]dir/traceparse-x.json"\n}\n',  # a "]" in the temp path
        b'],\n"traceName": "a]", "later": [1, [2]], "obj": {"k": "]"}}',  # a future key holding lists
        b"\n]\n}",  # nothing after the events
    ],
    ids=["bracket-in-path", "trailing-lists", "none"],
)
def test_export_puts_trace_events_last_whatever_follows_them(tmp_path: Path, tail: bytes) -> None:
    events = b'{"ph": "X", "name": "a]", "args": {"Input Dims": [[1, 2], []], "x": [3]}, "ts": 1, "dur": 2}'
    exported = b'{\n  "schemaVersion": 1,\n  "traceEvents": [\n  ' + events + b",\n  " + events + tail
    out = export_trace(_Prof(exported), tmp_path / "t.pt.trace.json.gz", {METADATA_KEY: {"blocks": [0, 1]}})
    raw = _text(out)
    original = json.loads(exported)
    written = json.loads(raw)
    assert _keys(raw)[0] == METADATA_KEY and _keys(raw)[-1] == "traceEvents"
    assert {k: v for k, v in written.items() if k != METADATA_KEY} == original  # every key, every value
    after = json.loads(plugin_splice(raw, [PLUGIN_COUNTER]))
    assert after["traceEvents"][-1] == json.loads(PLUGIN_COUNTER)
    assert after[METADATA_KEY] == {"blocks": [0, 1]}


# ---- (b) torch-tb-profiler's own loader -------------------------------------------------------

# (The H200 train fixture's backward ops are under autograd threads the plugin also parses.)
TB_CASES = [NEMOTRON_8L, NEMOTRON_8L_TRAIN]
# Everything the plugin's Overview, Operator, Kernel and Trace views show.
TB_VIEWS = (
    "overview",
    "operation_pie_by_name",
    "operation_table_by_name",
    "operation_stack_by_name",
    "kernel_op_table",
    "kernel_pie",
    "kernel_table",
    "tc_pie",
    "gpu_metrics",
    "gpu_summary",
    "has_kernel",
    "has_memcpy_or_memset",
    "views",
)


@cache
def _tb_profile(path: Path, cache_dir: Path) -> Any:
    from torch_tb_profiler.profiler.data import RunProfileData
    from torch_tb_profiler.profiler.run_generator import RunGenerator

    data = RunProfileData.parse("worker0", None, str(path), str(cache_dir))
    return RunGenerator("worker0", None, data).generate_run_profile()


@pytest.mark.parametrize("path", TB_CASES, ids=["forward", "train"])
def test_tensorboard_plugin_loads_the_annotated_trace_as_the_original(path: Path, tmp: Path) -> None:
    pytest.importorskip("torch_tb_profiler", reason="torch-tb-profiler is not installed (the dev extra has it)")
    annotated = tmp / (path.name.split(".pt.")[0] + ".annotated.pt.trace.json.gz")
    _annotated(path, tmp)
    before, after = _tb_profile(path, tmp), _tb_profile(annotated, tmp)
    assert before.has_kernel and before.overview
    for view in TB_VIEWS:
        assert json.dumps(getattr(after, view), sort_keys=True, default=str) == json.dumps(
            getattr(before, view), sort_keys=True, default=str
        ), view
    # The Trace tab: the plugin's own splice of its counters into the annotated file parses.
    spliced = json.loads(gzip.decompress(after.append_gpu_metrics(gzip.decompress(annotated.read_bytes()))))
    tail = spliced["traceEvents"][-len(after.gpu_metrics) :]
    assert tail == [json.loads(c) for c in after.gpu_metrics] and len(after.gpu_metrics) > 100
    assert "traceparseAnnotate" in spliced


# ---- (c) Catapult's trace viewer in headless Chromium -----------------------------------------


def _file_tracks(text: str) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, list[float]]]]:
    """From the file itself: slices per traceparse thread and samples per counter/series, by process."""
    events = json.loads(text)["traceEvents"]
    mine = [e for e in events if isinstance(e.get("pid"), int) and e["pid"] >= FIRST_NEW_ID]
    pname = {e["pid"]: e["args"]["name"] for e in mine if e["ph"] == "M" and e["name"] == "process_name"}
    tname = {e["tid"]: e["args"]["name"] for e in mine if e["ph"] == "M" and e["name"] == "thread_name"}
    threads: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    counters: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for e in mine:
        if e["ph"] == "X":
            threads[pname[e["pid"]]][tname[e["tid"]]] += 1
        elif e["ph"] == "C":
            for series, v in e["args"].items():
                counters[pname[e["pid"]]][f"{e['name']} {series}"].append(v)
    return threads, counters


def _model_tracks(result: dict[str, Any]) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, list[float]]]]:
    """The same, from what Catapult's model holds."""
    assert "error" not in result, result.get("error")
    threads: dict[str, dict[str, int]] = {}
    counters: dict[str, dict[str, list[float]]] = {}
    for p in result["processes"]:
        if (p["name"] or "").startswith("traceparse"):
            threads[p["name"]] = p["threads"]
            counters[p["name"]] = {f"{c} {s['name']}": s["values"] for c, ser in p["counters"].items() for s in ser}
    return threads, counters


@pytest.mark.browser
@pytest.mark.skipif(catapult.chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_catapult_imports_the_annotated_trace_with_every_track_and_series(tmp: Path) -> None:
    pytest.importorskip("torch_tb_profiler", reason="torch-tb-profiler (which ships Catapult's viewer) is missing")
    original = catapult.read_text(NEMOTRON_8L)
    annotated_path = tmp / (NEMOTRON_8L.name.split(".pt.")[0] + ".annotated.pt.trace.json.gz")
    _annotated(NEMOTRON_8L, tmp)
    annotated = catapult.read_text(annotated_path)
    # What TensorBoard's Trace tab hands the viewer: the file with the plugin's counters spliced in.
    profile = _tb_profile(annotated_path, tmp)
    served = gzip.decompress(profile.append_gpu_metrics(annotated.encode())).decode()
    got = catapult.import_traces({"original": original, "annotated": annotated, "served": served}, tmp / "page")

    want_threads, want_counters = _file_tracks(annotated)
    assert want_threads == {"traceparse · GPU 0 stream 7": {"blocks": 24, "modules": 162}}
    assert set(want_counters["traceparse · GPU 0 stream 7"]) == {"block TFLOP/s", "block copy GB/s"}
    for key in ("annotated", "served"):
        threads, counters = _model_tracks(got[key])
        assert threads == want_threads, key
        assert counters == want_counters, key  # both series, every sample, in order
        # The original processes and threads are all there, with the same slices; no new warnings.
        others = {
            p["pid"]: p["threads"] for p in got[key]["processes"] if not (p["name"] or "").startswith("traceparse")
        }
        assert others == {p["pid"]: p["threads"] for p in got["original"]["processes"]}, key
        assert got[key]["warnings"] == got["original"]["warnings"], key
    gpu0 = next(p for p in got["served"]["processes"] if p["pid"] == "0")
    assert "GPU Utilization" in {s["name"] for ser in gpu0["counters"].values() for s in ser}
