"""`traceparse diff A B`: what changed between two runs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from traceparse.cli import DEBUG, app, fail, guarded, no_blas_threads
from traceparse.errors import ExitCode


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
    DEBUG["on"] = debug
    no_blas_threads()
    if fail_above is not None and fail_above < 0:
        fail("--fail-above must be 0 or more", int(ExitCode.USAGE))

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
