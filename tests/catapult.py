"""Catapult's trace viewer (chrome://tracing, TensorBoard's Trace tab) in headless Chromium.

`trace_viewer_full.html` is the copy shipped in the torch-tb-profiler wheel, the one TensorBoard
serves; it needs the HTML-imports polyfill (vendored: tests/vendor/webcomponentsjs-0.7.24).
Traces go into the page as JS string literals, so the viewer parses exactly the file's text.

Used by tests/test_viewers.py; also makes the README's screenshot:

    python -m tests.catapult annotated.json.gz docs/screenshots/catapult-annotated.png
"""

from __future__ import annotations

import gzip
import html
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.conftest import HEADLESS_CHROMIUM

POLYFILL = Path(__file__).resolve().parent / "vendor" / "webcomponentsjs-0.7.24" / "webcomponents.min.js"


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def trace_viewer() -> Path | None:
    """trace_viewer_full.html inside the installed torch_tb_profiler package, if any."""
    spec = importlib.util.find_spec("torch_tb_profiler")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "static" / "trace_viewer_full.html"
    return path if path.is_file() else None


def read_text(path: Path) -> str:
    data = path.read_bytes()
    return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8")


_HEAD = """<!DOCTYPE html><html><head><meta charset="utf-8">
<script>window.__hideTraceViewerPolyfillWarning = true;</script>
<script src="webcomponents.min.js"></script>
<link rel="import" href="trace_viewer_full.html">
<script src="traces.js"></script>
<style>html,body{margin:0;padding:0;width:100%;height:100%;overflow:hidden}#tv{width:100%;height:100%}</style>
"""

# Per trace: every process with its threads (slice counts) and counters (series, samples), and
# the import warnings by type. Written into <pre id="result"> for --dump-dom.
_SUMMARY_JS = """<script>
document.addEventListener('WebComponentsReady', function () {
  var out = {};
  Object.keys(window.TRACES).forEach(function (key) {
    var r = {processes: [], warnings: {}};
    try {
      var m = new tr.Model();
      new tr.importer.Import(m).importTraces([window.TRACES[key]]);
      m.getAllProcesses().forEach(function (p) {
        var pr = {pid: String(p.pid), name: p.name || null, threads: {}, counters: {}};
        Object.values(p.threads).forEach(function (t) {
          pr.threads[t.name || String(t.tid)] = t.sliceGroup.slices.length;
        });
        Object.values(p.counters).forEach(function (c) {
          pr.counters[c.name] = c.series.map(function (s) {
            return {name: s.name, ts: s.samples.map(function (x) { return x.timestamp; }),
                    values: s.samples.map(function (x) { return x.value; })};
          });
        });
        r.processes.push(pr);
      });
      m.importWarnings.forEach(function (w) { r.warnings[w.type] = (r.warnings[w.type] || 0) + 1; });
    } catch (e) { r.error = String(e) + '\\n' + e.stack; }
    out[key] = r;
  });
  var pre = document.createElement('pre'); pre.id = 'result';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script></head><body></body></html>
"""

