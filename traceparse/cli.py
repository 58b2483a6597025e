"""The command line: parse options, call the library, map errors to one line and an exit code.

No analysis happens here; each command is a few lines over the library.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from traceparse.errors import ExitCode, TraceparseError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Where a transformer's GPU time goes, from a torch.profiler trace.",
)


def _print_version(value: bool) -> None:
    if value:
        from traceparse import __version__

        typer.echo(f"traceparse {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit"),
    ] = None,
) -> None:
    """traceparse: capture a trace on a GPU box, analyze it anywhere."""


T = TypeVar("T")
_DEBUG = {"on": False}


def _debug() -> bool:
    """--debug on the command line, or TRACEPARSE_DEBUG in the environment."""
    return _DEBUG["on"] or bool(os.environ.get("TRACEPARSE_DEBUG"))


def _say(message: str) -> None:
    """One line on stderr, whatever the message holds."""
    typer.echo(f"traceparse: error: {' '.join(str(message).split())}", err=True)


def _fail(message: str, code: int) -> None:
    _say(message)
    raise typer.Exit(code)


def guarded(fn: Callable[[], T]) -> T:
    """Run fn; turn any failure into one line on stderr and a non-zero exit (traceback with --debug)."""
    swallowed = _catch_unraisable_interrupts()
    try:
        result = fn()
        if swallowed:
            raise KeyboardInterrupt
        return result
    except typer.Exit:
        raise
    except TraceparseError as exc:
        if _debug():
            traceback.print_exc()
        _fail(str(exc), int(exc.code))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except MemoryError:
        _fail("out of memory", int(ExitCode.RUNTIME))
    except Exception as exc:  # a bug: still one line, the traceback on request
        if _debug():
            traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)", 1)
    raise AssertionError("unreachable")


def _catch_unraisable_interrupts() -> list[bool]:
    """A Ctrl-C that lands inside a callback Python cannot raise from (a weakref or import-lock
    callback) is printed as "Exception ignored …" with a traceback, and the run goes on. Such an
    interrupt is recorded instead (the returned list gets an entry), and the run then stops as
    interrupted: one line, exit 130."""
    seen: list[bool] = []
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            seen.append(True)
            return
        previous(unraisable)

    sys.unraisablehook = hook
    return seen


def _progress(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda _msg: None
    start = time.perf_counter()
    return lambda msg: typer.echo(f"[{time.perf_counter() - start:7.1f}s] {msg}", err=True)


def _presets() -> str:
    from traceparse.capture.presets import PRESETS  # plain dicts: no torch

    return ", ".join(sorted(PRESETS))


class Mode(StrEnum):
    forward = "forward"
    train = "train"
    generate = "generate"


@app.command()
def capture(
    model: Annotated[str | None, typer.Argument(help="Hub id or local checkpoint dir")] = None,
    preset: Annotated[str | None, typer.Option(help=f"built-in model shape with random weights: {_presets()}")] = None,
    config: Annotated[Path | None, typer.Option(help="a transformers config.json (random weights)")] = None,
    random_weights: Annotated[bool, typer.Option(help="with a Hub id: config only, random weights")] = False,
    seq_len: Annotated[int, typer.Option(help="tokens per sequence")] = 215,
    batch_size: Annotated[int, typer.Option(help="sequences per step")] = 1,
    dtype: Annotated[str | None, typer.Option(help="bf16|fp16|fp32 (default bf16 on CUDA, fp32 on CPU)")] = None,
    device: Annotated[str | None, typer.Option(help="cuda, cuda:N or cpu (default cuda if available)")] = None,
    attn_impl: Annotated[str, typer.Option(help="transformers attention implementation")] = "sdpa",
    warmup: Annotated[int, typer.Option(help="profiler warm-up steps (not recorded)")] = 1,
    steps: Annotated[int, typer.Option(help="active (recorded) profiler steps")] = 3,
    mode: Annotated[Mode, typer.Option(help="forward, train (fwd+bwd+optimizer) or generate")] = Mode.forward,
    new_tokens: Annotated[int, typer.Option(help="tokens to generate per step in generate mode")] = 16,
    layers: Annotated[int | None, typer.Option(help="keep widths, cut to the first N blocks")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output directory")] = Path("traces"),
    name: Annotated[str | None, typer.Option(help="trace file name stem")] = None,
    timing_runs: Annotated[int, typer.Option(help="plain forwards timed before profiling")] = 7,
    with_stack: Annotated[bool, typer.Option(help="also record Python stacks (bigger traces)")] = False,
    scopes: Annotated[bool, typer.Option(help="wrap module calls in named scopes")] = True,
    report: Annotated[bool, typer.Option(help="print the analyze report of the capture")] = True,
    charts: Annotated[Path | None, typer.Option(help="then write the capture's PNG charts here")] = None,
    html: Annotated[Path | None, typer.Option(help="then write the capture's HTML report here")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")] = False,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Profile a Hugging Face model on this machine into a Kineto trace (.pt.trace.json.gz)."""
    _DEBUG["on"] = debug

    def go() -> Any:
        try:
            from traceparse.capture import CaptureOptions, run_capture
        except ImportError as exc:
            raise TraceparseError(
                f"capture needs torch and transformers: pip install 'traceparse[capture]' ({exc.name} missing)"
            ) from None
        opts = CaptureOptions(
            model=model,
            preset=preset,
            config=config,
            random_weights=random_weights,
            seq_len=seq_len,
            batch_size=batch_size,
            dtype=dtype,
            device=device,
            attn_impl=attn_impl,
            warmup=warmup,
            steps=steps,
            mode=mode.value,
            new_tokens=new_tokens,
            layers=layers,
            out=out,
            name=name,
            timing_runs=timing_runs,
            with_stack=with_stack,
            scopes=scopes,
        )
        return run_capture(opts, _progress(quiet))

    result = guarded(go)
    timing = result.metadata["timing"]
    walls = ", ".join(f"{w:.2f}" for w in result.step_wall_ms)
    typer.echo(
        f"saved {result.trace_path} ({result.trace_bytes / 1e6:.2f} MB) in {result.capture_s:.1f} s; "
        f"forward {timing['forward_ms_uninstrumented']:.2f} ms plain, {timing['forward_ms_scopes']:.2f} ms "
        f"with scopes; profiled step wall ms: {walls}",
        err=True,
    )
    if report:
        _print_report_or_warn(result.trace_path)
    if charts is not None or html is not None:
        _pictures_or_warn(result.trace_path, charts, html, quiet)


