#!/usr/bin/env python3
"""Independent reference figures for Kineto traces (stdlib only; orjson optional).

Does NOT import traceparse: it is the yardstick the analyzer is tested against.

Usage:
    python scripts/reference_figures.py fixtures/foreign [more folders or files] \
        [-o fixtures/foreign/reference.json]

Keys of the output: for every folder argument, files directly in it are keyed
by their file name, files in a sub-folder by "sub/name" (e.g.
"not-kineto/x.json.gz"); a file given directly is keyed by its file name.
A key seen twice is an error.  Files whose name ends in .json / .json.gz /
.gz / .raw.gz are read; reference.json itself is skipped.

Definitions (see fixtures/foreign/SOURCES.md):
  * time unit: ts/dur are us, unless the median ts of the complete events is
    > 1e17, or displayTimeUnit == "ns" and the median ts is > 1e16 (values of
    ns size); then ts/dur are ns and are divided by 1000.
  * only complete events (ph "X") with numeric ts and dur count; categories
    are compared case-insensitively.
  * GPU items: cat in {kernel, gpu_memcpy, gpu_memset, memcpy, memset}.
  * launch calls: cat in {cuda_runtime, cuda_driver, runtime} with an integer
    (or numeric-string) args.correlation.  If several launch calls share a
    correlation, the earliest one is the launch (count in dup_launch_correlations).
  * an item's launch: the launch call with the same args.correlation.
  * steps: ph X events named ^ProfilerStep#\\d+$ whose cat is neither a GPU
    item category nor gpu_user_annotation; sorted by ts.
  * per step (span [ts, ts + dur], both ends inclusive):
      gpu_us_launched / gpu_count_launched: GPU items whose launch ts is in span;
      kernel_us_launched / kernel_count_launched: the same, kernels only;
      unlinked_us / unlinked_count: GPU items with no launch whose own ts is in span;
      tail_us / tail_count: those unlinked items that start before the first
        launched GPU item of the step (all of them when the step launched none);
      gpu_span_us: last end - first start over the step's launched GPU items
        (null when none).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import statistics
import sys

try:  # optional speed-up
    import orjson as _orjson  # type: ignore
except Exception:  # pragma: no cover
    _orjson = None

STEP_RE = re.compile(r"^ProfilerStep#(\d+)$")
GPU_CATS = {"kernel", "gpu_memcpy", "gpu_memset", "memcpy", "memset"}
KERNEL_CATS = {"kernel"}
LAUNCH_CATS = {"cuda_runtime", "cuda_driver", "runtime"}
NOT_STEP_CATS = GPU_CATS | {"gpu_user_annotation"}
OLD_CATS = {"Kernel", "Runtime", "Operator", "Memcpy", "Memset"}


def _loads(raw: bytes):
    if _orjson is not None:
        try:
            return _orjson.loads(raw)
        except Exception:
            pass
    return json.loads(raw)


def load(path: str):
    with open(path, "rb") as fh:
        raw = fh.read()
    digest = hashlib.sha256(raw).hexdigest()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return _loads(raw), digest


def isnum(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def correlation(ev):
    args = ev.get("args")
    if not isinstance(args, dict):
        return None
    c = args.get("correlation")
    if isinstance(c, bool) or c is None:
        return None
    if isinstance(c, int):
        return c
    if isinstance(c, float):
        return int(c) if c.is_integer() else None
    if isinstance(c, str):
        s = c.strip()
        if re.fullmatch(r"-?\d+", s):
            return int(s)
    return None


def r3(x):
    return None if x is None else round(float(x), 3)


def not_kineto_kind(data) -> str:
    if isinstance(data, dict):
        keys = set(data)
        if {"nodes", "schema"} <= keys:
            return "pytorch_execution_trace"
        if "workload_graph" in keys:
            return "chakra_json"
        if "rocprofiler-sdk-tool" in keys:
            return "rocprofiler_sdk"
        if "traceEvents" not in keys:
            return "json_object_other"
    if isinstance(data, list) and data and all(isinstance(x, list) and len(x) == 4 for x in data[:100]):
        return "memory_timeline_raw"
    return "other"


def figures(data) -> dict:
    if isinstance(data, list) and any(isinstance(e, dict) and "ph" in e for e in data[:1000]):
        events, top, form = data, {}, "array"
    elif isinstance(data, dict) and isinstance(data.get("traceEvents"), list):
        events, top, form = data["traceEvents"], data, "object"
    else:
        return {"kineto": False, "kind": not_kineto_kind(data)}

    cat_counts: dict = {}
    xs = []
    has_input_dims = False
    has_with_stack = False
    has_compiled = False
    for ev in events:
        if not isinstance(ev, dict):
            continue
        cat = ev.get("cat")
        ck = cat if isinstance(cat, str) else ("" if cat is None else str(cat))
        cat_counts[ck] = cat_counts.get(ck, 0) + 1
        args = ev.get("args")
        if not has_input_dims and isinstance(args, dict) and "Input Dims" in args:
            has_input_dims = True
        name = ev.get("name")
        if isinstance(name, str):
            if not has_compiled and "Torch-Compiled Region" in name:
                has_compiled = True
            if not has_with_stack and ck.lower() == "python_function" and name.startswith("nn.Module:"):
                has_with_stack = True
        if ev.get("ph") == "X" and isnum(ev.get("ts")) and isnum(ev.get("dur")):
            xs.append(ev)

    median_ts = statistics.median(e["ts"] for e in xs) if xs else None
    dtu = top.get("displayTimeUnit") if isinstance(top, dict) else None
    ns = bool(median_ts is not None and (median_ts > 1e17 or (dtu == "ns" and median_ts > 1e16)))
    scale = 1e-3 if ns else 1.0

    gpu = []  # (ts, dur, cat, corr, name, device)
    launches = {}  # corr -> (ts, name)
    dup_launch = 0
    launch_count = 0
    graph_launch = False
    steps = []
    launch_names_hip = False
    for ev in xs:
        cat = str(ev.get("cat", "")).lower()
        ts = ev["ts"] * scale
        dur = ev["dur"] * scale
        name = ev.get("name")
        name = name if isinstance(name, str) else str(name)
        if cat in GPU_CATS:
            args = ev.get("args") if isinstance(ev.get("args"), dict) else {}
            dev = args.get("device", ev.get("pid"))
            gpu.append((ts, dur, cat, correlation(ev), name, dev))
        elif cat in LAUNCH_CATS:
            c = correlation(ev)
            if c is None:
                continue
            launch_count += 1
            if "GraphLaunch" in name:
                graph_launch = True
            if name.startswith("hip"):
                launch_names_hip = True
            prev = launches.get(c)
            if prev is None:
                launches[c] = (ts, name)
            else:
                dup_launch += 1
                if ts < prev[0]:
                    launches[c] = (ts, name)
        m = STEP_RE.match(name)
        if m and cat not in NOT_STEP_CATS:
            steps.append({"n": int(m.group(1)), "ts": ts, "dur": dur, "cat": ev.get("cat")})
    steps.sort(key=lambda s: (s["ts"], s["n"]))

    by_cat: dict = {}
    kernel_count = 0
    kernel_us = 0.0
    linked = 0
    devices = set()
    cijk = False
    for _ts, dur, cat, c, name, dev in gpu:
        b = by_cat.setdefault(cat, {"count": 0, "us": 0.0})
        b["count"] += 1
        b["us"] += dur
        if cat in KERNEL_CATS:
            kernel_count += 1
            kernel_us += dur
            if name.startswith("Cijk_"):
                cijk = True
        if c is not None and c in launches:
            linked += 1
        if dev is not None:
            devices.add(str(dev))
    for b in by_cat.values():
        b["us"] = r3(b["us"])

    # per-step figures
    out_steps = []
    for s in steps:
        lo, hi = s["ts"], s["ts"] + s["dur"]
        g_us = k_us = 0.0
        g_n = k_n = 0
        first = None
        last_end = None
        unl = []
        for ts, dur, cat, c, _name, _dev in gpu:
            la = launches.get(c) if c is not None else None
            if la is not None:
                if lo <= la[0] <= hi:
                    g_us += dur
                    g_n += 1
                    if cat in KERNEL_CATS:
                        k_us += dur
                        k_n += 1
                    first = ts if first is None or ts < first else first
                    end = ts + dur
                    last_end = end if last_end is None or end > last_end else last_end
            elif lo <= ts <= hi:
                unl.append((ts, dur))
        tail = [u for u in unl if first is None or u[0] < first]
        out_steps.append(
            {
                "n": s["n"],
                "cat": s["cat"],
                "ts": r3(s["ts"]),
                "dur": r3(s["dur"]),
                "gpu_us_launched": r3(g_us),
                "gpu_count_launched": g_n,
                "kernel_us_launched": r3(k_us),
                "kernel_count_launched": k_n,
                "unlinked_us": r3(sum(u[1] for u in unl)),
                "unlinked_count": len(unl),
                "tail_us": r3(sum(u[1] for u in tail)),
                "tail_count": len(tail),
                "gpu_span_us": r3(last_end - first) if first is not None else None,
            }
        )

    dev_props = top.get("deviceProperties") if isinstance(top, dict) else None
    dev_names = [d.get("name") for d in dev_props if isinstance(d, dict)] if isinstance(dev_props, list) else []
    dist = top.get("distributedInfo") if isinstance(top, dict) else None
    rank = dist.get("rank") if isinstance(dist, dict) else None
    world = dist.get("world_size") if isinstance(dist, dict) else None

    amd_dev = any(isinstance(n, str) and re.search(r"AMD|Instinct|Radeon|MI\d{3}", n) for n in dev_names)
    if amd_dev or launch_names_hip or cijk:
        producer = "rocm"
    elif any(k in OLD_CATS for k in cat_counts):
        producer = "old"
    elif xs:
        producer = "new"
    else:
        producer = "unknown"

    return {
        "kineto": True,
        "form": form,
        "schemaVersion": top.get("schemaVersion") if isinstance(top, dict) else None,
        "displayTimeUnit": dtu,
        "time_unit": "ns" if ns else "us",
        "producer": producer,
        "event_count": len(events),
        "complete_event_count": len(xs),
        "cat_counts": dict(sorted(cat_counts.items())),
        "gpu_by_cat": dict(sorted(by_cat.items())),
        "gpu_count": len(gpu),
        "gpu_us": r3(sum(g[1] for g in gpu)),
        "kernel_count": kernel_count,
        "kernel_us": r3(kernel_us),
        "launch_count": launch_count,
        "dup_launch_correlations": dup_launch,
        "gpu_linked_count": linked,
        "device_ids": sorted(devices),
        "device_names": dev_names,
        "rank": rank,
        "world_size": world,
        "has_graph_launch": graph_launch,
        "has_input_dims": has_input_dims,
        "has_with_stack": has_with_stack,
        "has_compiled_region": has_compiled,
        "step_count": len(out_steps),
        "steps": out_steps,
        "steps_kernel_us_launched": r3(sum(s["kernel_us_launched"] for s in out_steps)),
    }


def wanted(name: str) -> bool:
    if name == "reference.json":
        return False
    return name.endswith((".json", ".json.gz", ".gz"))


def collect(args_paths):
    items = []  # (key, path)
    for p in args_paths:
        if os.path.isdir(p):
            for root, dirs, files in os.walk(p):
                dirs.sort()
                for f in sorted(files):
                    if not wanted(f):
                        continue
                    full = os.path.join(root, f)
                    items.append((os.path.relpath(full, p).replace(os.sep, "/"), full))
        else:
            items.append((os.path.basename(p), p))
    seen = set()
    for k, _ in items:
        if k in seen:
            raise SystemExit(f"duplicate key {k!r}; pass the folders separately")
        seen.add(k)
    return items


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("-o", "--output", default=None, help="default: <first folder>/reference.json")
    a = ap.parse_args(argv)
    out_path = a.output or os.path.join(a.paths[0] if os.path.isdir(a.paths[0]) else ".", "reference.json")
    result = {}
    for key, path in collect(a.paths):
        entry = {"size": os.path.getsize(path)}
        try:
            data, digest = load(path)
            entry["sha256"] = digest
            entry.update(figures(data))
        except Exception as exc:  # keep going; record the error
            entry.update({"kineto": None, "error": f"{type(exc).__name__}: {exc}"[:300]})
        result[key] = entry
        print(f"{key}: steps={entry.get('step_count')} kernel_us={entry.get('kernel_us')}", file=sys.stderr)
    # keep HTA figures merged earlier by scripts/reference_hta.py
    if os.path.exists(out_path):
        try:
            with open(out_path) as fh:
                old = json.load(fh)
            for k, v in old.items():
                if k in result and isinstance(v, dict) and v.get("sha256") == result[k].get("sha256"):
                    for hk in ("hta_kernel_us", "hta_error", "hta_version"):
                        if hk in v:
                            result[k][hk] = v[hk]
        except Exception:
            pass
    with open(out_path, "w") as fh:
        json.dump(result, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
