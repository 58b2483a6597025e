"""Colors and sizes every chart shares: a block kind has one color in every chart."""

from __future__ import annotations

from traceparse.sections.families import OUTSIDE

KIND_COLORS = {
    "mamba": "#4C78A8",
    "attention": "#F58518",
    "mlp": "#54A24B",
    "decoder": "#B279A2",
    "moe": "#E45756",
    "other": "#72B7B2",
    "outside blocks": "#BAB0AC",
}
FAMILY_COLORS = {
    "gemm": "#1B9E77",
    "attention": "#D95F02",
    "elementwise": "#7570B3",
    "reduction": "#E7298A",
    "copy/memset": "#66A61E",
    "communication": "#E6AB02",
    "other": "#A6761D",
}
PHASE_COLORS = {
    "forward": "#4C78A8",
    "prefill": "#4C78A8",
    "decode": "#B279A2",
    "backward": "#F58518",
    "loss": "#E45756",
    "optimizer": "#54A24B",
    "zero_grad": "#72B7B2",
    "other": "#BAB0AC",
}
DPI = 110

__all__ = ["DPI", "FAMILY_COLORS", "KIND_COLORS", "OUTSIDE", "PHASE_COLORS", "kind_color"]


def kind_color(kind: str) -> str:
    if kind in OUTSIDE:
        return KIND_COLORS["outside blocks"]
    return KIND_COLORS.get(kind, KIND_COLORS["other"])
