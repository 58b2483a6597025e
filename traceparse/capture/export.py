"""Write the profiler's trace as `<name>.pt.trace.json.gz` with traceparse metadata inside it.

The metadata is spliced in as a top-level "traceparse" key of the exported JSON rather than
passed through `prof.add_metadata_json`, because it holds measurements taken after profiling
and because how that method reaches the export differs across torch versions. The splice edits
only the first byte range of the file, so a 1 GB trace is not parsed again.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from traceparse.atomic import atomic_path

METADATA_KEY = "traceparse"


def _finite(value: Any) -> Any:
    """JSON has no Infinity/NaN (configs hold e.g. time_step_limit=(0, inf)): write them as strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _splice_metadata(src: Path, dst_gz: Path, extra: dict[str, Any]) -> None:
    head_extra = "".join(
        f"{json.dumps(k)}: {json.dumps(_finite(v), default=str, allow_nan=False)},\n" for k, v in extra.items()
    )
    with open(src, "rb") as fin, gzip.open(dst_gz, "wb", compresslevel=6) as fout:
        first = fin.read(64 * 1024)
        brace = first.find(b"{")
        if brace < 0:
            raise ValueError("exported trace does not start with a JSON object")
        fout.write(first[: brace + 1] + b"\n" + head_extra.encode() + first[brace + 1 :])
        shutil.copyfileobj(fin, fout, 1 << 20)


def export_trace(prof: Any, out_path: Path, extra: dict[str, Any]) -> Path:
    """Export `prof` (a torch.profiler.profile) to `out_path` (.json.gz), atomically."""
    fd, tmp_json = tempfile.mkstemp(suffix=".json", prefix="traceparse-")
    os.close(fd)
    try:
        prof.export_chrome_trace(tmp_json)
        with atomic_path(out_path) as tmp_gz:
            _splice_metadata(Path(tmp_json), tmp_gz, extra)
    finally:
        os.unlink(tmp_json)
    return out_path