class Fmt(StrEnum):
    table = "table"
    markdown = "markdown"
    json = "json"
    csv = "csv"
    html = "html"


# -o's extension picks the format when --format is not given.
_BY_SUFFIX = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".html": "html"}
_BY_SUFFIX[".htm"] = "html"


def _infer_format(fmt: Fmt | None, output: Path | None) -> str:
    """An explicit --format wins; else -o's extension (report.json, .md, .csv, .html); else table."""
    if fmt is not None:
        return fmt.value
    if output is not None:
        return _BY_SUFFIX.get(output.suffix.lower(), "table")
    return "table"


class Lang(StrEnum):
    en = "en"
    ru = "ru"


class AttnConvention(StrEnum):
    causal = "causal"
    full = "full"


class AttnBackward(StrEnum):
    recompute = "2.5"
    fcm = "2"


def _no_blas_threads() -> None:
    """analyze/annotate never call BLAS, but importing numpy starts OpenBLAS's thread pool, one
    spinning thread per core: 2.2 s of CPU per run on a 16-core box (measured), in each worker
    process too. Only OpenBLAS's (torch's own threads, for capture, are left alone), only before
    numpy is first imported, and a value the user set wins."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@app.command()
def analyze(
    traces: Annotated[
        list[Path],
        typer.Argument(help="trace .json[.gz], a folder or a glob; several ranks' traces give the job report"),
    ],
    fmt: Annotated[
        Fmt | None, typer.Option("--format", "-f", help="output format (default: from -o's extension, else table)")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write here (atomically); .json/.md/.csv/.html pick -f")
    ] = None,
    top: Annotated[int, typer.Option(help="rows of the slowest-modules and top-kernels tables")] = 20,
    steps: Annotated[
        str | None, typer.Option(help="profiler steps to average over, a Python slice: 2: skips two warm-up steps")
    ] = None,
    lang: Annotated[Lang, typer.Option(help="headings language (ru: the seed report's)")] = Lang.en,
    attention_flops: Annotated[
        AttnConvention, typer.Option(help="causal: unmasked half only; full: all pairs (PaLM/FCM)")
    ] = AttnConvention.causal,
    attention_backward: Annotated[
        AttnBackward,
        typer.Option(help="attention backward FLOPs per forward FLOP: 2.5 (with the recomputed scores) or 2 (FCM)"),
    ] = AttnBackward.recompute,
    peak_tflops: Annotated[float | None, typer.Option(help="override the device peak for MFU")] = None,
    peak_tbps: Annotated[
        float | None, typer.Option(help="override the device memory bandwidth (TB/s) for the rooflines")
    ] = None,
    charts: Annotated[Path | None, typer.Option(help="also write PNG charts into this directory")] = None,
    html: Annotated[Path | None, typer.Option(help="also write a self-contained HTML report here")] = None,
    hta: Annotated[bool, typer.Option("--hta", help="add HTA's breakdowns (pip install 'traceparse\\[hta]')")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")] = False,
    cycle: Annotated[int | None, typer.Option(help="job: the profiling cycle per rank (default: the latest)")] = None,
    workers: Annotated[int | None, typer.Option(help="job: local processes analyzing ranks (default: cores)")] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="job: a Dask scheduler address to analyze ranks on (traceparse[dask])")
    ] = None,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Explain where a trace's GPU time goes: blocks, module types, modules, kernel families, FLOPs.
    Several rank traces of one job (files, a folder, a glob) give the job report instead; `-` reads
    one trace from stdin."""
    _DEBUG["on"] = debug
    _no_blas_threads()
    form = _infer_format(fmt, output)

    def go() -> str:
        if [str(p) for p in traces] == ["-"]:
            with _stdin_trace() as trace:
                return analyze_one(trace, "<stdin>")
        from traceparse.job.inputs import trace_files

        paths = trace_files(traces) if len(traces) > 1 or not traces[0].is_file() else traces
        if len(paths) > 1:
            return _job(paths, form, output, cycle, workers, scheduler, attention_flops.value)
        return analyze_one(traces[0] if traces[0].is_file() else paths[0], None)

    def analyze_one(trace: Path, source: str | None) -> str:
        from traceparse.api import run_pipeline
        from traceparse.progress import Progress

        if peak_tflops is not None and peak_tflops <= 0:
            raise TraceparseError("--peak-tflops must be positive")
        if peak_tbps is not None and peak_tbps <= 0:
            raise TraceparseError("--peak-tbps must be positive")
        if top < 1:
            raise TraceparseError("--top must be 1 or more")
        with Progress(enabled=not quiet) as progress:
            analysis = run_pipeline(
                trace,
                attention_flops.value,
                peak_tflops,
                progress,
                form if form != "html" else None,
                float(attention_backward.value),
                peak_tbps=peak_tbps,
                top=top,
                steps=steps,
                source=source,
            )
            report = analysis.report
            from traceparse.render import render  # imported by now (run_pipeline): kept off the start-up path

            if form == "html":
                from traceparse.render.html import render_html

                text = render_html(report, analysis, lang=lang.value)
            else:
                text = render(report, form, lang.value)
            if hta:
                from traceparse import hta as traceparse_hta

                progress("HTA", None)
                text = traceparse_hta.attach(text, form, traceparse_hta.analyze(trace))
        _write_pictures(analysis, charts, html, lang.value, quiet)
        if output is not None:
            from traceparse.atomic import write_text_atomic

            write_text_atomic(output, text)
        return text

    text = guarded(go)
    if output is None:
        typer.echo(text, nl=False)
    elif not quiet:
        typer.echo(f"wrote {output}", err=True)


