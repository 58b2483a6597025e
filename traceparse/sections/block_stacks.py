"""Block stacks: every repeated stack of blocks found (the block table shows the heaviest one).
In the JSON only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from traceparse.sections.base import SectionSpec, ms
from traceparse.sections.context import Context


def compute(ctx: Context, _done: Mapping[str, Any]) -> list[dict[str, Any]]:
    kernel_us = ctx.kernel_us
    return [
        {
            "container": st.container,
            "blocks": st.blocks,
            "kinds": st.kinds,
            "gpu_ms": ms(st.gpu_us),
            "share_pct": 100.0 * st.gpu_us / kernel_us if kernel_us else 0.0,
        }
        for st in ctx.blocks.stacks
    ]


SECTION = SectionSpec(key="block_stacks", compute=compute)