# TensorBoard's trace_embedding.html minus its postMessage plumbing; then zoomed to the first
# step's block slices with BLOCKS[0] <= args.block <= BLOCKS[1] (model times: shifted, in ms).
_VIEW_JS = """<script>
document.addEventListener('WebComponentsReady', function () {
  var container = document.createElement('track-view-container');
  container.id = 'track_view_container';
  var viewer = document.createElement('tr-ui-timeline-view');
  viewer.track_view_container = container;
  Polymer.dom(viewer).appendChild(container);
  viewer.id = 'tv';
  viewer.globalMode = true;
  Polymer.dom(document.body).appendChild(viewer);
  var m = new tr.Model();
  new tr.importer.Import(m).importTraces([window.TRACES.trace]);
  viewer.model = m;
  viewer.viewTitle = window.TITLE;
  var picked = [];
  m.getAllProcesses().forEach(function (p) {
    Object.values(p.threads).forEach(function (t) {
      if (t.name !== 'blocks') return;
      t.sliceGroup.slices.forEach(function (s) { picked.push(s); });
    });
  });
  if (window.BLOCKS && picked.length) {
    var step = Math.min.apply(null, picked.map(function (s) { return s.args.step; }));
    picked = picked.filter(function (s) {
      return s.args.step === step && s.args.block >= window.BLOCKS[0] && s.args.block <= window.BLOCKS[1];
    });
    var t0 = Math.min.apply(null, picked.map(function (s) { return s.start; }));
    var t1 = Math.max.apply(null, picked.map(function (s) { return s.end; }));
    var pad = (t1 - t0) * 0.03;
    // After the viewer's own initial fit-to-trace, which runs once the model is drawn.
    setTimeout(function () {
      var tv = viewer.trackView, dt = new tr.ui.TimelineDisplayTransform();
      dt.xSetWorldBounds(t0 - pad, t1 + pad, tv.modelTrackContainer_.canvas.width);
      tv.viewport.setDisplayTransformImmediately(dt);
      // Select the middle block slice, so the panel below shows its args.
      var mid = picked[Math.floor(picked.length / 2)];
      viewer.brushingStateController.changeSelectionFromTimeline(new tr.model.EventSet([mid]));
    }, 1000);
  }
});
</script></head><body></body></html>
"""


def _browser(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    browser = chromium()
    assert browser is not None
    with tempfile.TemporaryDirectory(prefix="catapult-profile-") as profile:
        cmd = [
            browser,
            *HEADLESS_CHROMIUM,
            # The polyfill loads trace_viewer_full.html with XHR, which file:// pages may not do by default.
            "--allow-file-access-from-files",
            # Virtual time runs the page until it is idle (imports loaded, the import done) and no longer.
            "--virtual-time-budget=120000",
            f"--user-data-dir={profile}",
            *extra,
            page.resolve().as_uri(),
        ]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)


def _write_page(workdir: Path, traces: dict[str, str], script: str, settings: dict[str, Any] | None = None) -> Path:
    viewer = trace_viewer()
    assert viewer is not None
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(viewer, workdir / "trace_viewer_full.html")
    shutil.copy(POLYFILL, workdir / "webcomponents.min.js")
    lines = [f"window.TRACES = {json.dumps(traces)};"]
    lines += [f"window.{k} = {json.dumps(v)};" for k, v in (settings or {}).items()]
    (workdir / "traces.js").write_text("\n".join(lines), encoding="utf-8")
    page = workdir / "page.html"
    page.write_text(_HEAD + script, encoding="utf-8")
    return page


def import_traces(traces: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Import each trace text into its own Catapult model; what the model holds, per key."""
    page = _write_page(workdir, traces, _SUMMARY_JS)
    done = _browser(page, "--dump-dom")
    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the viewer page produced no result; stderr tail: {done.stderr[-2000:]}"
    result: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return result


def screenshot(
    trace: str,
    png: Path,
    workdir: Path,
    blocks: tuple[int, int] | None = None,
    title: str = "annotated trace",
    size: str = "1600,1000",
) -> None:
    settings = {"BLOCKS": list(blocks) if blocks else None, "TITLE": title}
    page = _write_page(workdir, {"trace": trace}, _VIEW_JS, settings)
    _browser(page, "--hide-scrollbars", f"--window-size={size}", f"--screenshot={png.resolve()}")


def main(argv: list[str]) -> None:
    """python -m tests.catapult TRACE PNG [FIRST_BLOCK LAST_BLOCK]: the viewer zoomed to those blocks."""
    src, png = Path(argv[0]), Path(argv[1])
    blocks = (int(argv[2]), int(argv[3])) if len(argv) > 3 else (0, 3)
    from PIL import Image

    text = read_text(src)
    for _ in range(3):  # headless screenshots now and then come out blank (taken before the first paint)
        with tempfile.TemporaryDirectory(prefix="catapult-") as tmp:
            screenshot(text, png, Path(tmp), blocks, src.name)
        with Image.open(png) as im:
            if len(im.convert("RGB").getcolors(1 << 24) or []) > 1:
                return
    raise SystemExit(f"{png}: blank after 3 tries")


if __name__ == "__main__":
    main(sys.argv[1:])
