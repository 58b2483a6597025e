"""Structural mutators: (decoded trace, rng) → None, in place."""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Callable
from typing import Any

from tracefuzz.seeds import Doc, nanoseconds, trailing_empty_step

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
