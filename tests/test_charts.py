"""Charts (`analyze --charts DIR`): PNGs for the H200 fixtures, and the plotted numbers are the report's."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import NEMOTRON_8L_GENERATE, NEMOTRON_8L_TRAIN, NEMOTRON_9B, QWEN_GENERATE, USER_TRAIN, analysis
from traceparse.api import Analysis
from traceparse.blocks import kind_of
from traceparse.errors import TraceparseError
from traceparse.render.charts import (
    KIND_COLORS,
    ChartData,
    block_family_ms,
    chart_data,
    draw_chart,
    kind_color,
    render_chart,
    write_charts,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _charts(path: Path) -> dict[str, ChartData]:
    a = analysis(path)
    return {c.name: c for c in chart_data(a.report, a)}


def _close(a: float | None, b: float | None, rel: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            NEMOTRON_9B,
            {
                "blocks_time_by_family",
                "blocks_tflops",
                "module_types",
                "slowest_modules",
                "kernel_families",
                "roofline",
            },
        ),
        (
            NEMOTRON_8L_TRAIN,
            {
                "blocks_time_by_family",
                "blocks_tflops",
                "phases",
                "module_types",
                "slowest_modules",
                "kernel_families",
                "roofline",
            },
        ),
        (
            NEMOTRON_8L_GENERATE,
            {
                "blocks_time_by_family",
                "blocks_tflops",
                "phases",
                "module_types",
                "slowest_modules",
                "kernel_families",
                "roofline",
            },
        ),
        # operators fallback: no modules, no blocks; the roofline shows the top operators
        (USER_TRAIN, {"phases", "top_operators", "kernel_families", "roofline"}),
    ],
    ids=lambda v: v.name.split(".pt.")[0] if isinstance(v, Path) else "",
)
def test_charts_are_written_as_valid_pngs(path: Path, expected: set[str], tmp_path: Path) -> None:
    a = analysis(path)
    written = write_charts(a.report, tmp_path / "charts", a)
    assert {p.stem for p in written} == expected
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == sorted(f"{n}.png" for n in expected)
    for p in written:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC), p
        with Image.open(p) as im:
            im.verify()
        with Image.open(p) as im:
            w, h = im.size
            assert w >= 700 and h >= 250, (p.name, im.size)
            colors = im.convert("RGB").getcolors(maxcolors=1 << 24) or []
            assert len(colors) > 20, f"{p.name} looks blank"


def test_block_family_chart_sums_to_the_report_blocks(nemotron_9b: Analysis) -> None:
    report = nemotron_9b.report
    c = _charts(NEMOTRON_9B)["blocks_time_by_family"]
    d = c.data
    assert d["blocks"] == [b.index for b in report.blocks] == list(range(56))
    assert d["kinds"] == [b.kind for b in report.blocks]
    for i, b in enumerate(report.blocks):
        stacked = sum(d["ms"][f][i] for f in d["families"])
        assert math.isclose(stacked, b.gpu_ms, rel_tol=1e-9), (b.index, stacked, b.gpu_ms)
        assert math.isclose(d["total_ms"][i], b.gpu_ms, rel_tol=1e-9)
    # An independent cross-check: per family and block kind, the blocks add up to the report's
    # kernel-family table (computed by aggregate.py from the same kernels, another way).
    for fam in report.kernel_families:
        for kind, ms in fam.by_block_kind.items():
            if kind not in d["kinds"]:
                continue  # work outside every block is not in the per-block chart
            mine = sum(v for v, k in zip(d["ms"].get(fam.family, []), d["kinds"], strict=False) if k == kind)
            assert math.isclose(mine, ms, rel_tol=1e-9, abs_tol=1e-12), (fam.family, kind, mine, ms)
    # Mamba blocks are the elementwise/reduction-bound ones (the torch reference scan path).
    mamba = [i for i, k in enumerate(d["kinds"]) if k == "mamba"]
    assert len(mamba) == 27
    assert all(d["ms"]["elementwise"][i] + d["ms"]["reduction"][i] > 0.9 * d["total_ms"][i] for i in mamba)


@pytest.mark.parametrize("path", [NEMOTRON_8L_TRAIN, QWEN_GENERATE], ids=["train", "generate"])
def test_block_family_split_matches_blocks_for_train_and_generate(path: Path) -> None:
    a = analysis(path)
    per_block = block_family_ms(a)
    for b in a.report.blocks:
        assert math.isclose(sum(per_block[b.index].values()), b.gpu_ms, rel_tol=1e-9)


def test_tflops_chart_plots_the_report_blocks_with_peak_and_mfu(nemotron_9b: Analysis) -> None:
    report = nemotron_9b.report
    d = _charts(NEMOTRON_9B)["blocks_tflops"].data
    assert [b.index for b in report.blocks] == d["blocks"]
    assert all(_close(x, b.tflops) for x, b in zip(d["tflops"], report.blocks, strict=True))
    assert all(
        _close(x, None if b.mfu is None else 100 * b.mfu) for x, b in zip(d["mfu_pct"], report.blocks, strict=True)
    )
    assert d["peak_tflops"] == report.general.peak_tflops == pytest.approx(989.4)
    assert d["dtype"] == "bf16" and d["device"] == "NVIDIA H200"
    assert d["model_kernel_tflops"] == report.general.kernel_tflops
    # MFU axis and values agree: MFU % = TFLOP/s / peak.
    for t, m in zip(d["tflops"], d["mfu_pct"], strict=True):
        assert m == pytest.approx(100 * t / d["peak_tflops"])


def test_type_module_phase_and_family_charts_plot_the_report() -> None:
    a = analysis(NEMOTRON_8L_TRAIN)
    r = a.report
    c = _charts(NEMOTRON_8L_TRAIN)
    t = c["module_types"].data
    assert t["types"] == [m.type for m in r.module_types][: len(t["types"])]
    assert t["self_ms"] == [m.self_ms for m in r.module_types][: len(t["types"])]
    assert t["total_ms"] == [m.total_ms for m in r.module_types][: len(t["types"])]
    s = c["slowest_modules"].data
    assert s["modules"] == [m.name for m in r.slowest_modules]
    assert s["self_ms"] == [m.self_ms for m in r.slowest_modules]
    assert s["inclusive_ms"] == [m.inclusive_ms for m in r.slowest_modules]
    kinds = {b.index: b.kind for b in r.blocks}
    assert s["kinds"] == [kinds[m.block] if m.block is not None else "outside blocks" for m in r.slowest_modules]
    p = c["phases"].data
    assert p["phases"] == [x.phase for x in r.phases] and p["kernel_ms"] == [x.kernel_ms for x in r.phases]
    assert p["unattributed_ms"] == [x.unattributed_ms for x in r.phases]
    assert {"forward", "backward", "optimizer"} <= set(p["phases"])
    f = c["kernel_families"].data
    assert f["families"] == [x.family for x in r.kernel_families]
    for k in f["kinds"]:
        assert f["ms"][k] == [x.by_block_kind.get(k, 0.0) for x in r.kernel_families]
    # The stacks add up to each family's total.
    for i, x in enumerate(r.kernel_families):
        assert sum(f["ms"][k][i] for k in f["kinds"]) == pytest.approx(x.kernel_ms)


def test_generate_phase_chart_has_prefill_decode_and_per_token_blocks() -> None:
    r = analysis(NEMOTRON_8L_GENERATE).report
    p = _charts(NEMOTRON_8L_GENERATE)["phases"].data
    assert p["phases"][:2] == ["prefill", "decode"]
    assert r.generation is not None
    assert p["decode_ms_per_token"] == [b["ms_per_token"] for b in r.generation["decode_block_ms"]]
    assert p["decode_kinds"] == [b.kind for b in r.blocks]


def test_forward_trace_has_no_phase_chart(nemotron_9b: Analysis) -> None:
    assert len(nemotron_9b.report.phases) == 1
    assert "phases" not in _charts(NEMOTRON_9B)


def test_56_blocks_are_each_labeled_with_units_and_kind_colors(nemotron_9b: Analysis) -> None:
    c = _charts(NEMOTRON_9B)
    fig = draw_chart(c["blocks_time_by_family"])
    main, strip = fig.axes[:2]
    assert [t.get_text() for t in strip.get_xticklabels()] == [str(i) for i in range(56)]
    assert fig.get_size_inches()[0] >= 13  # wide enough for 56 labeled bars
    assert "ms" in main.get_ylabel() and strip.get_xlabel() == "block index"
    # The kind strip uses the shared palette, block by block (one bar collection: 56 faces).
    from matplotlib.colors import to_rgba

    def faces(ax: Any) -> list[tuple[float, ...]]:
        return [tuple(f) for f in ax.collections[0].get_facecolors()]

    kinds = c["blocks_time_by_family"].data["kinds"]
    assert faces(strip) == [to_rgba(kind_color(k)) for k in kinds]
    fig = draw_chart(c["blocks_tflops"])
    ax = fig.axes[0]
    assert "TFLOP/s" in ax.get_ylabel()
    labels = [a.get_ylabel() for a in [*fig.axes, *ax.child_axes]]
    assert any("MFU" in lab and "%" in lab for lab in labels)
    peak_lines = [ln for ln in ax.get_lines() if ln.get_ydata()[0] == pytest.approx(989.4)]
    assert peak_lines, "the device peak is drawn as a line"
    assert faces(ax) == [to_rgba(kind_color(k)) for k in c["blocks_tflops"].data["kinds"]]
    # Bar heights are the report's TFLOP/s.
    tops = [float(v[:, 1].max()) for v in (p.vertices for p in ax.collections[0].get_paths())]
    assert tops == pytest.approx([b.tflops for b in nemotron_9b.report.blocks])


def test_every_block_kind_has_its_own_color() -> None:
    kinds = {kind_of(set()), kind_of({"Mamba2Mixer"}), kind_of({"MoE"}), kind_of({"Attention"}), kind_of({"MLP"})}
    kinds.add(kind_of({"Attention", "MLP"}))
    assert kinds <= set(KIND_COLORS)
    assert len(set(KIND_COLORS.values())) == len(KIND_COLORS)
    assert kind_color("none") == kind_color("outside blocks")


def test_svg_output_is_deterministic_and_text_free_of_dates() -> None:
    c = _charts(NEMOTRON_8L_TRAIN)["phases"]
    a, b = render_chart(c, "svg"), render_chart(c, "svg")
    assert a == b and a.lstrip().startswith(b"<?xml") and b"<svg" in a


def test_without_matplotlib_charts_fail_with_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    a = analysis(USER_TRAIN)
    with pytest.raises(TraceparseError, match=r"pip install 'traceparse\[charts\]'"):
        write_charts(a.report, tmp_path, a)
