"""Plain torch.profiler traces of real model shapes, written the way users write them.

    python scripts/plain_traces.py --out DIR [--cases a,b,...] [--tiny] [--tar FILE]

Each case builds a transformers model from a config (random weights, bf16, seeded), runs it under a
stock `torch.profiler.profile` and writes `DIR/<case>.pt.trace.json.gz` (with
`prof.export_chrome_trace`, or `tensorboard_trace_handler` where the case says so). Next to the
traces, `DIR/figures.json` holds figures measured independently of the profiler in the same
process: the uninstrumented time of one step (CUDA events, median of >= 10 runs, no profiler), the
FLOPs of one step by `torch.utils.flop_counter.FlopCounterMode` (split by op), the config, versions,
and a plain count of what the written trace holds.

This script does not import traceparse: its traces are "foreign" ones, as a user's own script
writes them. Each case runs in its own try/except, so one failure does not lose the others.
`--tiny` shrinks every width so the whole set runs on a CPU in a minute (for testing the script).

One file on purpose (it is over 400 lines): it is carried to the GPU machine and run there under
that machine's Python with nothing installed, each case a function of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import gzip
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler
from torch.utils.flop_counter import FlopCounterMode

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPE = torch.bfloat16
ACTIVITIES = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEV.type == "cuda" else [])
TINY = False
OUT = Path("traces")
CASE_SECONDS = 240


# ---------------------------------------------------------------- helpers


def sync() -> None:
    if DEV.type == "cuda":
        torch.cuda.synchronize()


def seed() -> None:
    torch.manual_seed(0)
    if DEV.type == "cuda":
        torch.cuda.manual_seed_all(0)


def time_ms(fn: Callable[[], Any], n: int = 10, warm: int = 2) -> dict[str, Any]:
    """Median wall time of fn on the device: CUDA events around each call, no profiler."""
    for _ in range(warm):
        fn()
    sync()
    times = []
    for _ in range(n):
        if DEV.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return {
        "median_ms": round(statistics.median(times), 4),
        "min_ms": round(min(times), 4),
        "max_ms": round(max(times), 4),
        "n": n,
        "method": "cuda events" if DEV.type == "cuda" else "perf_counter",
        "all_ms": [round(t, 4) for t in times],
    }


def flops_of(fn: Callable[[], Any], models: Any = None, note: str = "") -> dict[str, Any]:
    """FLOPs of one call of fn by FlopCounterMode.

    Transformers' models are counted with eager attention (`set_attn_implementation("eager")`, then
    back to sdpa): FlopCounterMode raises on GQA SDPA on CUDA and counts nothing for the CPU SDPA
    kernel. Eager attention counts Q@K^T and P@V in full (as FlopCounterMode's SDPA formula does,
    causal or not). The count with the profiled (sdpa) attention is kept as `total_sdpa`, or its error.
    """
    models = [m for m in (models if isinstance(models, (list, tuple)) else [models]) if m is not None]
    switchable = [m for m in models if hasattr(m, "set_attn_implementation")]
    result: dict[str, Any] = {"note": note} if note else {}

    def count() -> FlopCounterMode:
        with FlopCounterMode(display=False) as counter:
            fn()
        sync()
        return counter

    try:
        result["total_sdpa"] = int(count().get_total_flops())
    except Exception as exc:
        result["total_sdpa"] = None
        result["sdpa_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    try:
        for m in switchable:
            m.set_attn_implementation("eager")
        counter = count()
    except Exception as exc:
        return {**result, "total": None, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        for m in switchable:
            m.set_attn_implementation("sdpa")
    by_op = counter.get_flop_counts().get("Global", {})
    return {
        **result,
        "total": int(counter.get_total_flops()),
        "attn_implementation": "eager" if switchable else "as built",
        "by_op": {str(op): int(n) for op, n in sorted(by_op.items(), key=lambda kv: -kv[1])},
    }


def step_timer() -> tuple[Callable[[], None], Callable[[], None], list[float]]:
    """CUDA-event timing of each profiled iteration (the instrumented time, for comparison)."""
    pairs: list[tuple[Any, Any]] = []
    out: list[float] = []
    cur: dict[str, Any] = {}

    def begin() -> None:
        if DEV.type == "cuda":
            cur["e"] = torch.cuda.Event(enable_timing=True)
            cur["e"].record()
        else:
            cur["t"] = time.perf_counter()

    def end() -> None:
        if DEV.type == "cuda":
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            pairs.append((cur["e"], e))
            e.synchronize()
            out.append(round(cur["e"].elapsed_time(e), 4))
        else:
            out.append(round((time.perf_counter() - cur["t"]) * 1e3, 4))

    return begin, end, out


def summarize_trace(path: Path) -> dict[str, Any]:
    """Plain counts of what a written trace holds (independent of traceparse)."""
    with gzip.open(path, "rt") as fh:
        data = json.load(fh)
    events = [e for e in data.get("traceEvents", []) if isinstance(e, dict)]
    cats = Counter(e.get("cat") for e in events)
    kernels = [e for e in events if e.get("cat") == "kernel"]
    steps = sorted(
        (
            (e["name"], round(float(e.get("dur", 0)) / 1e3, 4))
            for e in events
            if str(e.get("name", "")).startswith("ProfilerStep#")
            and e.get("ph") == "X"
            and e.get("cat") in ("user_annotation", "cpu_op")
        ),
    )
    names = Counter(str(e.get("name", "")) for e in events)
    # busy time of each GPU stream: union of its kernels' intervals
    busy_us = 0.0
    by_stream: dict[Any, list[tuple[float, float]]] = {}
    for k in kernels:
        by_stream.setdefault((k.get("pid"), k.get("tid")), []).append(
            (float(k["ts"]), float(k["ts"]) + float(k.get("dur", 0)))
        )
    union_all: list[tuple[float, float]] = sorted(iv for ivs in by_stream.values() for iv in ivs)
    cur_s = cur_e = None
    for s, e in union_all:
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                busy_us += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        busy_us += cur_e - cur_s
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "events": len(events),
        "categories": dict(cats.most_common()),
        "profiler_steps": [{"name": n, "cpu_ms": d} for n, d in steps],
        "kernels": len(kernels),
        "kernel_sum_ms": round(sum(float(k.get("dur", 0)) for k in kernels) / 1e3, 4),
        "kernel_union_ms": round(busy_us / 1e3, 4),
        "kernel_union_ms_per_step": round(busy_us / 1e3 / len(steps), 4) if steps else None,
        "gpu_streams": len(by_stream),
        "cudaGraphLaunch": names.get("cudaGraphLaunch", 0),
        "nn_module_events": sum(n for name, n in names.items() if name.startswith("nn.Module:")),
        "python_function_events": cats.get("python_function", 0),
        "compiled_region_events": sum(n for name, n in names.items() if "Torch-Compiled Region" in name),
        "CompiledFunction_events": sum(n for name, n in names.items() if "CompiledFunction" in name),
        "triton_kernels": sum(1 for k in kernels if str(k.get("name", "")).startswith("triton_")),
        "top_level_keys": sorted(k for k in data if k != "traceEvents"),
    }


def build(config_cls: str, model_cls: str, attn: str | None = "sdpa", **cfg: Any) -> tuple[Any, Any]:
    """A transformers model from a config, random weights, bf16, built on the device."""
    config = getattr(transformers, config_cls)(**cfg)
    seed()
    with torch.device(DEV):
        kwargs: dict[str, Any] = {"dtype": DTYPE}
        if attn:
            kwargs["attn_implementation"] = attn
        model = getattr(transformers, model_cls)._from_config(config, **kwargs)
    model.to(DEV).eval()
    return model, config


def config_dict(config: Any) -> dict[str, Any]:
    out = {}
    for k, v in config.to_dict().items():
        try:
            json.dumps(v)
            out[k] = v
        except TypeError:
            out[k] = repr(v)
    return out


def export(prof: Any, case: str) -> Path:
    path = OUT / f"{case}.pt.trace.json.gz"
    prof.export_chrome_trace(str(path))
    return path


def profiled_loop(
    case: str, step: Callable[[], Any], iters: int, sched: Any, **prof_kw: Any
) -> tuple[Path, list[float]]:
    """The user's loop: profile(schedule=...) around `iters` iterations, prof.step() after each."""
    begin, end, ms = step_timer()
    with profile(activities=ACTIVITIES, schedule=sched, **prof_kw) as prof:
        for _ in range(iters):
            begin()
            step()
            end()
            prof.step()
    return export(prof, case), ms


