"""Strict nesting per track: Perfetto and Catapult draw one track's slices as a stack.

Module spans on the GPU can overlap a sibling's (kernels of consecutive modules overlap by a
fraction of a microsecond with programmatic dependent launch), so slices are packed into lanes:
each goes to its parent's lane when it nests there, else to the first lane where it nests, else
to a new lane ("modules · lane 2"). `check_nesting` verifies every track before anything is
written.
"""

from __future__ import annotations

from collections.abc import Iterable

from traceparse.annotate.slices import Slice


class NestingError(ValueError):
    """Two slices on one track overlap without one containing the other (a bug)."""


def assign_lanes(slices: list[Slice], prefer_parent: bool = True) -> list[list[Slice]]:
    """Pack slices into lanes in which every pair is disjoint or nested; parents before children."""
    lanes: list[list[Slice]] = []
    stacks: list[list[int]] = []  # per lane: end_ns of the open slices
    lane_of: dict[tuple[int, int, int], int] = {}
    for s in sorted(slices, key=lambda s: (s.start_ns, -s.end_ns, s.depth)):
        preferred = lane_of.get(s.parent) if (prefer_parent and s.parent is not None) else None
        order = ([preferred] if preferred is not None else []) + list(range(len(lanes)))
        for lane in order:
            stack = stacks[lane]
            while stack and stack[-1] <= s.start_ns:
                stack.pop()  # safe: every later slice starts at or after this one
            if not stack or s.end_ns <= stack[-1]:
                break
        else:
            lane = len(lanes)
            lanes.append([])
            stacks.append([])
        stacks[lane].append(s.end_ns)
        lanes[lane].append(s)
        lane_of[s.key] = lane
    return lanes


def check_nesting(spans: Iterable[tuple[int, int]], track: str = "") -> None:
    """Raise NestingError unless every two (start, end) spans are disjoint or one contains the other."""
    stack: list[tuple[int, int]] = []
    for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
        if end < start:
            raise NestingError(f"track {track!r}: slice ends before it starts ({start}..{end} ns)")
        while stack and stack[-1][1] <= start:
            stack.pop()
        if stack and end > stack[-1][1]:
            top = stack[-1]
            raise NestingError(
                f"track {track!r}: slice {start}..{end} ns overlaps {top[0]}..{top[1]} ns without nesting"
            )
        stack.append((start, end))
