"""Fuzz the analyze pipeline with mutated real traces (issue #8: bad input never crashes).

Every input must give either a report or a TraceparseError (the CLI's one-line error and exit
code), never any other exception; every report must keep the attribution invariant
(`Attribution.self_check`), render in every format with no NaN, and say null where a value is
unknown. The inputs are the H200 fixtures (cut to a step or a window, so that a case takes tens
of milliseconds) and variants of them (CPU-only, ROCm, ns timestamps), mutated structurally
(drop fields, change types, shuffle, cut, duplicate ids, move timestamps, rename, break the
metadata) and, for some cases, at the byte level (truncate, flip, gzip damage).

    python scripts/fuzz.py --cases 10000 --jobs 2            # the long run (~10 min on 2 cores)
    python scripts/fuzz.py --cases 300 --seed 7 --crash-dir out/fuzz-crashes

It prints the number of cases, reports, clean rejections (by exit code) and crashes, and exits 1
if any case crashed; each crash's input is saved under --crash-dir. tests/test_fuzz.py drives the
same mutators with hypothesis (a fast subset in CI); tests/test_bad_input.py uses the variants.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import json
import math
import os
import random
import re
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
H200 = ROOT / "fixtures" / "h200"
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

Doc = dict[str, Any]  # a decoded trace: {"traceEvents": [...], ...}

SCOPE = re.compile(r"^(?P<qual>[^\W\d][\w.\-]*) \((?P<cls>[^\W\d]\w*)\)$")
GPU_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset", "gpu_user_annotation")
LAUNCH_CATEGORIES = ("cuda_runtime", "cuda_driver")


# ---- fixtures and their variants (shared with tests/test_bad_input.py) ------------------------


@cache
def _fixture_bytes(name: str) -> bytes:
    return gzip.decompress((H200 / name).read_bytes())


def fixture(name: str) -> Doc:
    """A fresh decoded copy of fixtures/h200/<name>."""
    doc: Doc = json.loads(_fixture_bytes(name))
    return doc


def steps_of(doc: Doc) -> list[dict[str, Any]]:
    """The CPU-side ProfilerStep# spans, by start."""
    spans = [
        e
        for e in doc["traceEvents"]
        if isinstance(e, dict)
        and e.get("cat") == "user_annotation"
        and str(e.get("name", "")).startswith("ProfilerStep#")
    ]
    return sorted(spans, key=lambda e: e["ts"])


def first_steps(doc: Doc, n: int = 1) -> Doc:
    """Keep the first n profiler steps: every event that starts in them, plus metadata events."""
    steps = steps_of(doc)[:n]
    lo, hi = steps[0]["ts"], steps[-1]["ts"] + steps[-1]["dur"]
    doc["traceEvents"] = [e for e in doc["traceEvents"] if e.get("ph") == "M" or lo <= e.get("ts", lo - 1) <= hi]
    return doc


def window(doc: Doc, start_frac: float, n_events: int) -> Doc:
    """Keep n_events consecutive events in time order from start_frac of the trace (a cut
    through a long step: its spans outlive the window, as in a trace stopped early)."""
    timed = sorted((e for e in doc["traceEvents"] if e.get("ph") != "M"), key=lambda e: e["ts"])
    k = int(start_frac * max(0, len(timed) - n_events))
    doc["traceEvents"] = [e for e in doc["traceEvents"] if e.get("ph") == "M"] + timed[k : k + n_events]
    return doc


def cpu_only(doc: Doc) -> Doc:
    """What profiling with activities=[CPU] records: no GPU items, launches or flows."""
    drop = (*GPU_CATEGORIES, *LAUNCH_CATEGORIES, "ac2g")
    doc["traceEvents"] = [e for e in doc["traceEvents"] if e.get("cat") not in drop]
    for key in ("deviceProperties", "cuda_driver_version", "cuda_runtime_version", "cupti_version"):
        doc.pop(key, None)
    return doc


def gpu_only(doc: Doc) -> Doc:
    """Only the GPU side (kernels, copies, sets): no CPU op, launch or annotation."""
    doc["traceEvents"] = [e for e in doc["traceEvents"] if e.get("cat") in GPU_CATEGORIES or e.get("ph") == "M"]
    return doc


def no_shapes(doc: Doc) -> Doc:
    """record_shapes=False: no Input Dims / types / strides / concrete inputs."""
    doc["record_shapes"] = 0
    for e in doc["traceEvents"]:
        args = e.get("args")
        if isinstance(args, dict):
            for key in ("Input Dims", "Input type", "Input Strides", "Concrete Inputs"):
                args.pop(key, None)
    return doc


def no_scopes(doc: Doc) -> Doc:
    """A foreign trace: no traceparse module scopes (and no metadata)."""
    doc["traceEvents"] = [
        e
        for e in doc["traceEvents"]
        if not (e.get("cat") in ("cpu_op", "user_annotation") and SCOPE.match(str(e.get("name", ""))))
    ]
    doc.pop("traceparse", None)
    return doc


