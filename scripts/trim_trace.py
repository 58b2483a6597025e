#!/usr/bin/env python3
"""Trim a Kineto / Chrome trace to a window of ProfilerSteps (stdlib only).

Kept:
  * every top-level key of the trace object (or the array form, kept as an array);
  * every metadata event ("ph": "M");
  * every event whose [ts, ts + dur] overlaps the window (events without dur:
    ts inside the window); flow events ("ph" s/t/f) only when ts is inside;
  * GPU items (kernel / gpu_memcpy / gpu_memset / Memcpy / Memset) whose launch
    call (runtime/driver event with the same args.correlation) is kept, even
    when the item itself runs after the window.

Window selection (one of):
  --steps N-M        ProfilerStep#N .. ProfilerStep#M (inclusive, by step number)
  --first-steps K    the first K ProfilerSteps (by ts)
  --skip-steps S     with --first-steps: skip the first S steps before taking K
  --window-us A:B    [A, B] in microseconds relative to the smallest ts of the
                     trace (for traces without ProfilerStep)

Output is gzip (mtime 0) when the output name ends with .gz.

Example:
  python scripts/trim_trace.py in.json.gz out.json.gz --first-steps 2
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys

STEP_RE = re.compile(r"^ProfilerStep#(\d+)$")
GPU_CATS = {"kernel", "gpu_memcpy", "gpu_memset", "memcpy", "memset"}
LAUNCH_CATS = {"cuda_runtime", "cuda_driver", "runtime"}
FLOW_PH = {"s", "t", "f"}


def load(path: str):
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


def num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def corr(ev):
    args = ev.get("args")
    if not isinstance(args, dict):
        return None
    c = args.get("correlation")
    if isinstance(c, bool):
        return None
    if isinstance(c, int):
        return c
    if isinstance(c, float) and c.is_integer():
        return int(c)
    if isinstance(c, str) and c.strip().lstrip("-").isdigit():
        return int(c.strip())
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--steps", help="N-M: ProfilerStep numbers, inclusive")
    g.add_argument("--first-steps", type=int)
    g.add_argument("--window-us", help="A:B, microseconds from the first ts")
    ap.add_argument("--skip-steps", type=int, default=0)
    a = ap.parse_args(argv)

    data = load(a.input)
    if isinstance(data, list):
        events, top = data, None
    else:
        events, top = data.get("traceEvents", []), data

    evs = [e for e in events if isinstance(e, dict)]
    steps = []
    for e in evs:
        m = STEP_RE.match(str(e.get("name", "")))
        cat = str(e.get("cat", "")).lower()
        if (
            m
            and e.get("ph") == "X"
            and cat not in GPU_CATS
            and "gpu" not in cat
            and num(e.get("ts"))
            and num(e.get("dur"))
        ):
            steps.append((e["ts"], int(m.group(1)), e))
    steps.sort(key=lambda t: t[0])

    if a.window_us:
        lo_s, hi_s = a.window_us.split(":")
        t0 = min(e["ts"] for e in evs if num(e.get("ts")) and e.get("ph") != "M")
        lo, hi = t0 + float(lo_s), t0 + float(hi_s)
    else:
        if not steps:
            print("no ProfilerStep events; use --window-us", file=sys.stderr)
            return 2
        if a.steps:
            n0, n1 = (int(x) for x in a.steps.split("-"))
            chosen = [s for s in steps if n0 <= s[1] <= n1]
        else:
            chosen = steps[a.skip_steps : a.skip_steps + a.first_steps]
        if not chosen:
            print("no step matched", file=sys.stderr)
            return 2
        lo = min(s[2]["ts"] for s in chosen)
        hi = max(s[2]["ts"] + s[2]["dur"] for s in chosen)

    def in_window(e):
        ts = e.get("ts")
        if not num(ts):
            return False
        if e.get("ph") in FLOW_PH:
            return lo <= ts <= hi
        dur = e.get("dur")
        end = ts + dur if num(dur) else ts
        return end >= lo and ts <= hi

    keep = [False] * len(events)
    kept_launch = set()
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            continue
        if e.get("ph") == "M" or in_window(e):
            keep[i] = True
            if str(e.get("cat", "")).lower() in LAUNCH_CATS:
                c = corr(e)
                if c is not None:
                    kept_launch.add(c)
    for i, e in enumerate(events):
        if keep[i] or not isinstance(e, dict):
            continue
        if str(e.get("cat", "")).lower() in GPU_CATS and corr(e) in kept_launch:
            keep[i] = True
    out_events = [e for i, e in enumerate(events) if keep[i]]

    if top is None:
        out = out_events
    else:
        out = {}
        for k, v in top.items():
            out[k] = out_events if k == "traceEvents" else v
    blob = json.dumps(out, separators=(",", ":")).encode()
    if a.output.endswith(".gz"):
        blob = gzip.compress(blob, compresslevel=9, mtime=0)
    with open(a.output, "wb") as fh:
        fh.write(blob)
    print(
        f"{a.input}: kept {len(out_events)}/{len(events)} events, window [{lo}, {hi}] ({hi - lo:.1f} us)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
