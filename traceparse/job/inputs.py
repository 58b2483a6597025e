"""The rank traces of one job: from files, folders (recursive) or glob patterns.

A rank is read from the trace's `distributedInfo` (Kineto writes it under torch.distributed), else
the capture metadata, else the file name (`rank3`, `worker3`); files that name no rank are
numbered in name order, and the report says so. `tensorboard_trace_handler` writes one file per
worker and per profiling cycle: a rank with several files has several cycles, ordered by the
millisecond timestamp in the name (else by name); the latest cycle is taken unless one is chosen.
Files of different jobs (another world size, another model) are refused in one line.
"""

from __future__ import annotations

import glob
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from traceparse.errors import UnreadableError, UsageError
from traceparse.load import TRACE_SUFFIXES
from traceparse.load.peek import TopLevel, peek

_RANK_IN_NAME = re.compile(r"(?:rank|worker)[_\-.]?(\d+)", re.I)
_CYCLE_IN_NAME = re.compile(r"\.(\d{10,})\.pt\.trace\.json")  # tensorboard_trace_handler's ms timestamp


@dataclass(frozen=True)
class RankTrace:
    path: Path
    rank: int
    world_size: int | None
    rank_from: str  # "distributedInfo" | "metadata" | "file name" | "file order"
    cycle: int  # this rank's profiling cycle, 0 the first


def trace_files(inputs: Sequence[str | Path]) -> list[Path]:
    """Every trace the inputs name: files as given, folders searched recursively (Kineto's
    `*.pt.trace.json[.gz]` first, else any `*.json[.gz]`), glob patterns expanded."""
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        if any(c in text for c in "*?[") and not Path(text).exists():
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True) if Path(m).is_file())
            if not matches:
                raise UnreadableError(f"{text}: no file matches")
            found += matches
            continue
        path = Path(item)
        if path.is_dir():
            pt = sorted(p for p in path.rglob("*.pt.trace.json*") if p.is_file() and p.name.endswith(TRACE_SUFFIXES))
            found += pt or sorted(p for p in path.rglob("*.json*") if p.is_file() and p.name.endswith(TRACE_SUFFIXES))
        else:
            found.append(path)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        where = ", ".join(map(str, inputs))
        raise UnreadableError(f"{where}: directory holds no trace (*.pt.trace.json[.gz] or *.json[.gz])")
    return unique


def job_ranks(paths: Sequence[Path], cycle: int | None = None) -> list[RankTrace]:
    """One trace per rank (the chosen cycle), ranks ascending."""
    tops = {p: peek(p) for p in paths}
    _refuse_mixed_jobs(tops)
    named: list[tuple[Path, int | None, int | None, str]] = []
    for p, top in tops.items():
        rank, world, source = _rank_of(p, top)
        named.append((p, rank, world, source))
    if any(r is None for _, r, _, _ in named):
        if any(r is not None for _, r, _, _ in named):
            unknown = next(p for p, r, _, _ in named if r is None)
            raise UsageError(f"{unknown}: no rank in the trace or its name, while the other traces have one")
        named = [(p, i, w, "file order") for i, (p, _, w, _) in enumerate(sorted(named, key=lambda n: str(n[0])))]
    by_rank: dict[int, list[tuple[Path, int | None, str]]] = defaultdict(list)
    for p, r, w, source in named:
        assert r is not None
        by_rank[r].append((p, w, source))
    out = []
    for rank in sorted(by_rank):
        files = sorted(by_rank[rank], key=lambda f: _cycle_key(f[0]))
        pick = len(files) - 1 if cycle is None else cycle
        if not 0 <= pick < len(files):
            raise UsageError(f"--cycle {cycle}: rank {rank} has {len(files)} cycle(s) (0..{len(files) - 1})")
        path, world, source = files[pick]
        out.append(RankTrace(path, rank, world, source, pick))
    return out


def _rank_of(path: Path, top: TopLevel) -> tuple[int | None, int | None, str]:
    if top.rank is not None:
        return top.rank, top.world_size, top.rank_from
    m = _RANK_IN_NAME.search(path.name)
    return (int(m.group(1)), top.world_size, "file name") if m else (None, top.world_size, "")


def _cycle_key(path: Path) -> tuple[int, str]:
    m = _CYCLE_IN_NAME.search(path.name)
    return (int(m.group(1)) if m else 0, path.name)


def _refuse_mixed_jobs(tops: dict[Path, TopLevel]) -> None:
    for what in ("world_size", "model"):
        seen: dict[object, Path] = {}
        for path, top in tops.items():
            value = getattr(top, what)
            if value is not None:
                seen.setdefault(value, path)
        if len(seen) > 1:
            (a, pa), (b, pb) = list(seen.items())[:2]
            raise UsageError(f"traces of different jobs: {pa.name} has {what} {a}, {pb.name} has {b}")
