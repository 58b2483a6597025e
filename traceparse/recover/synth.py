"""Module calls that no scope recorded, added under the call that ran them.

Under torch.compile and CUDA graphs the scopes stop at the compiled module (a block, the model)
or at the graph launch. Where the trace's metadata says which module a kernel computed, the
kernel gets a call for that module, *nested under the eager call it ran in* — one call per
(eager call, module path), so a module runs once per block forward as it does eagerly, and its
self/inclusive time and FLOPs roll up through the same parent links as scoped calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from traceparse.attribute import ModuleCalls

Chain = tuple[tuple[str, str], ...]  # (qualified name, class) from just below the base call to the leaf


@dataclass
class CallBuilder:
    """Collects new calls over an existing table; `table()` returns the extended ModuleCalls."""

    calls: ModuleCalls
    _qual: list[str] = field(default_factory=list)
    _cls: list[str] = field(default_factory=list)
    _parent: list[int] = field(default_factory=list)
    _depth: list[int] = field(default_factory=list)
    _base: list[int] = field(default_factory=list)
    _made: dict[tuple[int, str], int] = field(default_factory=dict)

    def leaf(self, base: int, chain: Chain) -> int:
        """The call for the chain's last module under `base` (made once, with its ancestors)."""
        parent = base
        n0 = len(self.calls)
        for qual, cls in chain:
            key = (parent, qual)
            made = self._made.get(key)
            if made is None:
                made = n0 + len(self._qual)
                self._made[key] = made
                self._qual.append(qual)
                self._cls.append(cls)
                self._parent.append(parent)
                depth_of_parent = int(self.calls.depth[parent]) if parent < n0 else self._depth[parent - n0]
                self._depth.append(depth_of_parent + 1)
                self._base.append(base)
            parent = made
        return parent

    @property
    def added(self) -> int:
        return len(self._qual)

    def table(self) -> ModuleCalls:
        c = self.calls
        if not self._qual:
            return c
        base = np.asarray(self._base, np.int64)
        return ModuleCalls(
            pos=np.concatenate([c.pos, np.full(base.size, -1, np.int64)]),  # -1: no scope interval
            qual=np.concatenate([c.qual, np.array(self._qual, dtype=object)]),
            cls=np.concatenate([c.cls, np.array(self._cls, dtype=object)]),
            parent=np.concatenate([c.parent, np.asarray(self._parent, np.int64)]),
            depth=np.concatenate([c.depth, np.asarray(self._depth, np.int64)]),
            step=np.concatenate([c.step, c.step[base]]),
            start=np.concatenate([c.start, c.start[base]]),
            end=np.concatenate([c.end, c.end[base]]),
        )


def common_path(paths: list[str]) -> str:
    """The deepest module that contains every path ("" is the compiled module itself)."""
    if not paths:
        return ""
    split = [p.split(".") if p else [] for p in paths]
    out: list[str] = []
    for parts in zip(*split, strict=False):
        if any(x != parts[0] for x in parts):
            break
        out.append(parts[0])
    return ".".join(out)


def chain_below(base_qual: str, leaf_qual: str, class_of: dict[str, str]) -> Chain:
    """(qual, class) for each module from just below `base_qual` down to `leaf_qual`, both full
    dotted names ("" base: the root)."""
    if leaf_qual == base_qual:
        return ()
    rest = leaf_qual[len(base_qual) + 1 :] if base_qual else leaf_qual
    parts = rest.split(".")
    prefix = f"{base_qual}." if base_qual else ""
    quals = [prefix + ".".join(parts[: k + 1]) for k in range(len(parts))]
    return tuple((q, class_of.get(q, "?")) for q in quals)
