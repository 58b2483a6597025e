"""The HTML report (`analyze --html FILE`): every section, charts inline, nothing fetched; capture's pass-through."""

from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess
import sys
import types
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.conftest import HEADLESS_CHROMIUM, NEMOTRON_8L_GENERATE, NEMOTRON_9B, USER_STACK, USER_TRAIN, analysis
from traceparse.cli import app
from traceparse.render.charts import KIND_COLORS, chart_data
from traceparse.render.html import render_html
from traceparse.render.sections import sections

runner = CliRunner()
ROOT = Path(__file__).resolve().parent.parent


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.urls: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for k, v in attrs:
            if k == "id" and v:
                self.ids.append(v)
            if k in ("src", "href", "srcset", "action", "data", "poster") and v is not None:
                self.urls.append((tag, k, v))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@cache
def _page(path: Path) -> str:
    a = analysis(path)
    return render_html(a.report, a)


def _parse(page: str) -> _Page:
    p = _Page()
    p.feed(page)
    p.close()
    return p


@pytest.mark.parametrize("path", [NEMOTRON_9B, NEMOTRON_8L_GENERATE, USER_TRAIN], ids=["9b", "generate", "user-train"])
def test_html_has_every_section_and_inline_charts(path: Path) -> None:
    a = analysis(path)
    parsed = _parse(_page(path))
    text = html.unescape("".join(parsed.text))
    secs = sections(a.report)
    assert secs, "a report always has sections"
    for s in secs:
        assert s.key in parsed.ids, s.key
        assert s.title in text, s.title
        for row in s.rows:  # every cell of every table is in the page
            for cell in row:
                assert str(cell) in text, (s.key, cell)
    for note in a.report.notes:
        assert note in text
    if a.report.notes:
        assert "notes" in parsed.ids
    charts = chart_data(a.report, a)
    imgs = [v for tag, k, v in parsed.urls if tag == "img" and k == "src"]
    assert len(imgs) == len(charts)
    for c in charts:
        assert f"chart-{c.name}" in parsed.ids
    for uri in imgs:
        assert uri.startswith("data:image/svg+xml;base64,")
        svg = base64.b64decode(uri.split(",", 1)[1])
        assert b"<svg" in svg and b"</svg>" in svg


def test_html_fetches_nothing() -> None:
    page = _page(NEMOTRON_8L_GENERATE)
    parsed = _parse(page)
    for tag, attr, value in parsed.urls:
        assert value.startswith(("data:", "#")), (tag, attr, value[:60])
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    assert "@import" not in page and not re.search(r"url\((?!data:)", page)
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page


def test_html_without_matplotlib_keeps_the_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    a = analysis(USER_TRAIN)
    page = render_html(a.report, a)
    assert "<img" not in page and "traceparse[charts]" in page
    assert all(f'id="{s.key}"' in page for s in sections(a.report))


def test_analyze_cli_writes_charts_and_html(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    result = runner.invoke(
        app,
        [
            "analyze",
            str(USER_TRAIN),
            "-f",
            "markdown",
            "-o",
            str(out),
            "--charts",
            str(tmp_path / "charts"),
            "--html",
            str(tmp_path / "r.html"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert out.exists()
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == [
        "kernel_families.png",
        "phases.png",
        "roofline.png",
        "top_operators.png",
    ]
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.count("<img ") == 4 and "Top operators" in page


def test_capture_writes_charts_and_html_after_the_capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass-through, without running a model: a stand-in capture that "saves" a fixture trace."""
    trace = tmp_path / "out" / "fake.pt.trace.json.gz"
    trace.parent.mkdir()
    shutil.copy(USER_STACK, trace)
    seen: dict[str, Any] = {}

    def run_capture(opts: dict[str, Any], progress: Any) -> Any:
        seen.update(opts)
        return types.SimpleNamespace(
            trace_path=trace,
            metadata={"timing": {"forward_ms_uninstrumented": 1.0, "forward_ms_scopes": 1.1}},
            step_wall_ms=[2.0],
            trace_bytes=trace.stat().st_size,
            capture_s=0.1,
        )

    fake = types.ModuleType("traceparse.capture")
    fake.CaptureOptions = lambda **kw: kw  # type: ignore[attr-defined]
    fake.run_capture = run_capture  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "traceparse.capture", fake)
    charts, page = tmp_path / "out" / "charts", tmp_path / "out" / "report.html"
    result = runner.invoke(
        app, ["capture", "--preset", "x", "--no-report", "--charts", str(charts), "--html", str(page), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert seen["preset"] == "x"
    a = analysis(USER_STACK)
    assert {p.stem for p in charts.iterdir()} == {c.name for c in chart_data(a.report, a)}
    assert "blocks_time_by_family" in {p.stem for p in charts.iterdir()}
    assert "Per-block efficiency" in page.read_text(encoding="utf-8")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def screenshot(page: Path, png: Path, profile: Path, size: str = "1400,3000") -> None:
    """A headless Chromium screenshot of a local file, with everything that phones home turned off."""
    browser = _chromium()
    assert browser is not None
    cmd = [
        browser,
        *HEADLESS_CHROMIUM,
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        f"--window-size={size}",
        page.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)


@pytest.mark.browser
@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install chromium)")
def test_headless_browser_renders_the_report_offline(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(_page(NEMOTRON_9B), encoding="utf-8")
    png = tmp_path / "shot.png"
    screenshot(page, png, tmp_path / "profile")
    with Image.open(png) as im:
        assert im.size == (1400, 3000)
        rgb = im.convert("RGB")
        colors = dict((c, n) for n, c in (rgb.getcolors(maxcolors=1 << 24) or []))
    total = 1400 * 3000
    white_ish = sum(n for c, n in colors.items() if min(c) > 240)
    assert white_ish < 0.97 * total, "the page rendered (not blank)"

    # The charts are drawn: the mamba and mlp bar colors cover real areas of the screenshot.
    def area(hex_color: str) -> int:
        want = tuple(int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
        return sum(n for c, n in colors.items() if max(abs(x - y) for x, y in zip(c, want, strict=True)) <= 6)

    assert area(KIND_COLORS["mamba"]) > 2000 and area(KIND_COLORS["mlp"]) > 2000
