"""The command line: parse options, call the library, map errors to one line and an exit code.

No analysis happens here; each command is a few lines over the library.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
import traceback
from collections.abc import Callable
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
DEBUG = {"on": False}


def debug_on() -> bool:
    """--debug on the command line, or TRACEPARSE_DEBUG in the environment."""
    return DEBUG["on"] or bool(os.environ.get("TRACEPARSE_DEBUG"))


def say(message: str) -> None:
    """One line on stderr, whatever the message holds."""
    typer.echo(f"traceparse: error: {' '.join(str(message).split())}", err=True)


def fail(message: str, code: int) -> None:
    say(message)
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
        if debug_on():
            traceback.print_exc()
        fail(str(exc), int(exc.code))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except MemoryError:
        fail("out of memory", int(ExitCode.RUNTIME))
    except Exception as exc:  # a bug: still one line, the traceback on request
        if debug_on():
            traceback.print_exc()
        fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)", 1)
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


def progress_printer(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda _msg: None
    start = time.perf_counter()
    return lambda msg: typer.echo(f"[{time.perf_counter() - start:7.1f}s] {msg}", err=True)


def no_blas_threads() -> None:
    """analyze/annotate never call BLAS, but importing numpy starts OpenBLAS's thread pool, one
    spinning thread per core: 2.2 s of CPU per run on a 16-core box (measured), in each worker
    process too. Only OpenBLAS's (torch's own threads, for capture, are left alone), only before
    numpy is first imported, and a value the user set wins."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def write_pictures(analysis: Any, charts: Path | None, html: Path | None, lang: str, quiet: bool) -> None:
    """--charts DIR / --html FILE (analyze, capture)."""
    if charts is None and html is None:
        return
    from traceparse.render.html import write_pictures

    for path in write_pictures(analysis, charts, html, lang):
        if not quiet:
            typer.echo(f"wrote {path}", err=True)


def _click_exceptions() -> tuple[tuple[type[Exception], ...], ...]:
    """click's NoArgsIsHelpError, ClickException and Abort: from click, and from the copy of
    click that newer typer versions vendor (typer._click). click itself only when something has
    imported it (a typer that uses it has): nothing else could raise its exceptions, and importing
    it would cost ~10 ms before every command."""
    import importlib

    mods = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        if name == "click.exceptions" and "click" not in sys.modules:
            continue
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
        say(f"{exc.format_message()}{hint}")  # type: ignore[attr-defined]
        code = int(getattr(exc, "exit_code", ExitCode.USAGE))
    except abort:
        say("interrupted")
        code = 130
    except Exception as exc:  # escaped guarded(): still one line, the traceback on request
        if debug_on():
            traceback.print_exc()
        say(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)")
        code = int(ExitCode.INTERNAL)
    # What is still alive is the OS's to free: frozen, it is spared the interpreter's last
    # collections over it at exit (~25 ms after a million-event report).
    gc.freeze()
    if code == 130:
        # Interrupted: the one line is out. Under `python -m`, an interrupt that Python saw (and
        # we handled) can still make the interpreter end the process by SIGINT at exit (exit
        # status -2, seen ~1 run in 4 when Ctrl-C lands ~0.2 s in); leave with 130 directly.
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to flush
                stream.flush()
        os._exit(130)
    sys.exit(code if isinstance(code, int) else 0)


# The commands register themselves on `app` (after it and the helpers above exist).
from traceparse.commands import analyze, annotate, capture, diff  # noqa: E402, F401