def no_steps(doc: Doc) -> Doc:
    doc["traceEvents"] = [e for e in doc["traceEvents"] if not str(e.get("name", "")).startswith("ProfilerStep#")]
    return doc


def trailing_empty_step(doc: Doc) -> Doc:
    """The loop ended inside the schedule's active window: stopping the profiler closed a last
    ProfilerStep that holds no work (the shape torch writes, see tests/test_bad_input.py)."""
    last = steps_of(doc)[-1]
    number = int(last["name"].split("#")[1]) + 1
    step = copy.deepcopy(last)
    step.update(name=f"ProfilerStep#{number}", ts=last["ts"] + last["dur"] + 5.0, dur=35.0)
    step.setdefault("args", {})["External id"] = 10**6
    doc["traceEvents"].append(step)
    for e in doc["traceEvents"]:  # the profiler's own span ends after it, as in a real trace
        if e.get("cat") == "Trace":
            e["dur"] = max(e["dur"], step["ts"] + step["dur"] + 20.0 - e["ts"])
    return doc


def unicode_modules(doc: Doc) -> Doc:
    """Module attribute and class names that are non-ASCII Python identifiers."""
    words = {"model": "модель", "layers": "слои", "self_attn": "внимание", "mlp": "多层感知机"}

    def qual(q: str) -> str:
        return ".".join(words.get(part, part) for part in q.split("."))

    for e in doc["traceEvents"]:
        m = SCOPE.match(str(e.get("name", "")))
        if m and e.get("cat") in ("cpu_op", "user_annotation"):
            cls = m.group("cls").replace("Attention", "Внимание")
            e["name"] = f"{qual(m.group('qual'))} ({cls})"
    meta = doc.get("traceparse")
    if isinstance(meta, dict):
        if isinstance(meta.get("blocks_container"), str):
            meta["blocks_container"] = qual(meta["blocks_container"])
        for row in meta.get("modules") or []:
            if isinstance(row, dict) and isinstance(row.get("name"), str):
                row["name"] = qual(row["name"])
    return doc


def nanoseconds(doc: Doc, absolute: bool = False, display_unit: str | None = "ns") -> Doc:
    """ts/dur written in integer nanoseconds; `absolute`: since the epoch (~1.8e18), with
    baseTimeNanoseconds, as some exporters write them."""
    base = doc.get("baseTimeNanoseconds")
    base = base if type(base) is int and base > 10**17 else 1_790_857_026_000_000_000
    events = doc["traceEvents"]
    t0 = min(e["ts"] for e in events if isinstance(e.get("ts"), int | float))
    for e in events:
        if isinstance(e.get("ts"), int | float):
            ns = round((e["ts"] - t0) * 1000) + 10**9
            e["ts"] = ns + base if absolute else ns
        if isinstance(e.get("dur"), int | float):
            e["dur"] = round(e["dur"] * 1000)
    doc["baseTimeNanoseconds"] = base
    if display_unit is None:
        doc.pop("displayTimeUnit", None)
    else:
        doc["displayTimeUnit"] = display_unit
    return doc


_HIP_RUNTIME = {
    "cudaLaunchKernel": "hipLaunchKernel",
    "cudaLaunchKernelExC": "hipExtLaunchKernel",
    "cuLaunchKernel": "hipExtModuleLaunchKernel",
    "cuLaunchKernelEx": "hipExtModuleLaunchKernel",
    "cudaMemcpyAsync": "hipMemcpyWithStream",
    "cudaMemsetAsync": "hipMemsetAsync",
}
_HIP_GEMM = "Cijk_Alik_Bljk_BBS_BH_Bias_HA_S_SAV_UserArgs_MT128x128x64_MI16x16x1_SN_LDSB1_AFC1_AG0_GRVWA8_K1"