def ids_of(vocab: int, batch: int, seq: int) -> torch.Tensor:
    seed()
    return torch.randint(0, vocab, (batch, seq), device=DEV)


# widths: real ones, or --tiny ones for a CPU test
def tiny_decoder(layers: int) -> dict[str, Any]:
    """Toy widths of every decoder config, for a CPU test of the script."""
    return dict(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
    )


def llama8b(layers: int) -> dict[str, Any]:
    if TINY:
        return tiny_decoder(layers)
    return dict(
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=False,
    )


def llama1b(layers: int) -> dict[str, Any]:  # Llama-3.2-1B widths
    if TINY:
        return tiny_decoder(layers)
    return dict(
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        max_position_embeddings=131072,
        rms_norm_eps=1e-5,
        rope_theta=500000.0,
        tie_word_embeddings=True,
    )


def qwen3_06b(layers: int) -> dict[str, Any]:
    if TINY:
        return dict(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=192,
            num_hidden_layers=layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
        )
    return dict(
        vocab_size=151936,
        hidden_size=1024,
        intermediate_size=3072,
        num_hidden_layers=layers,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=40960,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
    )


def S(real: int, tiny: int) -> int:
    return tiny if TINY else real


# ---------------------------------------------------------------- cases


def _llama8b_fwd(case: str, with_stack: bool) -> dict[str, Any]:
    model, config = build("LlamaConfig", "LlamaForCausalLM", **llama8b(2))
    batch, seq = 1, S(4096, 64)
    ids = ids_of(config.vocab_size, batch, seq)

    def step() -> None:
        with torch.no_grad():
            model(input_ids=ids)

    fig = {
        "config": config_dict(config),
        "batch": batch,
        "seq": seq,
        "mode": "forward, torch.no_grad()",
        "attn_implementation_profiled": "sdpa",
    }
    fig["uninstrumented"] = time_ms(step, n=10)
    fig["flops_per_step"] = flops_of(step, model)
    path, ms = profiled_loop(
        case, step, 4, schedule(wait=1, warmup=1, active=2), record_shapes=True, with_stack=with_stack
    )
    fig.update(
        profiled_steps=2,
        schedule="wait=1, warmup=1, active=2",
        record_shapes=True,
        with_stack=with_stack,
        instrumented_iter_ms=ms,
        trace=summarize_trace(path),
    )
    return fig


