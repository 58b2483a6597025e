"""Is `traceparse analyze` fast at scale? Against a bare orjson.loads and HTA's loader.

Builds 100k, 1M and 5M-event traces (10M with --ten-million) by replicating a real H200 fixture
back to back in time, then times each contender in its own subprocess and reads that child's
peak RSS (os.wait4's rusage):

    (a) traceparse analyze --format json --quiet  (the whole report, not just the load)
    (b) orjson.loads of the same file               (a bare JSON parse into Python objects)
    (c) HTA's TraceAnalysis(trace_files={0: path})  (100k and 1M only: it is slow)

With --gz each size is also gzipped and all three read the .json.gz: traceparse and HTA natively
(HTA's parser opens a path ending in .gz with gzip.open), orjson after gzip.decompress.

    python scripts/bench_analyze.py                  # 100k, 1M, 5M; HTA at 100k and 1M
    python scripts/bench_analyze.py --ten-million    # also 10M events (analyze only)
    python scripts/bench_analyze.py --sizes 1M --no-hta --gz

Targets (issue #7): at 1M events (a) takes at most half of (b)'s time and is at least 20x faster
than (c); (a)'s peak RSS is at most 2.5x the uncompressed JSON; 10M events finish within 24 GB.

Replication keeps the trace valid: each copy is shifted by a whole number of microseconds (an
exact decimal shift of the ts text, so nesting and float rounding are those of the original),
and its correlation/flow ids, External ids, sequence numbers, Python ids and ProfilerStep
numbers are offset past the previous copy's. Metadata ('M'), instant ('i') and the profiler's
own span event are kept once. Big files go under /tmp and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FIXTURE = ROOT / "fixtures" / "h200" / "nemotron-nano-9b-v2-forward-seq215.pt.trace.json.gz"
SIZES = {"100k": 100_000, "1M": 1_000_000, "5M": 5_000_000, "10M": 10_000_000}

_EVENT_START = re.compile(rb"\n  \{\n")
# Fields rewritten per copy: (slot kind, pattern whose group 1 is the number).
_SLOTS = (
    ("ts", re.compile(rb'"ts": (-?\d+(?:\.\d+)?)')),
    ("corr", re.compile(rb'"correlation": (\d+)')),
    ("corr", re.compile(rb'"id": (\d+)')),  # flow ids: ac2g flows carry the correlation id
    ("ext", re.compile(rb'"External id": (\d+)')),
    ("seq", re.compile(rb'"Sequence number": (\d+)')),
    ("py", re.compile(rb'"Python (?:parent )?id": (\d+)')),
    ("step", re.compile(rb'"name": "ProfilerStep#(\d+)"')),
)
_ONCE = re.compile(rb'"ph": "[Mi]"|"cat": "Trace"')


@dataclass
class Template:
    head: bytes  # everything up to and including `"traceEvents": [`
    tail: bytes  # from the closing `]` on
    once: list[bytes]  # events kept in the first copy only
    pieces: list[tuple[list[bytes], list[tuple[str, bytes]]]]  # literals and slots per event
    span_us: int  # a copy's time shift
    maxima: dict[str, int]

    @property
    def events_per_copy(self) -> int:
        return len(self.pieces)


def load_template(fixture: Path) -> Template:
    """Split a Kineto-formatted trace into per-event templates (one event per `\\n  {` block)."""
    text = fixture.read_bytes()
    if text[:2] == b"\x1f\x8b":
        text = gzip.decompress(text)
    start = text.index(b'"traceEvents": [') + len(b'"traceEvents": [')
    end = text.rindex(b"\n  ]")
    head, body, tail = text[:start], text[start:end], text[end:]
    starts = [m.start() + 1 for m in _EVENT_START.finditer(body)]
    chunks = [body[a:b].rstrip().rstrip(b",") for a, b in zip(starts, [*starts[1:], len(body)], strict=True)]
    once: list[bytes] = []
    pieces = []
    maxima = {k: 0 for k, _ in _SLOTS}
    t0, t1 = math.inf, -math.inf
    for chunk in chunks:
        ev = json.loads(chunk)  # validates the split
        if "ts" in ev:
            t0 = min(t0, float(ev["ts"]))
            t1 = max(t1, float(ev["ts"]) + float(ev.get("dur", 0)))
        if _ONCE.search(chunk):
            once.append(chunk)
            continue
        found = sorted((m.start(1), m.end(1), kind) for kind, pat in _SLOTS for m in pat.finditer(chunk))
        lits, slots, pos = [], [], 0
        for a, b, kind in found:
            lits.append(chunk[pos:a])
            slots.append((kind, chunk[a:b]))
            pos = b
            if kind != "ts":
                maxima[kind] = max(maxima[kind], int(chunk[a:b]))
        lits.append(chunk[pos:])
        pieces.append((lits, slots))
    # Whole microseconds keep the shift exact in float64 (see the module docstring).
    span = math.ceil(t1 - t0) + 1000
    if t1 + span * 200 >= 2.0**43:
        raise SystemExit(f"{fixture}: timestamps too large to shift exactly")
    return Template(head, tail, once, pieces, span, maxima)


def _shifted(kind: str, text: bytes, k: int, t: Template) -> bytes:
    if kind == "ts":
        whole, dot, frac = text.partition(b".")
        return str(int(whole) + k * t.span_us).encode() + dot + frac
    return str(int(text) + k * (t.maxima[kind] + 1)).encode()


def write_trace(t: Template, copies: int, out: Path) -> int:
    """Write `copies` back-to-back copies of the template's events; returns the event count."""
    n = 0
    with open(out, "wb", buffering=1 << 22) as f:
        f.write(t.head)
        first = True
        for k in range(copies):
            parts: list[bytes] = []
            for lits, slots in t.pieces:
                parts.append(b"\n" if first else b",\n")
                first = False
                parts.append(lits[0])
                for (kind, text), lit in zip(slots, lits[1:], strict=True):
                    parts.append(_shifted(kind, text, k, t))
                    parts.append(lit)
            f.write(b"".join(parts))
            n += len(t.pieces)
        # Kineto writes process/thread names, the profiler's span and instants last: so do we, once.
        for chunk in t.once:
            f.write(b",\n" + chunk)
        n += len(t.once)
        f.write(t.tail)
    return n


