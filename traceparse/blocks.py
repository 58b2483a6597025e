"""Which module calls are the model's blocks, and what kind each block is.

A trace can hold several repeated stacks: a diffusion pipeline runs text encoders (CLIP, T5)
and a diffusion transformer; a VLM a vision tower and a decoder. Every stack is found; the
per-block table shows the one that holds the most GPU time, and the others are listed.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from traceparse.attribute import ModuleCalls

# "<container>.<index>": HF decoders (model.layers.N), GPT-2 (transformer.h.N), BERT/ViT
# (encoder.layer.N), CLIP (encoder.layers.N), diffusers (transformer_blocks.N,
# single_transformer_blocks.N), timm (blocks.N), OpenCLIP (resblocks.N).
_CONTAINER = re.compile(
    r"^(?P<c>(?:.*\.)?(?:layers|h|blocks|layer|block|transformer_blocks|single_transformer_blocks|resblocks|"
    r"joint_blocks|double_blocks|single_blocks))\.(?P<i>\d+)$"
)

_KIND_PATTERNS = (
    ("mamba", re.compile(r"Mamba|SSM|Mixer2|Bamba", re.I)),
    ("moe", re.compile(r"MoE|Moe|Expert|SparseMoe|Router", re.I)),
    ("attention", re.compile(r"Attention|Attn", re.I)),
    ("mlp", re.compile(r"MLP|FeedForward|FFN|Mlp|Intermediate", re.I)),
)
# Stacks that are encoders (bidirectional attention): by the container's path or the classes.
_ENCODER = re.compile(r"encoder|vision|visual|vit|bert|clip|siglip|dino", re.I)


@dataclass(frozen=True)
class Stack:
    """One repeated stack of blocks."""

    container: str
    blocks: int
    gpu_us: float  # inclusive time of its block calls, all steps
    kinds: dict[str, int]  # kind → number of blocks


@dataclass(frozen=True)
class Blocks:
    container: str | None
    index_of_call: np.ndarray  # per call: block index, -1 when not a block call
    names: dict[int, str]  # block index → qualified name
    kinds: dict[int, str]
    stacks: tuple[Stack, ...] = field(default=())  # every stack found, most time first


def find_blocks(calls: ModuleCalls, container: str | None, call_us: np.ndarray | None = None) -> Blocks:
    """The block stack: the metadata's container, else the stack whose block calls hold the most
    inclusive time (`call_us`, per call; without it, the one with the most blocks)."""
    quals = [str(q) for q in calls.qual]
    candidates = _outermost(calls, _stacks_by_path(quals, container) or _stacks_by_repeated_class(calls))
    if not candidates:
        return Blocks(None, np.full(len(calls), -1, np.int64), {}, {}, ())
    us = call_us if call_us is not None else np.zeros(len(calls))
    stacks = []
    for name, index in candidates.items():
        kinds = _block_kinds(calls, index, name)
        stacks.append(
            (
                Stack(
                    name,
                    len(set(index[index >= 0].tolist())),
                    float(us[index >= 0].sum()),
                    dict(Counter(kinds.values())),
                ),
                index,
                kinds,
            )
        )
    stacks.sort(key=lambda s: (-s[0].gpu_us, -s[0].blocks))
    top, index, kinds = stacks[0]
    names = {int(index[i]): quals[i] for i in np.flatnonzero(index >= 0)}
    return Blocks(top.container, index, names, kinds, tuple(s[0] for s in stacks))


def _outermost(calls: ModuleCalls, stacks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Stacks not nested inside another stack's blocks (an MoE's experts inside decoder layers)."""
    inside = {name: block_of_calls(calls, index) >= 0 for name, index in stacks.items()}
    out = {}
    for name, index in stacks.items():
        members = np.flatnonzero(index >= 0)
        parents = calls.parent[members]
        nested = any(
            ((parents >= 0) & inside[other][np.where(parents >= 0, parents, 0)]).all()
            for other in stacks
            if other != name
        )
        if not nested:
            out[name] = index
    return out


