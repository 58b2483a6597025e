"""`traceparse capture`: profile a Hugging Face model into a Kineto trace."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from traceparse.cli import DEBUG, app, guarded, progress_printer, write_pictures
from traceparse.errors import TraceparseError


def _presets() -> str:
    from traceparse.capture.presets import PRESETS  # plain dicts: no torch

    return ", ".join(sorted(PRESETS))


class Mode(StrEnum):
    forward = "forward"
    train = "train"
    generate = "generate"


class Parallel(StrEnum):
    ddp = "ddp"
    fsdp = "fsdp"


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
    compile: Annotated[
        str | None, typer.Option("--compile", help="torch.compile mode: default, max-autotune or reduce-overhead")
    ] = None,
    compile_scope: Annotated[
        str, typer.Option(help="blocks: compile each block, scopes stay around it; model: the whole forward")
    ] = "blocks",
    cuda_graphs: Annotated[
        bool, typer.Option(help="replay the forward (generate: each decode token) from a CUDA graph")
    ] = False,
    report: Annotated[bool, typer.Option(help="print the analyze report of the capture")] = True,
    charts: Annotated[Path | None, typer.Option(help="then write the capture's PNG charts here")] = None,
    html: Annotated[Path | None, typer.Option(help="then write the capture's HTML report here")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")] = False,
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
    tp: Annotated[int | None, typer.Option(help="under torchrun: tensor parallel over N ranks (tp_plan auto)")] = None,
    parallel: Annotated[Parallel | None, typer.Option(help="under torchrun, --mode train: ddp or fsdp (FSDP2)")] = None,
) -> None:
    """Profile a Hugging Face model on this machine into a Kineto trace (.pt.trace.json.gz)."""
    DEBUG["on"] = debug

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
            compile=compile,
            compile_scope=compile_scope,
            cuda_graphs=cuda_graphs,
            tp=tp,
            parallel=parallel.value if parallel is not None else None,
        )
        return run_capture(opts, progress_printer(quiet))

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


def _print_report_or_warn(path: Path) -> None:
    try:
        from traceparse.api import analyze_path
        from traceparse.render import render

        typer.echo(render(analyze_path(path), "table"))
    except Exception as exc:
        typer.echo(f"traceparse: warning: the trace was saved, but analyzing it failed: {exc}", err=True)


def _pictures_or_warn(path: Path, charts: Path | None, html: Path | None, quiet: bool) -> None:
    try:
        from traceparse.api import run_pipeline

        write_pictures(run_pipeline(path), charts, html, "en", quiet)
    except Exception as exc:
        typer.echo(f"traceparse: warning: the trace was saved, but writing charts/HTML failed: {exc}", err=True)
