"""Write the profiler's trace as `<name>.pt.trace.json[.gz]` with traceparse metadata inside it.

The metadata is spliced in as a top-level "traceparse" key of the exported JSON rather than
passed through `prof.add_metadata_json`, because it holds measurements taken after profiling
and because how that method reaches the export differs across torch versions. The splice edits
only the first byte range of the file and its last few hundred bytes, so a 1 GB trace is not
parsed again.

`traceEvents` ends up as the last top-level key: Kineto writes `"traceName": "<path>"` after the
events array, and those trailing keys are moved to the front, next to the metadata. TensorBoard's
profiler plugin adds its GPU-utilisation counters by cutting the file at its last "]" and
appending `, {counters…}]}`; with only whitespace and "}" after the events array that always cuts
at the array's end, whatever the trailing keys hold (a "]" in the temp path, a list in a future
Kineto key).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from traceparse.atomic import atomic_path

METADATA_KEY = "traceparse"
_TAIL_WINDOWS = (4096, 256 * 1024)  # bytes from the end; Kineto's trailing keys are a few hundred


def _finite(value: Any) -> Any:
    """JSON has no Infinity/NaN (configs hold e.g. time_step_limit=(0, inf)): write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def split_trailing_keys(tail: bytes) -> tuple[int, bytes] | None:
    """In the end of a JSON object whose last member's value is the events array: (offset of the
    array's closing "]" in `tail`, the raw text of the members after it, "" if none), or None.

    The first "]" from the left after which the rest reads `[, members] }` with the members valid
    JSON is the array's end: a "]" inside the events leaves the array's own "]" unbalanced in the
    rest, and one inside a string leaves a dangling quote, so neither can parse.
    """
    end = tail.rstrip()
    if not end.endswith(b"}"):
        return None
    body = end[:-1]
    at = body.find(b"]")
    while at >= 0:
        rest = body[at + 1 :].strip()
        if not rest:
            return at, b""
        if rest.startswith(b","):
            members = rest[1:].strip()
            try:
                ok = isinstance(json.loads(b"{" + members + b"}"), dict)
            except ValueError:
                ok = False
            if ok:
                return at, members
        at = body.find(b"]", at + 1)
    return None


def _splice_metadata(src: Path, dst: Path, extra: dict[str, Any], gz: bool = True) -> None:
    head_extra = "".join(
        f"{json.dumps(k)}: {json.dumps(_finite(v), default=str, allow_nan=False)},\n" for k, v in extra.items()
    ).encode()
    size = src.stat().st_size
    with open(src, "rb") as fin:
        for window in _TAIL_WINDOWS:  # a short window first: every "]" in it is tried
            tail_start = max(0, size - window)
            fin.seek(tail_start)
            found = split_trailing_keys(fin.read())
            if found or tail_start == 0:
                break
        # Copy up to and including the array's "]", then close the object; the trailing members
        # go to the front. Not found (not Kineto's layout): leave the tail as it is.
        stop, trailing = (tail_start + found[0] + 1, found[1]) if found else (size, b"")
        fin.seek(0)
        with gzip.open(dst, "wb", compresslevel=6) if gz else open(dst, "wb") as fout:
            first = fin.read(min(64 * 1024, stop))
            brace = first.find(b"{")
            if brace < 0:
                raise ValueError("exported trace does not start with a JSON object")
            moved = trailing + b",\n" if trailing else b""
            fout.write(first[: brace + 1] + b"\n" + head_extra + moved + first[brace + 1 :])
            left = stop - len(first)
            while left > 0:
                chunk = fin.read(min(1 << 20, left))
                if not chunk:
                    break
                fout.write(chunk)
                left -= len(chunk)
            if found:
                fout.write(b"\n}\n")


def export_with_metadata(export: Callable[[str], object], out_path: Path, extra: dict[str, Any]) -> Path:
    """`export(tmp_json_path)` writes the profiler's JSON; it lands at `out_path` (gzipped when the
    name ends in .gz, as torch's own export does) with `extra`'s keys in front, atomically."""
    fd, tmp_json = tempfile.mkstemp(suffix=".json", prefix="traceparse-")
    os.close(fd)
    try:
        export(tmp_json)
        with atomic_path(out_path) as tmp_out:
            _splice_metadata(Path(tmp_json), tmp_out, extra, gz=out_path.name.endswith(".gz"))
    finally:
        os.unlink(tmp_json)
    return out_path


def export_trace(prof: Any, out_path: Path, extra: dict[str, Any]) -> Path:
    """Export `prof` (a torch.profiler.profile) to `out_path` (.json.gz), atomically."""
    return export_with_metadata(prof.export_chrome_trace, out_path, extra)