def _stacks_by_path(quals: list[str], container: str | None) -> dict[str, np.ndarray]:
    """Stacks named by qualified paths ("model.layers.3"): one per container with ≥ 2 blocks."""
    members: dict[str, np.ndarray] = {}
    seen: dict[str, set[int]] = {}
    for q in quals:
        if m := _CONTAINER.match(q):
            seen.setdefault(m.group("c"), set()).add(int(m.group("i")))
    wanted = [container] if container is not None else [c for c, ids in seen.items() if len(ids) >= 2]
    for c in wanted:
        prefix = c + "."
        index = np.full(len(quals), -1, np.int64)
        for i, q in enumerate(quals):
            if q.startswith(prefix) and q[len(prefix) :].isdigit():
                index[i] = int(q[len(prefix) :])
        if (index >= 0).any():
            members[c] = index
    return members


def _stacks_by_repeated_class(calls: ModuleCalls) -> dict[str, np.ndarray]:
    """with_stack traces name instances, not paths: a stack is a group of ≥ 2 same-class siblings
    that have children of their own (a decoder layer, not a Linear), under one parent instance."""
    has_children = np.zeros(len(calls), bool)
    has_children[calls.parent[calls.parent >= 0]] = True
    groups: Counter[tuple[str, str]] = Counter()
    for i in np.flatnonzero(has_children & (calls.parent >= 0)):
        groups[(str(calls.qual[calls.parent[i]]), str(calls.cls[i]))] += 1
    out: dict[str, np.ndarray] = {}
    for (parent_qual, cls), _ in groups.most_common():
        # The same parent *instance name* in every step: members by qualified name, ordered by start.
        member_quals: list[str] = []
        for j in np.argsort(calls.start, kind="stable"):
            if calls.cls[j] == cls and calls.parent[j] >= 0 and calls.qual[calls.parent[j]] == parent_qual:
                q = str(calls.qual[j])
                if q not in member_quals:
                    member_quals.append(q)
        if len(member_quals) < 2 or parent_qual in out:
            continue
        order = {q: k for k, q in enumerate(member_quals)}
        index = np.full(len(calls), -1, np.int64)
        for k, q in enumerate(calls.qual):
            if calls.cls[k] == cls and str(q) in order:
                index[k] = order[str(q)]
        out[parent_qual] = index
    return out


def _block_kinds(calls: ModuleCalls, index: np.ndarray, container: str) -> dict[int, str]:
    """A block's kind, from the classes of the modules it calls (and its stack, for encoders)."""
    block_of = block_of_calls(calls, index)
    code, names = calls.class_codes
    inside = block_of >= 0
    classes: dict[int, set[str]] = {}
    # Distinct (block, class) pairs, in block order: the sets are built from those, not per call.
    pairs = np.unique(block_of[inside] * len(names) + code[inside])
    for b, c in zip((pairs // len(names)).tolist(), (pairs % len(names)).tolist(), strict=True):
        classes.setdefault(b, set()).add(names[c])
    return {b: kind_of(cl, container) for b, cl in classes.items()}


def kind_of(classes: set[str], container: str = "") -> str:
    found = {kind for kind, pat in _KIND_PATTERNS for c in classes if pat.search(c)}
    if "mamba" in found:
        return "mamba"
    if "moe" in found:
        return "moe"
    if "attention" in found and "mlp" in found:
        encoder = _ENCODER.search(container) or any("Encoder" in c for c in classes)
        return "encoder" if encoder and not any("Decoder" in c for c in classes) else "decoder"
    if "attention" in found:
        return "attention"
    if "mlp" in found:
        return "mlp"
    return "other"


def block_of_calls(calls: ModuleCalls, index: np.ndarray) -> np.ndarray:
    """Per call: the block it belongs to (itself or an ancestor), -1 outside blocks."""
    return calls.inherit(index, index >= 0)