def case_llama8b_seq4096_fwd() -> dict[str, Any]:
    return _llama8b_fwd("llama8b-seq4096-fwd", with_stack=False)


def case_llama8b_seq4096_fwd_stack() -> dict[str, Any]:
    return _llama8b_fwd("llama8b-seq4096-fwd-stack", with_stack=True)


def case_qwen3_train_tbhandler() -> dict[str, Any]:
    case = "qwen3-train-tbhandler"
    model, config = build("Qwen3Config", "Qwen3ForCausalLM", **qwen3_06b(2))
    model.train()
    batch, seq = S(2, 1), S(1024, 64)
    ids = ids_of(config.vocab_size, batch, seq)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)  # default: foreach

    def step() -> None:
        optimizer.zero_grad()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()

    fig: dict[str, Any] = {
        "config": config_dict(config),
        "batch": batch,
        "seq": seq,
        "mode": "train: zero_grad, forward with labels (loss), backward, AdamW(foreach) step",
    }
    fig["uninstrumented"] = time_ms(step, n=10)

    def fwd_bwd() -> None:
        model(input_ids=ids, labels=ids).loss.backward()
        model.zero_grad(set_to_none=True)

    fig["flops_per_step"] = flops_of(
        fwd_bwd, model, note="forward + backward (the optimizer's elementwise ops count 0)"
    )
    tb_dir = OUT / "_tb"
    begin, end, ms = step_timer()
    with profile(
        activities=ACTIVITIES,
        schedule=schedule(wait=1, warmup=1, active=2, repeat=1),
        on_trace_ready=tensorboard_trace_handler(str(tb_dir), worker_name=case),
        record_shapes=True,
    ) as prof:
        for _ in range(5):
            begin()
            step()
            end()
            prof.step()
    written = sorted(tb_dir.glob("*.pt.trace.json*"))
    if len(written) != 1:
        raise RuntimeError(f"tensorboard_trace_handler wrote {[p.name for p in written]}")
    path = OUT / f"{case}.pt.trace.json.gz"
    src = written[0]
    if src.suffix == ".gz":
        src.replace(path)
    else:
        with open(src, "rb") as fi, gzip.open(path, "wb") as fo:
            fo.write(fi.read())
        src.unlink()
    tb_dir.rmdir()
    fig.update(
        profiled_steps=2,
        schedule="wait=1, warmup=1, active=2, repeat=1 (5 iterations)",
        handler_file_name=written[0].name,
        record_shapes=True,
        with_stack=False,
        instrumented_iter_ms=ms,
        trace=summarize_trace(path),
    )
    return fig