def rocm(doc: Doc, roctracer: bool = False) -> Doc:
    """The same run as torch's ROCm build records it (Kineto's RocprofActivity / RoctracerActivity):
    runtime calls are cat "cuda_runtime" named hip* (driver calls too: HIP has one API), launches
    carry the kernel name, grid and block, memcpy launches "bytes" as a *string*; GPU items carry
    device, queue (as "stream"), correlation and a "kind". `roctracer` (the older backend): GPU
    items carry no args but the External id, and streams are hex pointer strings."""
    doc["deviceProperties"] = [
        {
            "id": 0,
            "name": "AMD Instinct MI300X",
            "totalGlobalMem": 205822885888,
            "computeMajor": 9,
            "computeMinor": 4,
            "numSms": 304,
            "gcnArchName": "gfx942:sramecc+:xnack-",
        }
    ]
    for key in ("cuda_driver_version", "cuda_runtime_version", "cupti_version"):
        doc.pop(key, None)
    launch_of: dict[int, dict[str, Any]] = {}
    for e in doc["traceEvents"]:
        cat, args = e.get("cat"), e.get("args") or {}
        if cat in LAUNCH_CATEGORIES:
            e["cat"] = "cuda_runtime"
            name = str(e["name"])
            e["name"] = _HIP_RUNTIME.get(name) or ("hip" + name.removeprefix("cuda").removeprefix("cu"))
            if isinstance(args.get("correlation"), int):
                launch_of[args["correlation"]] = e
    for e in doc["traceEvents"]:
        cat, args = e.get("cat"), e.get("args")
        if cat not in ("kernel", "gpu_memcpy", "gpu_memset") or not isinstance(args, dict):
            continue
        if cat == "kernel" and re.search(r"nvjet|gemm|cutlass|cublas", str(e["name"]), re.I):
            e["name"] = _HIP_GEMM
        launch = launch_of.get(args.get("correlation", -1))
        if launch is not None:
            la = launch.setdefault("args", {})
            if cat == "kernel":
                la.update(kernel=e["name"], grid=args.get("grid"), block=args.get("block"))
                la["shared memory"] = 0
            else:
                la.update(src="0x7f3a40000000", dst="0x7f3a48000000", bytes=str(args.get("bytes", 0)), kind="3")
            if roctracer:
                la["stream"] = "0x5581c2d0a1b0"
        if roctracer:
            e["args"] = {"External id": args["External id"]} if "External id" in args else {}
        else:
            kind = {"kernel": "Dispatch Kernel", "gpu_memcpy": "DtoD", "gpu_memset": "Dispatch Kernel"}[cat]
            keep = ("External id", "device", "stream", "correlation", "grid", "block", "bytes")
            e["args"] = {**{k: args[k] for k in keep if k in args}, "kind": kind}
    return doc


@dataclass(frozen=True)
class Seed:
    fixture: str
    make: Callable[[Doc], Doc]


def _llama_step(doc: Doc) -> Doc:
    return first_steps(doc, 1)


def _two_steps(doc: Doc) -> Doc:
    return first_steps(doc, 2)


LLAMA = "llama-3.1-8b-4l-forward-seq215.pt.trace.json.gz"

# Small inputs (one step or a window) keep a case at tens of milliseconds.
SEEDS: dict[str, Seed] = {
    "llama-step": Seed(LLAMA, _llama_step),
    "llama-2steps": Seed(LLAMA, _two_steps),
    "llama-cpu-only": Seed(LLAMA, lambda d: cpu_only(first_steps(d, 2))),
    "llama-rocm": Seed(LLAMA, lambda d: rocm(first_steps(d, 1))),
    "llama-roctracer": Seed(LLAMA, lambda d: rocm(first_steps(d, 1), roctracer=True)),
    "llama-ns": Seed(LLAMA, lambda d: nanoseconds(first_steps(d, 1), absolute=True)),
    "nemotron-8l-window": Seed(
        "nemotron-nano-9b-v2-8l-forward-seq215.pt.trace.json.gz", lambda d: window(d, 0.1, 1500)
    ),
    "nemotron-train-bwd": Seed("nemotron-nano-9b-v2-8l-train-seq215.pt.trace.json.gz", lambda d: window(d, 0.6, 1500)),
    "qwen-train-fwd": Seed("qwen3-0.6b-4l-train-seq215.pt.trace.json.gz", lambda d: window(d, 0.05, 1500)),
    "qwen-generate": Seed("qwen3-0.6b-4l-generate-seq64.pt.trace.json.gz", lambda d: window(d, 0.3, 1500)),
    "user-train": Seed("user-train.pt.trace.json.gz", lambda d: window(d, 0.5, 1500)),
    "user-stack": Seed("user-forward-stack.pt.trace.json.gz", lambda d: window(d, 0.2, 1500)),
}


def _dumps(obj: Any) -> bytes:
    try:
        import orjson  # 5x faster than json; a dev dependency

        out: bytes = orjson.dumps(obj)
        return out
    except (ImportError, TypeError):  # no orjson, or an int beyond 64 bits (a mutation's)
        return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _loads(data: bytes) -> Any:
    try:
        import orjson
    except ImportError:
        return json.loads(data)
    return orjson.loads(data)


@cache
def seed_bytes(name: str) -> bytes:
    seed = SEEDS[name]
    return _dumps(seed.make(fixture(seed.fixture)))


def seed_doc(name: str) -> Doc:
    doc: Doc = _loads(seed_bytes(name))
    return doc


# ---- structural mutators: (doc, rng) → None, in place ------------------------------------------