@contextmanager
def _stdin_trace() -> Iterator[Path]:
    """`analyze -`: stdin into a temporary file (gzip or plain JSON, by its first bytes)."""
    import tempfile

    data = sys.stdin.buffer.read()
    if not data:
        raise TraceparseError(
            "-: empty stdin (pipe a trace in: cat trace.json.gz | traceparse analyze -)", ExitCode.UNREADABLE
        )
    suffix = ".json.gz" if data[:2] == b"\x1f\x8b" else ".json"
    with tempfile.TemporaryDirectory(prefix="traceparse-stdin-") as tmp:
        path = Path(tmp) / f"stdin{suffix}"
        path.write_bytes(data)
        yield path


def _print_report_or_warn(path: Path) -> None:
    try:
        from traceparse.api import analyze_path
        from traceparse.render import render

        typer.echo(render(analyze_path(path), "table"))
    except Exception as exc:
        typer.echo(f"traceparse: warning: the trace was saved, but analyzing it failed: {exc}", err=True)


def _job(
    paths: list[Path],
    fmt: str,
    output: Path | None,
    cycle: int | None,
    workers: int | None,
    scheduler: str | None,
    attention: str,
) -> str:
    from traceparse.job import analyze_job
    from traceparse.job.render import render_job

    if fmt not in ("table", "markdown", "json"):  # the job report has no CSV or HTML form
        raise TraceparseError(f"--format {fmt}: the job report is table, markdown or json")
    text = render_job(analyze_job(paths, cycle=cycle, workers=workers, scheduler=scheduler, attention=attention), fmt)
    if output is not None:
        from traceparse.atomic import write_text_atomic

        write_text_atomic(output, text)
    return text


def _write_pictures(analysis: Any, charts: Path | None, html: Path | None, lang: str, quiet: bool) -> None:
    """--charts DIR / --html FILE (analyze, capture)."""
    if charts is None and html is None:
        return
    from traceparse.render.html import write_pictures

    for path in write_pictures(analysis, charts, html, lang):
        if not quiet:
            typer.echo(f"wrote {path}", err=True)


def _pictures_or_warn(path: Path, charts: Path | None, html: Path | None, quiet: bool) -> None:
    try:
        from traceparse.api import run_pipeline

        _write_pictures(run_pipeline(path), charts, html, "en", quiet)
    except Exception as exc:
        typer.echo(f"traceparse: warning: the trace was saved, but writing charts/HTML failed: {exc}", err=True)


