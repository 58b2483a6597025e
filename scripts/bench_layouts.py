"""Does every JSON layout of a trace load as fast as Kineto's own? (issue #21)

Builds one trace of N events (default 1M) by replicating a real H200 fixture (bench_analyze.py's
generator), rewrites it in the layouts other tools write — json.dump on one line, compact
separators, indent=4, CRLF line ends, Chrome's JSON-array form — and times, per layout and in
the same run, `traceparse analyze` against a bare `orjson.loads` of the same file, each in its
own process (wall and peak RSS of the whole process tree, workers included; bench_analyze's
launcher). Runs are interleaved in rounds (every layout once per round), the best of each kept.

    python scripts/bench_layouts.py                          # 1M events, all layouts, 3 rounds
    python scripts/bench_layouts.py --events 200000 --layouts kineto oneline --repeat 1

Targets: at 1M events, in every layout, traceparse ≤ 0.5x orjson's time and peak RSS ≤ 2x the
JSON's size.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent


def _bench_analyze() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_analyze", HERE / "bench_analyze.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_analyze"] = module
    spec.loader.exec_module(module)
    return module


def kineto_events(path: Path) -> tuple[bytes, Iterator[bytes], bytes]:
    """(text before the events, each event's text, text after them) of a Kineto-layout file:
    its separator `},\\n  {` cannot occur inside a JSON string (no raw newlines there)."""
    data = path.read_bytes()
    start = data.index(b"[", data.index(b'"traceEvents"')) + 1
    close = data.index(b"\n  ]", data.rindex(b"},\n  {"))  # the events' "]" (keys may follow)
    body = data[start:close].strip()
    parts = body.split(b"},\n  {")

    def events() -> Iterator[bytes]:
        last = len(parts) - 1
        for i, p in enumerate(parts):
            yield (b"" if i == 0 else b"{") + p + (b"" if i == last else b"}")

    return data[:start], events(), data[close + 4 :]


def rewrite(src: Path, out: Path, layout: str) -> None:
    """The same events and top-level keys in another layout (each event re-serialized by json)."""
    head, events, tail = kineto_events(src)
    top = json.loads(head + b"]" + tail)
    top.pop("traceEvents")
    if layout == "crlf":
        out.write_bytes(src.read_bytes().replace(b"\n", b"\r\n"))
        return
    dump: Callable[[object], str] = {
        "oneline": lambda e: json.dumps(e),
        "compact": lambda e: json.dumps(e, separators=(",", ":")),
        "indent": lambda e: json.dumps(e, indent=4).replace("\n", "\n    "),
        "array": lambda e: json.dumps(e),
    }[layout]
    sep = {"oneline": ", ", "compact": ",", "indent": ",\n    ", "array": ", "}[layout]
    with out.open("w") as f:
        if layout == "array":
            f.write("[")
        else:
            keys = dump(top)[:-1] if top else "{"
            opening = '"traceEvents": [' if layout != "indent" else '"traceEvents": [\n    '
            f.write(keys + (", " if top else "") + opening)
        for i, e in enumerate(events):
            if i:
                f.write(sep)
            f.write(dump(json.loads(e)))
        f.write("]" if layout == "array" else ("]}" if layout != "indent" else "\n]\n}"))


LAYOUTS = ("kineto", "oneline", "compact", "indent", "crlf", "array")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS)
    ap.add_argument("--repeat", type=int, default=3, help="rounds (every layout once per round; best kept)")
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    ba = _bench_analyze()
    print(ba.machine())
    print(ba.versions())
    print(ba.compile_bytecode())
    template = ba.load_template(ba.DEFAULT_FIXTURE)
    work = Path(tempfile.mkdtemp(dir=args.tmp, prefix="bench-layouts-"))
    try:
        kineto = work / "kineto.pt.trace.json"
        n = ba.write_trace(template, ba.copies_for(template, args.events), kineto)
        files = {}
        for layout in args.layouts:
            path = kineto if layout == "kineto" else work / f"{layout}.json"
            if layout != "kineto":
                rewrite(kineto, path, layout)
            files[layout] = path
        best: dict[tuple[str, str], Any] = {}
        for _ in range(args.repeat):
            for layout, path in files.items():
                for who, argv in ba.contenders(path, with_hta=False).items():
                    run = ba.run_child(argv)
                    key = (layout, who)
                    if key not in best or run.wall_s < best[key].wall_s:
                        best[key] = run
        print(f"\n{n:,} events per file")
        print(
            f"{'layout':<9} {'JSON MB':>8} {'traceparse s':>13} {'orjson s':>9} {'tp/orjson':>10} "
            f"{'tp RSS MB':>10} {'RSS/JSON':>9}"
        )
        for layout, path in files.items():
            mb = path.stat().st_size / 2**20
            tp, oj = best[(layout, "traceparse")], best[(layout, "orjson")]
            print(
                f"{layout:<9} {mb:>8.0f} {tp.wall_s:>13.2f} {oj.wall_s:>9.2f} "
                f"{tp.wall_s / oj.wall_s:>10.2f} {tp.rss_mb:>10.0f} {tp.rss_mb / mb:>9.2f}"
            )
    finally:
        for p in work.iterdir():
            p.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