EVENT_FIELDS = ("ph", "cat", "name", "pid", "tid", "ts", "dur", "id", "args")
ARG_KEYS = (
    "External id",
    "correlation",
    "Input Dims",
    "Input type",
    "Concrete Inputs",
    "Sequence number",
    "Fwd thread id",
    "stream",
    "device",
    "Python id",
    "Python parent id",
    "bytes",
    "name",
)
WEIRD_VALUES: tuple[Any, ...] = (
    None,
    0,
    -1,
    1,
    7,
    2**31,
    2**63,
    2**64 + 5,
    10**30,
    -(10**20),
    0.5,
    -3.25,
    1e300,
    -1e300,
    1e17,
    1.8e18,
    "",
    "abc",
    "0x1f",
    "12",
    "NaN",
    "∞",
    "\U0001f600 emoji",
    "ProfilerStep#9",
    "model.layers.0 (Block)",
    "autograd::engine::evaluate_function: MmBackward0",
    True,
    False,
    [],
    [1, 2],
    [[2, 3], [3, 4]],
    [[], "x", None],
    {},
    {"a": 1},
)
WEIRD_NAMES = (
    "",
    "x" * 5000,
    "модель.слои.0 (Блок)",
    "model.layers.1 (LlamaDecoderLayer)",
    "model (X)",
    "ProfilerStep#1",
    "ProfilerStep#99",
    "ProfilerStep#-1",
    "traceparse:backward",
    "traceparse:optimizer",
    "Optimizer.step#AdamW.step",
    "autograd::engine::evaluate_function: AddmmBackward0",
    "nn.Module: Linear_0",
    "aten::mm",
    "aten::addmm",
    "aten::scaled_dot_product_attention",
    "aten::embedding",
    "ncclKernel_AllReduce",
    "😀 (Emoji)",
    "a\nb\tc",
)


def _events(doc: Doc) -> list[Any]:
    events = doc.get("traceEvents")
    return events if isinstance(events, list) else []


def _some(rng: random.Random, events: list[Any], most: int = 20) -> list[Any]:
    if not events:
        return []
    return [rng.choice(events) for _ in range(rng.randint(1, most))]


def m_drop_field(doc: Doc, rng: random.Random) -> None:
    for e in _some(rng, _events(doc)):
        if not isinstance(e, dict):
            continue
        args = e.get("args")
        if rng.random() < 0.5 and isinstance(args, dict) and args:
            args.pop(rng.choice(list(args)), None)
        else:
            e.pop(rng.choice(EVENT_FIELDS), None)


def m_change_type(doc: Doc, rng: random.Random) -> None:
    for e in _some(rng, _events(doc), 8):
        if not isinstance(e, dict):
            continue
        args = e.get("args")
        if rng.random() < 0.6 and isinstance(args, dict):
            args[rng.choice(ARG_KEYS)] = rng.choice(WEIRD_VALUES)
        else:
            e[rng.choice(EVENT_FIELDS)] = rng.choice(WEIRD_VALUES)


def m_lenient_args(doc: Doc, rng: random.Random) -> None:
    """Only args change type (what real exporters vary in): the trace must still give a report."""
    for e in _some(rng, _events(doc), 40):
        args = e.get("args") if isinstance(e, dict) else None
        if isinstance(args, dict):
            args[rng.choice(ARG_KEYS)] = rng.choice(WEIRD_VALUES)


WEIRD_DIMS: tuple[Any, ...] = (0, -1, 1, 3, 2**31, 2**62, 10**30, 0.5, "7", None, [], [2], [[3]], True)
WEIRD_CONCRETE: tuple[Any, ...] = ("", "abc", "1e999", "-5", "0", "True", "False", "nan", "[1, 2]", "None", 5, None)


def m_shapes(doc: Doc, rng: random.Random) -> None:
    """Odd shape arguments on ops that have them (the FLOP formulas' inputs)."""
    ops = [
        e
        for e in _events(doc)
        if isinstance(e, dict) and isinstance(e.get("args"), dict) and isinstance(e["args"].get("Input Dims"), list)
    ]
    for e in _some(rng, ops, 30):
        args = e["args"]
        dims = args["Input Dims"]
        if not isinstance(dims, list):  # picked twice, replaced the first time
            continue
        how = rng.randrange(7)
        if how == 0 and dims:  # one dimension of one argument
            i = rng.randrange(len(dims))
            if isinstance(dims[i], list) and dims[i]:
                dims[i][rng.randrange(len(dims[i]))] = rng.choice(WEIRD_DIMS)
            else:
                dims[i] = rng.choice(WEIRD_DIMS)
        elif how == 1:  # arguments missing or extra
            args["Input Dims"] = dims[: rng.randrange(len(dims) + 1)] + [rng.choice(WEIRD_DIMS)] * rng.randint(0, 3)
        elif how == 2:  # ranks changed
            args["Input Dims"] = [d[: rng.randrange(len(d) + 1)] if isinstance(d, list) else d for d in dims]
        elif how == 3:
            args["Input Dims"] = rng.choice(WEIRD_VALUES)
        elif how == 4 and isinstance(args.get("Concrete Inputs"), list) and args["Concrete Inputs"]:
            conc = args["Concrete Inputs"]
            conc[rng.randrange(len(conc))] = rng.choice(WEIRD_CONCRETE)
        elif how == 5:
            args["Input type"] = rng.choice((["float", 3], "c10::BFloat16", [], [None], ["c10::Half"] * 9))
        else:  # another op's shapes
            donor = rng.choice(ops)["args"]
            for key in ("Input Dims", "Concrete Inputs", "Input type"):
                if key in donor:
                    args[key] = copy.deepcopy(donor[key])


