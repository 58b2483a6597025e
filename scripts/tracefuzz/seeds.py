"""The fuzzer's inputs: real H200 fixtures, cut small, and their variants (CPU-only, ROCm, ns…)."""

from __future__ import annotations

import copy
import gzip
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
H200 = ROOT / "fixtures" / "h200"
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

Doc = dict[str, Any]  # a decoded trace: {"traceEvents": [...], ...}

SCOPE = re.compile(r"^(?P<qual>[^\W\d][\w.\-]*) \((?P<cls>[^\W\d]\w*)\)$")
GPU_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset", "gpu_user_annotation")
LAUNCH_CATEGORIES = ("cuda_runtime", "cuda_driver")


# ---- fixtures and their variants (shared with tests/test_bad_input.py) ------------------------


@cache
def fixture_bytes(name: str) -> bytes:
    return gzip.decompress((H200 / name).read_bytes())


def fixture(name: str) -> Doc:
    """A fresh decoded copy of fixtures/h200/<name>."""
    doc: Doc = json.loads(fixture_bytes(name))
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


def dumps(obj: Any) -> bytes:
    try:
        import orjson  # 5x faster than json; a dev dependency

        out: bytes = orjson.dumps(obj)
        return out
    except (ImportError, TypeError):  # no orjson, or an int beyond 64 bits (a mutation's)
        return json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")


def loads(data: bytes) -> Any:
    try:
        import orjson
    except ImportError:
        return json.loads(data)
    return orjson.loads(data)


@cache
def seed_bytes(name: str) -> bytes:
    seed = SEEDS[name]
    return dumps(seed.make(fixture(seed.fixture)))


def seed_doc(name: str) -> Doc:
    doc: Doc = loads(seed_bytes(name))
    return doc
