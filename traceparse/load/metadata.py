"""The `traceparse` metadata block that `capture` writes into a trace, checked for types.

A hand-edited or foreign block must not crash the report: keys of an unexpected type are dropped
with a note.
"""

from __future__ import annotations

import math
from typing import Any

# Metadata keys that the report reads, with the type it needs; a key of another type is
# dropped with a note (a hand-edited or foreign "traceparse" key must not crash the report).
_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "config": dict,
    "timing": dict,
    "device": dict,
    "modules": list,
    "model_id": str,
    "model_class": str,
    "mode": str,
    "dtype": str,
    "blocks_container": str,
    "seq_len": int,
    "batch_size": int,
    "new_tokens": int,
    "params": int,
    "params_linear": int,
}


_TIMING_NUMBERS = ("forward_ms_uninstrumented", "forward_ms_scopes", "step_ms_uninstrumented")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def clean_metadata(raw: Any) -> tuple[dict[str, Any], list[str]]:
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, ["The trace's 'traceparse' metadata is not a JSON object: ignored."]
    meta = dict(raw)
    bad = []
    for key, want in _META_TYPES.items():
        v = meta.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, want)):
            bad.append(key)
            del meta[key]
    if isinstance(meta.get("timing"), dict):
        timing = dict(meta["timing"])
        for key in [k for k in _TIMING_NUMBERS if timing.get(k) is not None and not _is_number(timing[k])]:
            bad.append(f"timing.{key}")
            del timing[key]
        meta["timing"] = timing
    if isinstance(meta.get("device"), dict) and not isinstance(meta["device"].get("name", ""), str):
        bad.append("device.name")
        meta["device"] = {k: v for k, v in meta["device"].items() if k != "name"}
    if isinstance(meta.get("modules"), list):
        rows = []
        for row in meta["modules"]:
            if not isinstance(row, dict):
                continue
            row = dict(row)
            for key in ("block", "params"):
                if row.get(key) is not None and not (isinstance(row[key], int) and not isinstance(row[key], bool)):
                    del row[key]
            rows.append(row)
        if len(rows) != len(meta["modules"]) or rows != meta["modules"]:
            bad.append("modules[]")
        meta["modules"] = rows
    notes = [f"Metadata with unexpected types was ignored: {', '.join(bad)}."] if bad else []
    return meta, notes