def m_shuffle(doc: Doc, rng: random.Random) -> None:
    events = _events(doc)
    if rng.random() < 0.5:
        rng.shuffle(events)
    else:
        i = rng.randrange(len(events) + 1)
        j = min(len(events), i + rng.randint(2, 200))
        part = events[i:j]
        rng.shuffle(part)
        events[i:j] = part


def m_cut(doc: Doc, rng: random.Random) -> None:
    events = _events(doc)
    if not events:
        return
    i = rng.randrange(len(events))
    if rng.random() < 0.3:
        del events[i:]  # a prefix: the export stopped here
    else:
        del events[i : i + rng.randint(1, max(1, len(events) // 4))]


def m_duplicate(doc: Doc, rng: random.Random) -> None:
    events = _events(doc)
    dicts = [e for e in events if isinstance(e, dict)]
    if not dicts:
        return
    if rng.random() < 0.5:  # whole events twice (same ids)
        events.extend(copy.deepcopy(rng.choice(dicts)) for _ in range(rng.randint(1, 30)))
    else:  # ids that should be unique, shared
        with_args = [e for e in dicts if isinstance(e.get("args"), dict)]
        for e in _some(rng, with_args, 30):
            donor = rng.choice(with_args)["args"]
            for key in ("External id", "correlation", "Sequence number", "Python id"):
                if key in donor and rng.random() < 0.7:
                    e["args"][key] = donor[key]
        for e in _some(rng, [e for e in dicts if "id" in e], 30):
            e["id"] = rng.choice(dicts).get("id", 1)


def m_times(doc: Doc, rng: random.Random) -> None:
    events = [e for e in _events(doc) if isinstance(e, dict) and isinstance(e.get("ts"), int | float)]
    for e in _some(rng, events, 30):
        how = rng.randrange(6)
        if how == 0:
            e["ts"] += rng.uniform(-500, 500)  # overlaps and reorderings
        elif how == 1 and isinstance(e.get("dur"), int | float):
            e["dur"] *= rng.choice((0, 0.5, 2, 10, 1000))
        elif how == 2 and isinstance(e.get("dur"), int | float):
            e["dur"] = -abs(e["dur"]) - 1
        elif how == 3:
            e["ts"] = rng.choice((0, -1e6, 1e16, 1.8e18, 5e17))
        elif how == 4:
            e["dur"] = rng.choice((0, 1e-9, 1e12, 1e15, 1e20))
        else:
            e["ts"] = float(e["ts"])
            e["dur"] = rng.choice((int(abs(e.get("dur") or 0)), 0))


def m_overlap(doc: Doc, rng: random.Random) -> None:
    """Slices that overlap partially on one thread (not nested): stretch some past their siblings."""
    cpu = [e for e in _events(doc) if isinstance(e, dict) and e.get("cat") in ("cpu_op", "user_annotation")]
    for e in _some(rng, cpu, 30):
        if isinstance(e.get("dur"), int | float):
            e["dur"] = e["dur"] * rng.uniform(1.0, 3.0) + rng.uniform(0, 50)


def m_names(doc: Doc, rng: random.Random) -> None:
    for e in _some(rng, _events(doc), 20):
        if isinstance(e, dict):
            e["name"] = rng.choice(WEIRD_NAMES)


def m_phases(doc: Doc, rng: random.Random) -> None:
    for e in _some(rng, _events(doc), 20):
        if isinstance(e, dict):
            e["ph"] = rng.choice(("X", "B", "E", "i", "I", "M", "s", "f", "t", "C", "b", "e", "", "XX"))


def m_categories(doc: Doc, rng: random.Random) -> None:
    """Drop a whole category (kernels, launches, flows, ops, annotations) or relabel one."""
    events = _events(doc)
    cats = sorted({str(e.get("cat")) for e in events if isinstance(e, dict)})
    if not cats:
        return
    cat = rng.choice(cats)
    if rng.random() < 0.6:
        doc["traceEvents"] = [e for e in events if not (isinstance(e, dict) and str(e.get("cat")) == cat)]
    else:
        new = rng.choice(("kernel", "cpu_op", "cuda_runtime", "runtime", "user_annotation", "python_function", "x"))
        for e in events:
            if isinstance(e, dict) and str(e.get("cat")) == cat:
                e["cat"] = new


def m_steps(doc: Doc, rng: random.Random) -> None:
    steps = [e for e in _events(doc) if isinstance(e, dict) and str(e.get("name", "")).startswith("ProfilerStep#")]
    if not steps:
        return
    s = rng.choice(steps)
    how = rng.randrange(4)
    if how == 0:
        _events(doc).remove(s)
    elif how == 1 and isinstance(s.get("dur"), int | float):
        s["dur"] = s["dur"] * 10 + 1e6  # cut off by the end of the trace
    elif how == 2:
        twin = copy.deepcopy(s)  # an overlapping step
        if isinstance(twin.get("ts"), int | float):
            twin["ts"] += rng.uniform(0, 1000)
        twin["name"] = f"ProfilerStep#{rng.randint(0, 9)}"
        _events(doc).append(twin)
    else:
        with contextlib.suppress(KeyError, TypeError, ValueError, IndexError, AttributeError):  # broken earlier
            trailing_empty_step(doc)


def m_metadata(doc: Doc, rng: random.Random) -> None:
    """Break the top-level keys and the traceparse metadata (hand-edited or foreign files)."""
    meta = doc.get("traceparse")
    targets: list[tuple[dict[str, Any], str]] = [
        (doc, k) for k in ("deviceProperties", "displayTimeUnit", "baseTimeNanoseconds", "traceparse", "schemaVersion")
    ]
    if isinstance(meta, dict):
        targets += [(meta, k) for k in list(meta)]
        for sub in ("config", "timing", "device"):
            if isinstance(meta.get(sub), dict):
                targets += [(meta[sub], k) for k in list(meta[sub])]
        if isinstance(meta.get("modules"), list) and meta["modules"]:
            row = rng.choice(meta["modules"])
            if isinstance(row, dict):
                targets += [(row, k) for k in list(row)]
    for _ in range(rng.randint(1, 6)):
        obj, key = rng.choice(targets)
        if rng.random() < 0.2:
            obj.pop(key, None)
        else:
            obj[key] = rng.choice(WEIRD_VALUES)


def m_units(doc: Doc, rng: random.Random) -> None:
    events = _events(doc)
    if not all(isinstance(e, dict) for e in events) or not any(isinstance(e.get("ts"), int | float) for e in events):
        return
    if rng.random() < 0.7:
        nanoseconds(doc, absolute=rng.random() < 0.5, display_unit=rng.choice(("ns", "ms", None)))
    else:
        doc["displayTimeUnit"] = rng.choice(("ns", "us", "ms", "s", 5, None))


def m_structure(doc: Doc, rng: random.Random) -> None:
    """Replace traceEvents or an event with something that is not an event list / event."""
    events = _events(doc)
    how = rng.randrange(5)
    if how == 0:
        doc["traceEvents"] = rng.choice(({}, "events", 3, None, [[]], [1, 2]))
    elif how == 1 and events:
        events[rng.randrange(len(events))] = rng.choice(([], "x", 1, None, {"ph": "X"}))
    elif how == 2:
        doc.pop("traceEvents", None)
    elif how == 3:
        doc["traceEvents"] = []
    else:
        doc["traceEvents"] = [e for e in events if isinstance(e, dict) and e.get("ph") != "X"]


MUTATORS: dict[str, Callable[[Doc, random.Random], None]] = {
    "drop_field": m_drop_field,
    "change_type": m_change_type,
    "lenient_args": m_lenient_args,
    "shapes": m_shapes,
    "shuffle": m_shuffle,
    "cut": m_cut,
    "duplicate": m_duplicate,
    "times": m_times,
    "overlap": m_overlap,
    "names": m_names,
    "phases": m_phases,
    "categories": m_categories,
    "steps": m_steps,
    "metadata": m_metadata,
    "units": m_units,
    "structure": m_structure,
}

# Mutators after which a report is still owed (nothing structural is broken): a rejection fails.
REPORT_OWED = frozenset({"lenient_args", "shapes", "shuffle", "overlap", "metadata", "units", "duplicate"})


# ---- byte-level mutators: (bytes, rng) → bytes --------------------------------------------------


def b_truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def b_flip(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 10)):
        if out:
            out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def b_insert(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data) + 1)
    junk = rng.choice((b"\x00", b"\xff\xfe", b"NaN", b"1e999", b"123456789012345678901234567890", b"]}", b"\\ud800"))
    return data[:i] + junk + data[i:]


def b_number(data: bytes, rng: random.Random) -> bytes:
    """A number literal replaced by an extreme one (1e999, a 40-digit int, -0, 1e-400)."""
    spots = [m.start() for m in re.finditer(rb'"(?:ts|dur)": ', data[:200_000])]
    if not spots:
        return data
    i = rng.choice(spots)
    j = data.index(b" ", i) + 1
    k = j
    while k < len(data) and data[k : k + 1] in b"-+.0123456789eE":
        k += 1
    big = rng.choice((b"1e999", b"9" * 40, b"-0", b"1e-400", b"-1e308", b"18446744073709551616"))
    return data[:j] + big + data[k:]


BYTE_MUTATORS: dict[str, Callable[[bytes, random.Random], bytes]] = {
    "truncate": b_truncate,
    "flip": b_flip,
    "insert": b_insert,
    "number": b_number,
}
FORMS = ("json", "gz", "array", "gz-damaged")


@dataclass(frozen=True)
class Case:
    """One fuzz input, reproducible from these fields alone."""

    seed: str
    mutations: tuple[tuple[str, int], ...] = ()
    form: str = "json"
    byte_mutation: tuple[str, int] | None = None

    def describe(self) -> str:
        muts = "+".join(f"{m}:{s}" for m, s in self.mutations) or "none"
        byte = f" bytes={self.byte_mutation[0]}:{self.byte_mutation[1]}" if self.byte_mutation else ""
        return f"seed={self.seed} mutations={muts} form={self.form}{byte}"


def build(case: Case) -> bytes:
    doc = seed_doc(case.seed)
    for name, s in case.mutations:
        MUTATORS[name](doc, random.Random(s))
    if case.form == "array":
        body: Any = doc.get("traceEvents", [])
    else:
        body = doc
    data = _dumps(body)
    if case.byte_mutation is not None:
        name, s = case.byte_mutation
        data = BYTE_MUTATORS[name](data, random.Random(s))
    if case.form in ("gz", "gz-damaged"):
        data = gzip.compress(data, compresslevel=1)
        if case.form == "gz-damaged":
            data = BYTE_MUTATORS["truncate" if len(data) % 2 else "flip"](data, random.Random(len(data)))
    return data


def random_case(rng: random.Random) -> Case:
    muts = tuple((rng.choice(list(MUTATORS)), rng.randrange(2**32)) for _ in range(rng.choice((1, 1, 2, 3))))
    form = rng.choices(FORMS, weights=(6, 3, 2, 1))[0]
    byte = (rng.choice(list(BYTE_MUTATORS)), rng.randrange(2**32)) if rng.random() < 0.15 else None
    return Case(rng.choice(list(SEEDS)), muts, form, byte)


# ---- the oracle -----------------------------------------------------------------------------------


class PropertyViolation(AssertionError):
    """A report was produced but breaks a promise (invariant, NaN, unknown not null)."""


def _finite_everywhere(obj: Any, where: str = "$") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise PropertyViolation(f"non-finite number at {where}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite_everywhere(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite_everywhere(v, f"{where}[{i}]")


def check_path(path: str | os.PathLike[str], owed: bool = False) -> str:
    """Analyze `path` as the CLI does; return "report" or "rejected:<exit code>". Raises
    PropertyViolation when a report breaks a promise, and lets any crash propagate."""
    from traceparse.api import run_pipeline
    from traceparse.errors import TraceparseError
    from traceparse.render import render

    try:
        analysis = run_pipeline(path)
    except TraceparseError as exc:
        message = str(exc)
        if "\n" in message or not message:
            raise PropertyViolation(f"error message is not one line: {message!r}") from exc
        if owed:
            raise PropertyViolation(f"a report was owed, got: {message}") from exc
        return f"rejected:{int(exc.code)}"
    try:
        analysis.attribution.self_check()
    except AssertionError as exc:
        raise PropertyViolation(f"attribution invariant: {exc}") from exc
    report = analysis.report
    data = json.loads(render(report, "json"))  # allow_nan=False: a NaN raises ValueError here
    _finite_everywhere(data)
    for fmt in ("table", "markdown", "csv"):
        render(report, fmt)
    for frame in ("blocks_df", "module_types_df", "slowest_modules_df", "kernel_families_df", "phases_df"):
        getattr(report, frame)
    g = data["general"]
    if not analysis.flops.has_shapes:
        unknown = ("flops", "flops_elementwise", "flops_analytic", "effective_tflops", "kernel_tflops", "mfu")
        if any(g[k] is not None for k in unknown) or g["flop_coverage"] != 0:
            raise PropertyViolation(f"FLOPs unknown but not null: { {k: g[k] for k in unknown} }")
        if any(b["flops"] is not None or b["tflops"] is not None or b["mfu"] is not None for b in data["blocks"]):
            raise PropertyViolation("FLOPs unknown but a block has a FLOP value")
    if g["peak_tflops"] is None and g["mfu"] is not None:
        raise PropertyViolation("MFU without a peak")
    if report.attribution == "cpu" and g["gpu_busy_ms"] is not None:
        raise PropertyViolation("GPU busy time in a CPU-only trace")
    tol = 1e-6 * max(1.0, g["kernel_ms"])
    if g["kernel_ms"] < 0 or not (-tol <= g["unattributed_ms"] <= g["kernel_ms"] + tol):
        raise PropertyViolation(f"unattributed {g['unattributed_ms']} outside [0, kernel {g['kernel_ms']}]")
    return "report"


def report_owed(case: Case) -> bool:
    """Nothing structural was broken: the input must give a report, not an error."""
    intact = case.byte_mutation is None and case.form != "gz-damaged"
    return intact and all(m in REPORT_OWED for m, _ in case.mutations)


class HarnessError(Exception):
    """A mutator failed: a bug in this script, not in traceparse (counted apart)."""


def check_case(case: Case, workdir: str | os.PathLike[str]) -> str:
    try:
        data = build(case)
    except Exception as exc:
        raise HarnessError(f"building {case.describe()}: {type(exc).__name__}: {exc}") from exc
    suffix = ".json.gz" if case.form.startswith("gz") else ".json"
    fd, name = tempfile.mkstemp(suffix=suffix, dir=workdir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return check_path(name, owed=report_owed(case))
    finally:
        os.unlink(name)


# ---- the driver -----------------------------------------------------------------------------------


@dataclass
class Tally:
    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    crashes: list[tuple[str, str, str]] = field(default_factory=list)  # (signature, case, traceback)


def _signature(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb) if "traceparse" in f.filename), "?")
    return f"{type(exc).__name__} at {where}: {str(exc)[:120]}"


def _run_chunk(args: tuple[int, int, int, str]) -> Tally:
    seed, start, count, workdir = args
    tally = Tally()
    for i in range(start, start + count):
        case = random_case(random.Random(f"{seed}:{i}"))
        tally.cases += 1
        try:
            tally.outcomes[check_case(case, workdir)] += 1
        except HarnessError as exc:
            tally.outcomes["harness error"] += 1
            tally.crashes.append((f"harness: {exc.__cause__!r}"[:160], case.describe(), traceback.format_exc()))
        except Exception as exc:
            tally.outcomes["crash"] += 1
            tally.crashes.append((_signature(exc), case.describe(), traceback.format_exc()))
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--crash-dir", type=Path, default=None, help="save each crashing input here")
    args = parser.parse_args(argv)

    for name in SEEDS:  # build the seeds once, before forking
        seed_bytes(name)
    start = time.perf_counter()
    chunk = 50
    work = [(args.seed, i, min(chunk, args.cases - i)) for i in range(0, args.cases, chunk)]
    total = Tally()
    with tempfile.TemporaryDirectory(prefix="traceparse-fuzz-") as workdir:
        jobs = [(s, i, n, workdir) for s, i, n in work]
        if args.jobs > 1:
            import multiprocessing

            with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
                results = pool.imap_unordered(_run_chunk, jobs)
                for done, t in enumerate(results, 1):
                    _merge(total, t)
                    if done % 20 == 0:
                        _progress(total, start)
        else:
            for done, job in enumerate(jobs, 1):
                _merge(total, _run_chunk(job))
                if done % 20 == 0:
                    _progress(total, start)
    elapsed = time.perf_counter() - start
    by_sig = Counter(sig for sig, _, _ in total.crashes)
    print(
        f"fuzz: {total.cases} cases in {elapsed:.0f} s ({total.cases / elapsed:.1f}/s, "
        f"{args.jobs} jobs, seed {args.seed}): "
        f"{total.outcomes['report']} reports, "
        + ", ".join(f"{n} {k}" for k, n in sorted(total.outcomes.items()) if k.startswith("rejected"))
        + f", {total.outcomes['crash']} crashes"
        + (f" ({total.outcomes['harness error']} harness errors)" if total.outcomes["harness error"] else "")
    )
    for sig, n in by_sig.most_common():
        example = next(c for s, c, _ in total.crashes if s == sig)
        print(f"  {n} x {sig}\n      e.g. {example}")
    if total.crashes and args.crash_dir is not None:
        args.crash_dir.mkdir(parents=True, exist_ok=True)
        for k, (sig, desc, tb) in enumerate(total.crashes[:50]):
            (args.crash_dir / f"crash-{k}.txt").write_text(f"{sig}\n{desc}\n\n{tb}")
        print(f"  inputs: rebuild with scripts/fuzz.py's build(Case(...)); tracebacks in {args.crash_dir}")
    return 1 if total.crashes else 0


def _merge(total: Tally, t: Tally) -> None:
    total.cases += t.cases
    total.outcomes.update(t.outcomes)
    total.crashes.extend(t.crashes)


def _progress(total: Tally, start: float) -> None:
    print(
        f"  … {total.cases} cases, {total.outcomes['crash']} crashes, {time.perf_counter() - start:.0f} s",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