def copies_for(t: Template, n_events: int) -> int:
    return max(1, round(n_events / t.events_per_copy))


# ---- contenders, each in its own process ----------------------------------------------------

ORJSON = "import orjson, sys; orjson.loads(open(sys.argv[1], 'rb').read())"
ORJSON_GZ = "import gzip, orjson, sys; orjson.loads(gzip.decompress(open(sys.argv[1], 'rb').read()))"
HTA = (
    "import os, sys; from hta.trace_analysis import TraceAnalysis; p = sys.argv[1]; "
    "TraceAnalysis(trace_files={0: p}, trace_dir=os.path.dirname(p), include_last_profiler_step=True)"
)


@dataclass
class Run:
    wall_s: float
    cpu_s: float  # user + sys of the child
    rss_mb: float  # peak resident set (MiB): ru_maxrss, or the sampled sum over its processes if larger
    ok: bool


# A child's ru_maxrss on Linux starts from its parent's high-water mark (fork, then exec keeps
# it), so each contender is started by this tiny launcher (python -S: a few MB), which reports
# the wall time, CPU time (the process and its children) and peak RSS of its own child from
# os.wait4, and the peak of the RSS summed over the child's process tree (traceparse's decoding
# workers included), sampled every 10 ms from /proc.
LAUNCHER = """
import json, os, sys, time
def tree_rss(pid):
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            pass
    return total
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.argv[1], sys.argv[1:])
peak = 0
while True:
    got, status, ru = os.wait4(pid, os.WNOHANG)
    if got:
        break
    peak = max(peak, tree_rss(pid))
    time.sleep(0.01)
wall = time.perf_counter() - t0
print(json.dumps([wall, os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime, ru.ru_maxrss, peak]))
"""


def run_child(argv: list[str], env: dict[str, str] | None = None, timeout: float | None = None) -> Run:
    """Time one contender in a fresh process: wall, user+sys CPU and its own peak RSS."""
    try:
        done = subprocess.run(
            [sys.executable, "-S", "-c", LAUNCHER, *argv],
            capture_output=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"  ! {' '.join(argv[:4])}... timed out", file=sys.stderr)
        return Run(math.inf, math.inf, math.nan, False)
    try:
        wall, code, cpu, maxrss_kb, tree = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        wall, code, cpu, maxrss_kb, tree = math.inf, -1, math.inf, math.nan, 0
    if code != 0:
        err = done.stderr.decode(errors="replace").strip()[-300:]
        print(f"  ! {' '.join(argv[:4])}... exited {code}: {err}", file=sys.stderr)
    # The larger of the two: the process's own high-water mark, and the sampled sum over its tree.
    return Run(wall, cpu, max(maxrss_kb / 1024, tree / 2**20), code == 0)