@app.command()
def annotate(
    trace: Annotated[Path, typer.Argument(help="trace .json or .json.gz (or a directory holding one)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="annotated trace: .json.gz or .json (atomically)")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no summary on stderr")] = False,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Add block/module tracks and TFLOP/s counters for ui.perfetto.dev; the original events stay as they are."""
    _DEBUG["on"] = debug
    _no_blas_threads()

    def go() -> Any:
        from traceparse.annotate import annotate_trace

        return annotate_trace(trace, output)

    summary = guarded(go)
    if not quiet:
        typer.echo(f"wrote {output}: {summary}", err=True)


class DiffFmt(StrEnum):
    table = "table"
    markdown = "markdown"
    json = "json"
    html = "html"


@app.command()
def diff(
    a: Annotated[
        Path, typer.Argument(help="run A (before): a trace, a saved report JSON, or a folder holding one trace")
    ],
    b: Annotated[Path, typer.Argument(help="run B (after): the same kinds")],
    fmt: Annotated[DiffFmt, typer.Option("--format", "-f", help="output format")] = DiffFmt.table,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here (atomically)")] = None,
    html: Annotated[Path | None, typer.Option(help="also write the HTML page (with the per-block chart) here")] = None,
    fail_above: Annotated[
        float | None,
        typer.Option(help="exit 8 when B's time is more than PCT % above A's and beyond noise (CI gate)"),
    ] = None,
    min_pct: Annotated[float, typer.Option(help="noise floor: changes under PCT % of a row's time are noise")] = 2.0,
    min_ms: Annotated[float, typer.Option(help="noise floor: changes under this many ms per step are noise")] = 0.005,
    top: Annotated[int, typer.Option(help="rows shown per table (table/markdown/html; JSON has all)")] = 15,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")] = False,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """What got faster or slower from A to B: per block, module, module type, kernel family, operator, kernel."""
    _DEBUG["on"] = debug
    _no_blas_threads()
    if fail_above is not None and fail_above < 0:
        _fail("--fail-above must be 0 or more", int(ExitCode.USAGE))

    def go() -> tuple[str, bool]:
        from traceparse.diff import diff_paths
        from traceparse.diff.render import render_diff
        from traceparse.progress import Progress

        with Progress(enabled=not quiet) as progress:
            result = diff_paths(a, b, min_pct, min_ms, top, progress)
        text = render_diff(result, fmt.value, top)
        from traceparse.atomic import write_text_atomic

        if html is not None:
            write_text_atomic(html, render_diff(result, "html", top))
        if output is not None:
            write_text_atomic(output, text)
        return text, fail_above is not None and result.failed(fail_above)

    text, failed = guarded(go)
    if output is None:
        typer.echo(text, nl=False)
    elif not quiet:
        typer.echo(f"wrote {output}", err=True)
    if html is not None and not quiet:
        typer.echo(f"wrote {html}", err=True)
    if failed:
        from traceparse.diff import EXIT_REGRESSION

        typer.echo(f"traceparse: B is more than {fail_above:g} % slower than A (beyond noise)", err=True)
        raise typer.Exit(EXIT_REGRESSION)


def _click_exceptions() -> tuple[tuple[type[Exception], ...], ...]:
    """click's NoArgsIsHelpError, ClickException and Abort: from click, and from the copy of
    click that newer typer versions vendor (typer._click)."""
    import importlib

    mods = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            continue
    return tuple(
        tuple(getattr(m, cls) for m in mods if hasattr(m, cls))
        for cls in ("NoArgsIsHelpError", "ClickException", "Abort")
    )


def main() -> None:
    """The console script. Usage errors are one line too (click would draw a box around them),
    and whatever escapes a command (a failing print) is one line, never a traceback."""
    no_args, usage, abort = _click_exceptions()
    try:
        code = app(prog_name="traceparse", standalone_mode=False)
    except no_args as exc:  # a bare `traceparse`: the help (typer's rich help is already printed)
        if exc.format_message().strip():  # type: ignore[attr-defined]
            exc.show()  # type: ignore[attr-defined]
        code = int(ExitCode.USAGE)
    except usage as exc:  # bad option or value, missing argument, unknown command
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        _say(f"{exc.format_message()}{hint}")  # type: ignore[attr-defined]
        code = int(getattr(exc, "exit_code", ExitCode.USAGE))
    except abort:
        _say("interrupted")
        code = 130
    except Exception as exc:  # escaped guarded(): still one line, the traceback on request
        if _debug():
            traceback.print_exc()
        _say(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)")
        code = int(ExitCode.INTERNAL)
    sys.exit(code if isinstance(code, int) else 0)