def case_llama_compile_fwd() -> dict[str, Any]:
    case = "llama-compile-fwd"
    model, config = build("LlamaConfig", "LlamaForCausalLM", **llama1b(4))
    batch, seq = 1, S(2048, 64)
    ids = ids_of(config.vocab_size, batch, seq)
    compiled = torch.compile(model)

    def step() -> None:
        with torch.no_grad():
            compiled(input_ids=ids)

    def eager_step() -> None:
        with torch.no_grad():
            model(input_ids=ids)

    fig: dict[str, Any] = {
        "config": config_dict(config),
        "batch": batch,
        "seq": seq,
        "mode": "forward of torch.compile(model) (default mode), torch.no_grad()",
    }
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    sync()
    fig["compile_warmup_s"] = round(time.perf_counter() - t0, 2)
    fig["uninstrumented"] = time_ms(step, n=10)
    fig["uninstrumented_eager"] = time_ms(eager_step, n=10)
    path, ms = profiled_loop(case, step, 3, schedule(wait=0, warmup=1, active=2, repeat=1), record_shapes=False)
    fig.update(
        profiled_steps=2,
        schedule="wait=0, warmup=1, active=2, repeat=1 (3 iterations)",
        record_shapes=False,
        with_stack=False,
        instrumented_iter_ms=ms,
        trace=summarize_trace(path),
    )
    # the same, without prof.step(): a trace with no ProfilerStep# at all
    with profile(activities=ACTIVITIES) as prof:
        for _ in range(2):
            step()
        sync()
    path2 = export(prof, case + "-nostep")
    fig["nostep_variant"] = {
        "file": path2.name,
        "note": "same compiled model, 2 iterations, no prof.step()",
        "trace": summarize_trace(path2),
    }
    fig["flops_per_step"] = flops_of(eager_step, model, note="counted on the eager (uncompiled) model")
    torch._dynamo.reset()
    return fig


def _generate(case: str, static: bool) -> dict[str, Any]:
    model, config = build("LlamaConfig", "LlamaForCausalLM", **llama8b(2))
    model.generation_config.eos_token_id = None  # random weights: never stop early
    model.generation_config.pad_token_id = 0
    batch, seq, new = 1, S(128, 16), S(16, 4)
    ids = ids_of(config.vocab_size, batch, seq)
    kw: dict[str, Any] = {"max_new_tokens": new, "do_sample": False}
    if static:
        kw["cache_implementation"] = "static"
    last: dict[str, Any] = {}

    def step() -> None:
        with torch.no_grad():
            last["out"] = model.generate(ids, **kw)

    fig: dict[str, Any] = {
        "config": config_dict(config),
        "batch": batch,
        "seq": seq,
        "max_new_tokens": new,
        "mode": f"model.generate(do_sample=False{', cache_implementation=static' if static else ''})",
    }
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    sync()
    fig["warmup_3_generate_s"] = round(time.perf_counter() - t0, 2)
    fig["generated_tokens"] = int(last["out"].shape[1] - seq)
    fig["uninstrumented"] = time_ms(step, n=10, warm=1)
    compiled_call = getattr(model, "_compiled_call", None)
    fig["transformers_compiled_decode"] = compiled_call is not None
    if compiled_call is not None:
        fig["compile_config"] = repr(getattr(model.generation_config, "compile_config", None))
    with contextlib.suppress(Exception):
        fig["dynamo_counters"] = {k: dict(v) for k, v in torch._dynamo.utils.counters.items() if v}

    def flop_step() -> None:
        with torch.no_grad():
            model.generate(ids, **kw, disable_compile=True) if static else model.generate(ids, **kw)

    path, ms = profiled_loop(case, step, 3, schedule(wait=0, warmup=1, active=2, repeat=1), record_shapes=True)
    fig.update(
        profiled_steps=2,
        schedule="wait=0, warmup=1, active=2, repeat=1 (3 generate calls, prof.step() after each)",
        record_shapes=True,
        with_stack=False,
        instrumented_iter_ms=ms,
        trace=summarize_trace(path),
    )
    fig["transformers_compiled_decode_after"] = getattr(model, "_compiled_call", None) is not None
    fig["flops_per_step"] = flops_of(flop_step, model, note="one generate call (prefill + decode), compile disabled")
    torch._dynamo.reset()
    return fig


def case_llama_generate_dynamic() -> dict[str, Any]:
    return _generate("llama-generate-dynamic", static=False)


def case_llama_generate_static() -> dict[str, Any]:
    return _generate("llama-generate-static", static=True)


