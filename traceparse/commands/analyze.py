"""`traceparse analyze`: the report of a trace, or the job report of several ranks' traces."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from traceparse.cli import DEBUG, app, guarded, no_blas_threads, write_pictures
from traceparse.errors import ExitCode, TraceparseError


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
    DEBUG["on"] = debug
    no_blas_threads()
    form = _infer_format(fmt, output)

    def go() -> str:
        if [str(p) for p in traces] == ["-"]:
            with _stdin_trace() as trace:
                return analyze_one(trace, "<stdin>")
        if len(traces) == 1 and traces[0].is_file():  # one trace: the job package (~20 ms of imports) is not needed
            return analyze_one(traces[0], None)
        from traceparse.job.inputs import trace_files

        paths = trace_files(traces)
        if len(paths) > 1:
            return _job(paths, form, output, cycle, workers, scheduler, attention_flops.value)
        return analyze_one(paths[0], None)

    def analyze_one(trace: Path, source: str | None) -> str:
        with _collector_paused():
            return _analyze_one(trace, source)

    def _analyze_one(trace: Path, source: str | None) -> str:
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
        write_pictures(analysis, charts, html, lang.value, quiet)
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
def _collector_paused() -> Iterator[None]:
    """One trace's analysis keeps its data in numpy columns, not in cycles of Python objects: the
    cyclic collector would only re-scan what the imports and the report create, to free nothing
    (~100 passes on a million-event run, most before the loader starts). Paused for the run; what
    is alive then goes to the oldest generation (freeze, unfreeze), so resuming does not scan it
    all at once, and a long-lived caller's full collections still see it."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if was:
            gc.enable()


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
