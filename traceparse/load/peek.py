"""A trace's top-level keys (rank, world size, model) without reading its events.

Kineto writes `distributedInfo` (and `traceparse capture` its metadata) before `traceEvents`, so
the first megabytes tell which rank of which job a file is: a job of thousands of ranks is
sorted without loading any events. Keys written after the events (a re-saved file) are not
seen: then the rank comes from the file name, or the file's order.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from traceparse.load.schema import TRACE_DECODER, RawTrace

_KEY = re.compile(rb'"traceEvents"\s*:\s*\[')
_LIMIT = 64 << 20


@dataclass(frozen=True)
class TopLevel:
    rank: int | None
    world_size: int | None
    rank_from: str  # "distributedInfo" | "metadata" | ""
    model: str | None


def peek(path: Path) -> TopLevel:
    top = _top_keys(path)
    if top is None:
        return TopLevel(None, None, "", None)
    dist = top.distributedInfo if isinstance(top.distributedInfo, dict) else {}
    meta = top.traceparse if isinstance(top.traceparse, dict) else {}
    for source, keys in (("distributedInfo", dist), ("metadata", meta)):
        rank = _int(keys.get("rank"))
        if rank is not None:
            return TopLevel(rank, _int(keys.get("world_size")), source, _str(meta.get("model_id")))
    return TopLevel(None, _int(dist.get("world_size")) or _int(meta.get("world_size")), "", _str(meta.get("model_id")))


def _top_keys(path: Path) -> RawTrace | None:
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            stream: Any = gzip.GzipFile(fileobj=raw) if gz else raw
            head = b""
            while len(head) < _LIMIT:
                more = stream.read(1 << 20)
                if not more:
                    return None
                head += more
                m = _KEY.search(head)
                if m:
                    return TRACE_DECODER.decode(head[: m.start()] + b'"traceEvents": []}')
    except (OSError, EOFError, msgspec.DecodeError, ValueError):
        return None
    return None


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None