def case_cudagraph_decode() -> dict[str, Any]:
    case = "cudagraph-decode"
    model, config = build("LlamaConfig", "LlamaForCausalLM", **llama1b(4))
    batch, prompt, replays = S(8, 2), S(128, 16), 16
    ids = ids_of(config.vocab_size, batch, prompt)
    fig: dict[str, Any] = {"config": config_dict(config), "batch": batch, "prompt": prompt, "replays_per_step": replays}
    errors: list[str] = []

    # A: HF model + StaticCache, one decode token per replay, the position advanced inside the graph
    def setup_static() -> tuple[Callable[[], Any], Callable[[], None], str]:
        cache = transformers.StaticCache(config=config, max_cache_len=prompt + replays + 16)
        with torch.no_grad():
            out = model(
                input_ids=ids, past_key_values=cache, cache_position=torch.arange(prompt, device=DEV), use_cache=True
            )
        tok = out.logits[:, -1:].argmax(-1)
        pos = torch.tensor([prompt], device=DEV)

        def decode() -> Any:
            with torch.no_grad():
                logits = model(
                    input_ids=tok,
                    past_key_values=cache,
                    cache_position=pos,
                    position_ids=pos.expand(batch, 1),
                    use_cache=True,
                ).logits
            tok.copy_(logits[:, -1:].argmax(-1))
            pos.add_(1)
            return logits

        def reset() -> None:
            pos.fill_(prompt)
            # transformers 5's StaticLayer keeps its own write position (cumulative_length, a device
            # tensor advanced in place by each update), not cache_position: rewind it too
            for layer in cache.layers:
                layer.cumulative_length.fill_(prompt)

        # the write position must come back to the prompt after a reset and advance 1 per decode
        for _ in range(2):
            decode()
        reset()
        decode()
        got = [int(layer.cumulative_length) for layer in cache.layers]
        if got != [prompt + 1] * len(got) or int(pos) != prompt + 1:
            raise RuntimeError(f"static cache position did not rewind: layers at {got}, pos {int(pos)}")
        reset()

        return decode, reset, "HF LlamaForCausalLM + StaticCache, position advanced in-graph"

    # B: no cache, one token per batch row (a decode-shaped forward)
    def setup_nocache() -> tuple[Callable[[], Any], Callable[[], None], str]:
        tok = ids[:, :1].clone()

        def decode() -> Any:
            with torch.no_grad():
                logits = model(input_ids=tok, use_cache=False).logits
            tok.copy_(logits[:, -1:].argmax(-1))
            return logits

        return decode, lambda: None, "HF LlamaForCausalLM, 1-token forward without KV cache"

    graph = None
    for setup in (setup_static, setup_nocache):
        try:
            decode, reset, how = setup()
            if DEV.type != "cuda":
                raise RuntimeError("torch.cuda.CUDAGraph needs CUDA")
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(3):
                    decode()
            torch.cuda.current_stream().wait_stream(side)
            reset()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                decode()
            sync()
            fig["capture"] = how
            break
        except Exception as exc:
            errors.append(f"{setup.__name__}: {type(exc).__name__}: {str(exc)[:300]}")
            graph = None
            sync() if DEV.type == "cuda" else None
    fig["capture_errors"] = errors
    if graph is None:
        # CPU test run (or both captures failed): profile the eager decode loop instead
        decode, reset, how = setup_nocache()
        fig["capture"] = "none: eager decode loop (" + how + ")"

        def step() -> None:
            reset()
            for _ in range(replays):
                decode()
    else:

        def step() -> None:
            reset()
            for _ in range(replays):
                graph.replay()

    fig["uninstrumented"] = time_ms(step, n=10)

    def eager_step() -> None:
        reset()
        for _ in range(replays):
            decode()

    fig["uninstrumented_eager_same_loop"] = time_ms(eager_step, n=10)
    path, ms = profiled_loop(case, step, 3, schedule(wait=0, warmup=1, active=2, repeat=1), record_shapes=True)
    fig.update(
        profiled_steps=2,
        schedule="wait=0, warmup=1, active=2, repeat=1 (3 iterations)",
        record_shapes=True,
        with_stack=False,
        instrumented_iter_ms=ms,
        trace=summarize_trace(path),
    )
    fig["flops_per_step"] = flops_of(eager_step, model, note=f"{replays} eager decode steps (what the graph replays)")
    return fig