def contenders(path: Path, with_hta: bool) -> dict[str, list[str]]:
    py = sys.executable
    out = {
        "traceparse": [py, "-m", "traceparse", "analyze", "--format", "json", "--quiet", str(path)],
        "orjson": [py, "-c", ORJSON_GZ if path.suffix == ".gz" else ORJSON, str(path)],
    }
    if with_hta:
        out["hta"] = [py, "-c", HTA, str(path)]
    return out


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f", {kb / 2**20:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " / load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return f"{cpu}, {cores} cores{mem}; {platform.python_implementation()} {platform.python_version()}{load}"


def versions() -> str:
    out = []
    for mod in ("traceparse", "msgspec", "numpy", "orjson", "pandas", "hta"):
        try:
            m = __import__(mod)
            out.append(f"{mod} {getattr(m, '__version__', '?')}")
        except ImportError:
            out.append(f"{mod} -")
    return ", ".join(out)


def slope(xs: list[float], ys: list[float]) -> float:
    """Exponent b of y ~ x^b between the first and last point (1.0: linear)."""
    if len(xs) < 2 or min(ys) <= 0:
        return math.nan
    return math.log(ys[-1] / ys[0]) / math.log(xs[-1] / xs[0])


@dataclass
class Row:
    size: str
    events: int
    file: str
    json_mb: float
    runs: dict[str, Run]


def compile_bytecode() -> str:
    """Compile traceparse's modules to bytecode, as `pip install` does for an installed package
    (HTA's and every other library's were compiled so). An editable checkout under
    PYTHONDONTWRITEBYTECODE=1 (this sandbox sets it) would otherwise recompile each module from
    source in every timed run: ~0.07 s of a 2 s analyze."""
    import compileall

    import traceparse

    package = Path(traceparse.__file__).resolve().parent
    ok = compileall.compile_dir(str(package), quiet=1)
    return f"traceparse's modules compiled ({package})" if ok else "compiling traceparse's modules failed"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", type=Path, default=DEFAULT_FIXTURE, help="real trace to replicate")
    ap.add_argument("--sizes", nargs="+", default=["100k", "1M", "5M"], choices=list(SIZES))
    ap.add_argument("--ten-million", action="store_true", help="also 10M events (traceparse only)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per contender and size (interleaved; best kept)")
    ap.add_argument("--no-hta", action="store_true", help="skip HTA's loader")
    ap.add_argument("--hta-sizes", nargs="+", default=["100k", "1M"], choices=list(SIZES))
    ap.add_argument("--gz", action="store_true", help="also time a .json.gz of each size (all three read it)")
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()), help="where the big traces go")
    ap.add_argument("--keep", action="store_true", help="keep the generated traces")
    args = ap.parse_args()
    sizes = list(dict.fromkeys([*args.sizes, *(["10M"] if args.ten_million else [])]))
    with_hta = not args.no_hta
    if with_hta:
        try:
            import hta  # noqa: F401
        except ImportError:
            print("HTA not installed (pip install 'traceparse[hta]'): skipping it", file=sys.stderr)
            with_hta = False

    print(f"machine: {machine()}")
    print(f"versions: {versions()}")
    print(f"bytecode: {compile_bytecode()}")
    template = load_template(args.fixture)
    print(f"fixture: {args.fixture.name} ({template.events_per_copy} events per copy)\n")
    workdir = Path(tempfile.mkdtemp(prefix="traceparse-bench-", dir=args.tmp))
    env = dict(os.environ, HTA_DISABLE_NS_ROUNDING="1")
    rows: list[Row] = []
    try:
        for size in sizes:
            path = workdir / f"bench-{size}.pt.trace.json"
            t0 = time.perf_counter()
            n_events = write_trace(template, copies_for(template, SIZES[size]), path)
            json_mb = path.stat().st_size / 1e6
            print(f"{size}: {n_events:,} events, {json_mb:,.0f} MB JSON (written in {time.perf_counter() - t0:.1f} s)")
            subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=False)  # warm the page cache
            files = [path]
            if args.gz:
                gz = path.with_suffix(".json.gz")
                with open(path, "rb") as fin, gzip.open(gz, "wb", compresslevel=6) as fout:
                    shutil.copyfileobj(fin, fout, 1 << 22)
                files.append(gz)
            for f in files:
                todo = contenders(f, with_hta and size in args.hta_sizes)
                if size == "10M":
                    todo = {k: v for k, v in todo.items() if k == "traceparse"}
                best: dict[str, Run] = {}
                for _ in range(max(1, args.repeat if size != "10M" else 1)):
                    for name, argv in todo.items():
                        r = run_child(argv, env, timeout=3600)
                        if name not in best or (r.ok and r.wall_s < best[name].wall_s):
                            best[name] = r
                    todo.pop("hta", None)  # one HTA run is plenty: it takes minutes
                rows.append(Row(size, n_events, f.name, json_mb, best))
                print_row(rows[-1])
            if not args.keep:
                for f in files:
                    f.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print_summary(rows)


