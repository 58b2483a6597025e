"""Which module calls are the model's blocks, and what kind each block is."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from traceparse.attribute import ModuleCalls

_CONTAINER = re.compile(r"^(?P<c>(?:.*\.)?(?:layers|h|blocks|layer|decoder\.layers|encoder\.layers))\.(?P<i>\d+)$")

_KIND_PATTERNS = (
    ("mamba", re.compile(r"Mamba|SSM|Mixer2|Bamba", re.I)),
    ("moe", re.compile(r"MoE|Moe|Expert|SparseMoe|Router", re.I)),
    ("attention", re.compile(r"Attention|SelfAttn|Attn$", re.I)),
    ("mlp", re.compile(r"MLP|FeedForward|FFN|Mlp", re.I)),
)


@dataclass(frozen=True)
class Blocks:
    container: str | None
    index_of_call: np.ndarray  # per call: block index, -1 when not a block call
    names: dict[int, str]  # block index → qualified name
    kinds: dict[int, str]


def find_blocks(calls: ModuleCalls, container: str | None) -> Blocks:
    quals = [str(q) for q in calls.qual]
    index = np.full(len(calls), -1, np.int64)
    if container is None:
        container = _detect_container(quals)
    if container is not None:
        prefix = container + "."
        for i, q in enumerate(quals):
            if q.startswith(prefix) and q[len(prefix) :].isdigit():
                index[i] = int(q[len(prefix) :])
    if not (index >= 0).any():
        container, index = _blocks_by_repeated_class(calls)
    names = {int(index[i]): quals[i] for i in np.flatnonzero(index >= 0)}
    kinds = _block_kinds(calls, index)
    return Blocks(container, index, names, kinds)


def _detect_container(quals: list[str]) -> str | None:
    seen: dict[str, set[int]] = {}
    for q in quals:
        if m := _CONTAINER.match(q):
            seen.setdefault(m.group("c"), set()).add(int(m.group("i")))
    if not seen:
        return None
    return max(seen, key=lambda c: len(seen[c]))


def _blocks_by_repeated_class(calls: ModuleCalls) -> tuple[str | None, np.ndarray]:
    """with_stack traces name instances, not paths: blocks are the largest group of same-class
    siblings that have children of their own (a decoder layer, not a Linear)."""
    index = np.full(len(calls), -1, np.int64)
    has_children = np.zeros(len(calls), bool)
    has_children[calls.parent[calls.parent >= 0]] = True
    groups: Counter[tuple[int, str]] = Counter()
    for i in np.flatnonzero(has_children & (calls.parent >= 0)):
        groups[(int(calls.parent[i]), str(calls.cls[i]))] += 1
    if not groups:
        return None, index
    (parent, cls), count = groups.most_common(1)[0]
    if count < 2:
        return None, index
    # The same parent *instance name* in every step: match by qualified names, ordered by start.
    parent_qual = calls.qual[parent]
    member_quals: list[str] = []
    for j in np.argsort(calls.start, kind="stable"):
        if calls.cls[j] == cls and calls.parent[j] >= 0 and calls.qual[calls.parent[j]] == parent_qual:
            q = str(calls.qual[j])
            if q not in member_quals:
                member_quals.append(q)
    order = {q: k for k, q in enumerate(member_quals)}
    for k, q in enumerate(calls.qual):
        if calls.cls[k] == cls and str(q) in order:
            index[k] = order[str(q)]
    return str(parent_qual), index


def _block_kinds(calls: ModuleCalls, index: np.ndarray) -> dict[int, str]:
    """A block's kind, from the classes of the modules it calls."""
    block_of = block_of_calls(calls, index)
    code, names = calls.class_codes
    inside = block_of >= 0
    classes: dict[int, set[str]] = {}
    # Distinct (block, class) pairs, in block order: the sets are built from those, not per call.
    pairs = np.unique(block_of[inside] * len(names) + code[inside])
    for b, c in zip((pairs // len(names)).tolist(), (pairs % len(names)).tolist(), strict=True):
        classes.setdefault(b, set()).add(names[c])
    return {b: kind_of(cl) for b, cl in classes.items()}


def kind_of(classes: set[str]) -> str:
    found = {kind for kind, pat in _KIND_PATTERNS for c in classes if pat.search(c)}
    if "mamba" in found:
        return "mamba"
    if "moe" in found:
        return "moe"
    if "attention" in found and "mlp" in found:
        return "decoder"
    if "attention" in found:
        return "attention"
    if "mlp" in found:
        return "mlp"
    return "other"


def block_of_calls(calls: ModuleCalls, index: np.ndarray) -> np.ndarray:
    """Per call: the block it belongs to (itself or an ancestor), -1 outside blocks."""
    return calls.inherit(index, index >= 0)