def _encoder_stack(
    case: str,
    config_cls: str,
    model_cls: str,
    cfg: dict[str, Any],
    inputs: dict[str, torch.Tensor],
    extra: dict[str, Any],
) -> dict[str, Any]:
    model, config = build(config_cls, model_cls, **cfg)

    def step() -> None:
        with torch.no_grad():
            model(**inputs)

    fig: dict[str, Any] = {"config": config_dict(config), **extra, "mode": "forward, torch.no_grad()"}
    fig["uninstrumented"] = time_ms(step, n=10)
    fig["flops_per_step"] = flops_of(step, model)
    path, ms = profiled_loop(case, step, 4, schedule(wait=1, warmup=1, active=2), record_shapes=True, with_stack=True)
    fig.update(
        profiled_steps=2,
        schedule="wait=1, warmup=1, active=2",
        record_shapes=True,
        with_stack=True,
        instrumented_iter_ms=ms,
        trace=summarize_trace(path),
    )
    return fig


def vit_b16(layers: int) -> dict[str, Any]:
    if TINY:
        return dict(
            hidden_size=64,
            num_hidden_layers=layers,
            num_attention_heads=4,
            intermediate_size=256,
            image_size=32,
            patch_size=16,
        )
    return dict(
        hidden_size=768,
        num_hidden_layers=layers,
        num_attention_heads=12,
        intermediate_size=3072,
        image_size=224,
        patch_size=16,
    )


def case_vit_encoder_stack() -> dict[str, Any]:
    batch = S(32, 2)
    cfg = vit_b16(4)
    seed()
    pix = torch.randn(batch, 3, cfg["image_size"], cfg["image_size"], device=DEV, dtype=DTYPE)
    return _encoder_stack(
        "vit-encoder-stack",
        "ViTConfig",
        "ViTModel",
        cfg,
        {"pixel_values": pix},
        {"batch": batch, "image_size": cfg["image_size"]},
    )


def case_bert_encoder_stack() -> dict[str, Any]:
    batch, seq = S(16, 2), S(512, 32)
    cfg = dict(
        hidden_size=S(768, 64),
        num_hidden_layers=4,
        num_attention_heads=S(12, 4),
        intermediate_size=S(3072, 256),
        vocab_size=30522,
        max_position_embeddings=512,
    )
    ids = ids_of(cfg["vocab_size"], batch, seq)
    mask = torch.ones_like(ids)
    return _encoder_stack(
        "bert-encoder-stack",
        "BertConfig",
        "BertModel",
        cfg,
        {"input_ids": ids, "attention_mask": mask},
        {"batch": batch, "seq": seq},
    )


def case_qwen3moe_fwd_stack() -> dict[str, Any]:
    case = "qwen3moe-fwd-stack"
    if TINY:
        cfg = dict(
            vocab_size=512,
            hidden_size=64,
            intermediate_size=192,
            moe_intermediate_size=32,
            num_experts=8,
            num_experts_per_tok=2,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
        )
    else:  # Qwen3-30B-A3B widths, 16 experts, top-2
        cfg = dict(
            vocab_size=151936,
            hidden_size=2048,
            intermediate_size=6144,
            moe_intermediate_size=768,
            num_experts=16,
            num_experts_per_tok=2,
            num_hidden_layers=2,
            num_attention_heads=32,
            num_key_value_heads=4,
            head_dim=128,
            decoder_sparse_step=1,
            mlp_only_layers=[],
            norm_topk_prob=True,
            max_position_embeddings=40960,
            rope_theta=1000000.0,
            rms_norm_eps=1e-6,
        )
    model, config = build("Qwen3MoeConfig", "Qwen3MoeForCausalLM", **cfg)
    batch, seq = 1, S(2048, 64)
    ids = ids_of(config.vocab_size, batch, seq)

    def step() -> None:
        with torch.no_grad():
            model(input_ids=ids)

    fig: dict[str, Any] = {
        "config": config_dict(config),
        "batch": batch,
        "seq": seq,
        "mode": "forward, torch.no_grad()",
    }
    fig["experts_implementation"] = repr(getattr(config, "_experts_implementation", None))
    fig["uninstrumented"] = time_ms(step, n=10)
    fig["flops_per_step"] = flops_of(step, model)
    path, ms = profiled_loop(case, step, 4, schedule(wait=1, warmup=1, active=2), record_shapes=True, with_stack=True)
    fig.update(
        profiled_steps=2,
        schedule="wait=1, warmup=1, active=2",
        record_shapes=True,
        with_stack=True,
        instrumented_iter_ms=ms,
        trace=summarize_trace(path),
    )
    return fig


