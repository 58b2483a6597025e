"""`traceparse annotate`: the trace with block and module tracks for Perfetto."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from traceparse.cli import DEBUG, app, guarded, no_blas_threads


@app.command()
def annotate(
    trace: Annotated[Path, typer.Argument(help="trace .json or .json.gz (or a directory holding one)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="annotated trace: .json.gz or .json (atomically)")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no summary on stderr")] = False,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
) -> None:
    """Add block/module tracks and TFLOP/s counters for ui.perfetto.dev; the original events stay as they are."""
    DEBUG["on"] = debug
    no_blas_threads()

    def go() -> Any:
        from traceparse.annotate import annotate_trace

        return annotate_trace(trace, output)

    summary = guarded(go)
    if not quiet:
        typer.echo(f"wrote {output}: {summary}", err=True)
