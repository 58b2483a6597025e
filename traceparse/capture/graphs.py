"""`capture --cuda-graphs`: the forward (or each decode token) replayed from a CUDA graph, plus
one un-graphed reference pass recorded in the same trace.

A replay is one `cudaGraphLaunch`: its kernels run with no CPU op or module scope around them.
The reference pass runs the very callable that was captured, eagerly, with scopes on, inside a
"traceparse:reference" annotation in its own profiler step; analyze leaves that step out of
every per-step figure and matches each replay's kernel sequence to it (same kernels, same order)
to hand replayed kernels to modules, reporting the match rate.

Decode uses transformers' `StaticCache` (fixed shapes, the write position a device tensor), the
token and its position advanced inside the graph, so one captured token replays N times.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd.profiler import record_function

from traceparse.capture.model import BuiltModel
from traceparse.capture.options import CaptureOptions
from traceparse.capture.scopes import _Scope, scope_name
from traceparse.capture.workload import PHASE_PREFIX, make_inputs
from traceparse.errors import ExitCode, TraceparseError
from traceparse.index import REFERENCE_PASS

REFERENCE_SCOPE = REFERENCE_PASS  # analyze leaves the step holding it out


@dataclass
class GraphWorkload:
    step: Callable[[], None]  # what each profiled step runs (replays)
    reference_setup: Callable[[], None]  # state the reference needs (the prefill), outside its scope
    reference: Callable[[], None]  # the replayed work un-graphed, run once inside REFERENCE_SCOPE
    forward: Callable[[], None]  # timed as "uninstrumented forward": a replayed forward
    tokens_per_step: int
    info: dict[str, Any]


@contextlib.contextmanager
def capture_view() -> Iterator[None]:
    """transformers takes another path while a CUDA stream captures (it cannot read a tensor then:
    an explicit causal mask instead of none). Warm-up, compile and the reference pass must see
    that same path, or the compiled block recompiles inside the capture (which fails) and the
    reference runs other kernels than the graph replays."""
    try:
        from transformers.utils import import_utils
    except ImportError:
        yield
        return
    real = import_utils.is_cuda_stream_capturing
    import_utils.is_cuda_stream_capturing = lambda: True
    try:
        yield
    finally:
        import_utils.is_cuda_stream_capturing = real


def _capture(fn: Callable[[], None], before: Callable[[], None]) -> torch.cuda.CUDAGraph:
    """Warm up on a side stream (as torch.cuda.graph requires), reset state, capture one call."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with capture_view(), torch.cuda.stream(side):
        for _ in range(3):
            before()
            fn()
    torch.cuda.current_stream().wait_stream(side)
    before()
    graph = torch.cuda.CUDAGraph()
    try:
        with capture_view(), torch.cuda.graph(graph):
            fn()
    except RuntimeError as exc:  # a sync or a CPU read inside the forward: not capturable
        raise TraceparseError(
            f"--cuda-graphs: the model's forward cannot be captured in a CUDA graph ({str(exc).splitlines()[0][:200]})",
            ExitCode.RUNTIME,
        ) from None
    torch.cuda.synchronize()
    return graph


def graph_workload(
    built: BuiltModel, opts: CaptureOptions, warm: Callable[[list[Callable[[], None]]], None]
) -> GraphWorkload:
    """`warm(fns)`: called with the un-graphed callables before capture (compiles them)."""
    if built.device.type != "cuda":
        raise TraceparseError("--cuda-graphs needs a CUDA device", ExitCode.USAGE)
    model = built.model.eval()
    root = scope_name("", model)
    ids = make_inputs(built, opts)

    def replayed(graph: torch.cuda.CUDAGraph) -> Callable[[], None]:
        def run() -> None:
            # The root scope a hook would open: analyze finds the forward (and decode tokens) by it.
            with _Scope(root):
                graph.replay()

        return run

    if opts.mode == "forward":

        def forward() -> None:
            with torch.no_grad(), capture_view():
                model(input_ids=ids, use_cache=False)

        warm([forward])
        graph = _capture(forward, lambda: None)
        run = replayed(graph)
        info = {"what": "forward", "replays_per_step": 1}
        return GraphWorkload(run, lambda: None, forward, run, opts.batch_size * opts.seq_len, info)
    if opts.mode == "generate":
        return _decode_workload(built, opts, ids, replayed, warm)
    raise TraceparseError("--cuda-graphs works with --mode forward or generate", ExitCode.USAGE)


def _decode_workload(
    built: BuiltModel,
    opts: CaptureOptions,
    ids: torch.Tensor,
    replayed: Callable[[torch.cuda.CUDAGraph], Callable[[], None]],
    warm: Callable[[list[Callable[[], None]]], None],
) -> GraphWorkload:
    import transformers

    model, batch, prompt = built.model, opts.batch_size, opts.seq_len
    decodes = opts.new_tokens - 1  # the prefill makes the first new token
    try:
        cache = transformers.StaticCache(config=model.config, max_cache_len=prompt + decodes + 8)
    except Exception as exc:  # hybrid caches (Mamba layers) have no static form
        raise TraceparseError(
            f"--cuda-graphs --mode generate needs transformers' StaticCache for this model ({exc})", ExitCode.RUNTIME
        ) from None
    tok = torch.zeros((batch, 1), dtype=torch.long, device=built.device)
    pos = torch.zeros((1,), dtype=torch.long, device=built.device)
    prompt_positions = torch.arange(prompt, device=built.device)

    def rewind(length: int) -> None:
        # transformers 5's static layers keep their own write position (a device tensor advanced
        # in place by each update), not only cache_position: rewind it with ours.
        for layer in getattr(cache, "layers", []):
            written = getattr(layer, "cumulative_length", None)
            if isinstance(written, torch.Tensor):
                written.fill_(length)
            elif written is not None:
                layer.cumulative_length = length

    def prefill() -> None:
        rewind(0)
        with torch.no_grad():
            logits = model(input_ids=ids, past_key_values=cache, cache_position=prompt_positions, use_cache=True).logits
        tok.copy_(logits[:, -1:].argmax(-1))
        pos.fill_(prompt)

    def decode() -> None:
        with torch.no_grad(), capture_view():
            logits = model(
                input_ids=tok,
                past_key_values=cache,
                cache_position=pos,
                position_ids=pos.expand(batch, 1),
                use_cache=True,
            ).logits
        tok.copy_(logits[:, -1:].argmax(-1))
        pos.add_(1)

    def at_prompt() -> None:
        rewind(prompt)
        pos.fill_(prompt)

    warm([prefill, decode])
    prefill()
    graph = _capture(decode, at_prompt)
    one_token = replayed(graph)

    def step() -> None:
        with torch.no_grad(), record_function(PHASE_PREFIX + "generate"):
            prefill()
            for _ in range(decodes):
                one_token()

    info = {"what": "decode", "replays_per_step": decodes, "cache": "StaticCache"}
    return GraphWorkload(step, prefill, decode, prefill, batch * (prompt + decodes + 1), info)