def case_multistack_stack() -> dict[str, Any]:
    case = "multistack-stack"
    clip_cfg = dict(
        vocab_size=49408,
        hidden_size=S(512, 64),
        intermediate_size=S(2048, 256),
        num_hidden_layers=12,
        num_attention_heads=S(8, 4),
        max_position_embeddings=77,
    )
    den_cfg = dict(
        hidden_size=S(1536, 64),
        num_hidden_layers=6,
        num_attention_heads=S(24, 4),
        intermediate_size=S(6144, 256),
        image_size=S(256, 32),
        patch_size=S(8, 8),
        num_channels=16,
    )
    clip, clip_config = build("CLIPTextConfig", "CLIPTextModel", **clip_cfg)
    den, den_config = build("ViTConfig", "ViTModel", **den_cfg)
    batch, text_seq, loops = 2, 77, 8
    tokens = ids_of(clip_cfg["vocab_size"], batch, text_seq)
    seed()
    latents = torch.randn(batch, 16, den_cfg["image_size"], den_cfg["image_size"], device=DEV, dtype=DTYPE)

    def step() -> None:
        with torch.no_grad():
            clip(input_ids=tokens)
            x = latents
            for _ in range(loops):
                h = den(pixel_values=x).last_hidden_state
                x = x - 0.01 * h.mean() * x  # a stand-in for the scheduler's update

    def clip_only() -> None:
        with torch.no_grad():
            clip(input_ids=tokens)

    def den_only() -> None:
        with torch.no_grad():
            den(pixel_values=latents)

    fig: dict[str, Any] = {
        "config": {"text_encoder": config_dict(clip_config), "denoiser": config_dict(den_config)},
        "batch": batch,
        "text_seq": text_seq,
        "denoiser_tokens": (den_cfg["image_size"] // den_cfg["patch_size"]) ** 2,
        "denoiser_loops": loops,
        "mode": "one step = CLIPTextModel (12 layers) once, then ViTModel (6 layers, width 1536) 8 times",
    }
    fig["uninstrumented"] = time_ms(step, n=10)
    fig["uninstrumented_text_encoder_once"] = time_ms(clip_only, n=10)
    fig["uninstrumented_denoiser_once"] = time_ms(den_only, n=10)
    fig["flops_per_step"] = flops_of(step, [clip, den])
    fig["flops_text_encoder_once"] = flops_of(clip_only, clip)
    fig["flops_denoiser_once"] = flops_of(den_only, den)
    path, ms = profiled_loop(case, step, 3, schedule(wait=1, warmup=1, active=1), record_shapes=True, with_stack=True)
    fig.update(
        profiled_steps=1,
        schedule="wait=1, warmup=1, active=1",
        record_shapes=True,
        with_stack=True,
        instrumented_iter_ms=ms,
        trace=summarize_trace(path),
    )
    return fig


def case_nemotronh_fwd() -> dict[str, Any]:
    case = "nemotronh-fwd"
    if TINY:
        cfg = dict(
            vocab_size=512,
            hidden_size=64,
            hybrid_override_pattern="M-M*",
            mamba_num_heads=8,
            mamba_head_dim=16,
            n_groups=2,
            ssm_state_size=16,
            chunk_size=16,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            intermediate_size=128,
            conv_kernel=4,
            expand=2,
        )
    else:  # NVIDIA-Nemotron-Nano-9B-v2 widths
        cfg = dict(
            vocab_size=131072,
            hidden_size=4480,
            hybrid_override_pattern="M-M*",
            mamba_num_heads=128,
            mamba_head_dim=80,
            n_groups=8,
            ssm_state_size=128,
            conv_kernel=4,
            chunk_size=128,
            expand=2,
            num_attention_heads=40,
            num_key_value_heads=8,
            head_dim=128,
            intermediate_size=15680,
            mlp_hidden_act="relu2",
            max_position_embeddings=131072,
            tie_word_embeddings=False,
            layer_norm_epsilon=1e-5,
        )
    model, config = build("NemotronHConfig", "NemotronHForCausalLM", **cfg)
    batch, seq = 1, S(1024, 64)
    ids = ids_of(config.vocab_size, batch, seq)

    def step() -> None:
        with torch.no_grad():
            model(input_ids=ids)

    fig: dict[str, Any] = {
        "config": config_dict(config),
        "batch": batch,
        "seq": seq,
        "mode": "forward, torch.no_grad()",
    }
    fig["layers_block_type"] = getattr(config, "layers_block_type", None)
    try:
        import mamba_ssm

        fig["mamba_ssm"] = getattr(mamba_ssm, "__version__", "present")
    except ImportError:
        fig["mamba_ssm"] = None
    fig["uninstrumented"] = time_ms(step, n=10)
    fig["flops_per_step"] = flops_of(step, model, note="the Mamba2 scan's einsum/matmul FLOPs are counted as aten ops")
    path, ms = profiled_loop(case, step, 4, schedule(wait=1, warmup=1, active=2), record_shapes=True)
    fig.update(
        profiled_steps=2,
        schedule="wait=1, warmup=1, active=2",
        record_shapes=True,
        with_stack=False,
        instrumented_iter_ms=ms,
        trace=summarize_trace(path),
    )
    return fig


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "llama8b-seq4096-fwd": case_llama8b_seq4096_fwd,
    "llama8b-seq4096-fwd-stack": case_llama8b_seq4096_fwd_stack,
    "qwen3-train-tbhandler": case_qwen3_train_tbhandler,
    "vit-encoder-stack": case_vit_encoder_stack,
    "bert-encoder-stack": case_bert_encoder_stack,
    "qwen3moe-fwd-stack": case_qwen3moe_fwd_stack,
    "multistack-stack": case_multistack_stack,
    "nemotronh-fwd": case_nemotronh_fwd,
    "llama-generate-dynamic": case_llama_generate_dynamic,
    "cudagraph-decode": case_cudagraph_decode,
    "llama-compile-fwd": case_llama_compile_fwd,
    "llama-generate-static": case_llama_generate_static,
}