def print_row(row: Row) -> None:
    for name, r in row.runs.items():
        flag = "" if r.ok else "  (FAILED)"
        print(
            f"  {row.file:<28} {name:<11} wall {r.wall_s:8.2f} s  cpu {r.cpu_s:8.2f} s  "
            f"peak RSS {r.rss_mb:9,.0f} MB{flag}"
        )


def _cell(r: Run | None, fmt: str = "{:.2f}") -> str:
    return fmt.format(r.wall_s) if r is not None and r.ok else "-"


def print_summary(rows: list[Row]) -> None:
    print("\nsummary (best of the runs; ratios on wall time, CPU time in brackets)")
    head = (
        f"{'file':<28} {'events':>11} {'JSON MB':>8} {'traceparse s':>13} {'orjson s':>9} {'HTA s':>8} "
        f"{'tp/orjson':>15} {'HTA/tp':>8} {'tp RSS MB':>10} {'RSS/JSON':>9}"
    )
    print(head)
    print("-" * len(head))
    for row in rows:
        tp, oj, ht = row.runs.get("traceparse"), row.runs.get("orjson"), row.runs.get("hta")
        if tp is None:
            continue
        ratio = f"{tp.wall_s / oj.wall_s:.2f} ({tp.cpu_s / oj.cpu_s:.2f})" if oj is not None else "-"
        hta_x = f"{ht.wall_s / tp.wall_s:.0f}x" if ht is not None and ht.ok else "-"
        print(
            f"{row.file:<28} {row.events:>11,} {row.json_mb:>8,.0f} {_cell(tp):>13} {_cell(oj):>9} "
            f"{_cell(ht, '{:.1f}'):>8} {ratio:>15} {hta_x:>8} {tp.rss_mb:>10,.0f} {tp.rss_mb / row.json_mb:>9.2f}"
        )
    plain = [r for r in rows if r.file.endswith(".json")]
    if len(plain) < 2:
        return
    ev = [float(r.events) for r in plain]
    print("\ngrowth: exponent b of cost ~ events^b between sizes (1.0 is linear), then cost per event")
    for name in ("traceparse", "orjson"):
        if not all(name in r.runs for r in plain):
            continue
        rs = [r.runs[name] for r in plain]
        for i in range(len(rs) - 1):
            xs = ev[i : i + 2]
            print(
                f"  {name:<11} {plain[i].size:>4} → {plain[i + 1].size:<4} "
                f"wall b={slope(xs, [x.wall_s for x in rs[i : i + 2]]):.2f}  "
                f"cpu b={slope(xs, [x.cpu_s for x in rs[i : i + 2]]):.2f}  "
                f"RSS b={slope(xs, [x.rss_mb for x in rs[i : i + 2]]):.2f}"
            )
        per = ", ".join(
            f"{r.size} {x.cpu_s / r.events * 1e6:.2f} µs and {x.rss_mb * 1e6 / r.events:,.0f} B"
            for r, x in zip(plain, rs, strict=True)
        )
        marginal = (rs[-1].rss_mb - rs[0].rss_mb) * 1e6 / (ev[-1] - ev[0])
        print(f"  {name:<11} per event (CPU, peak RSS): {per}; marginal RSS {marginal:,.0f} B/event")


if __name__ == "__main__":
    main()