# ---------------------------------------------------------------- main


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "device": str(DEV),
        "dtype": str(DTYPE),
        "tiny": TINY,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
    if DEV.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(
            gpu=props.name, gpu_sms=props.multi_processor_count, gpu_mem_gib=round(props.total_memory / 2**30, 1)
        )
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except Exception:
            env["driver"] = None
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    return env


def _alarm(signum: int, frame: Any) -> None:
    raise TimeoutError(f"case ran past {CASE_SECONDS} s")


def main() -> None:
    global TINY, OUT, CASE_SECONDS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("traces"))
    parser.add_argument("--cases", default="all", help="comma-separated case names, or 'all': " + ", ".join(CASES))
    parser.add_argument("--tiny", action="store_true", help="toy widths (to test the script on a CPU)")
    parser.add_argument("--tar", type=Path, default=None, help="re-pack --out into this .tgz after each case")
    parser.add_argument("--case-seconds", type=int, default=240)
    args = parser.parse_args()
    TINY, OUT, CASE_SECONDS = args.tiny, args.out, args.case_seconds
    OUT.mkdir(parents=True, exist_ok=True)
    names = list(CASES) if args.cases == "all" else [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    figures: dict[str, Any] = {"environment": environment(), "cases": {}}
    fig_path = OUT / "figures.json"
    if fig_path.exists():  # several runs into one --out (e.g. one process per risky case): keep the others
        before = json.loads(fig_path.read_text())
        figures["cases"] = before.get("cases", {})
        figures["runs"] = before.get("runs", [])
    figures.setdefault("runs", []).append(
        {"command": figures["environment"]["command"], "cases": names, "date_utc": figures["environment"]["date_utc"]}
    )
    signal.signal(signal.SIGALRM, _alarm)
    for name in names:
        t0 = time.perf_counter()
        print(f"=== {name}", flush=True)
        signal.alarm(CASE_SECONDS)
        try:
            fig = CASES[name]()
            fig["ok"] = True
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            traceback.print_exc()
            fig = {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[:2000]}"}
        finally:
            signal.alarm(0)
        fig["case_wall_s"] = round(time.perf_counter() - t0, 2)
        figures["cases"][name] = fig
        fig_path.write_text(json.dumps(figures, indent=1) + "\n")
        t = fig.get("trace", {})
        print(
            f"--- {name}: ok={fig['ok']} {fig['case_wall_s']} s  uninstrumented="
            f"{fig.get('uninstrumented', {}).get('median_ms')} ms  flops={fig.get('flops_per_step', {}).get('total')}  "
            f"trace={t.get('bytes')} B kernels={t.get('kernels')} steps={len(t.get('profiler_steps', []))}"
            + ("" if fig["ok"] else f"  ERROR {fig['error'][:300]}"),
            flush=True,
        )
        gc.collect()
        if DEV.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        if args.tar:
            with tarfile.open(args.tar, "w:gz") as tar:
                tar.add(OUT, arcname=OUT.name)
    print(f"\n{'case':28} {'ok':>5} {'median_ms':>12} {'flops':>14} {'bytes':>10} {'kernels':>8}")
    for name, fig in figures["cases"].items():
        t = fig.get("trace", {})
        med = fig.get("uninstrumented", {}).get("median_ms")
        flops = fig.get("flops_per_step", {}).get("total")
        print(f"{name:28} {fig['ok']!s:>5} {med!s:>12} {flops!s:>14} {t.get('bytes')!s:>10} {t.get('kernels')!s:>8}")


if __name__ == "__main__":
    main()
