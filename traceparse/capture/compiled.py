"""`capture --compile`: torch.compile per block or for the whole model, with Inductor's own
record of which modules each generated kernel computes (its provenance), kept for analyze.

Why provenance and not guessing: under compile, module hooks are traced away, and one Triton
kernel may fuse work of several modules (an RMSNorm into the next Linear's input cast). Inductor
knows, for every kernel call site it generates, the post-grad FX nodes it came from, and every
node keeps the `nn_module_stack` Dynamo recorded. We compile through a thin backend that wraps
Inductor's inner compile, read that map right after each graph is generated, and store per graph
the ordered call sites with the module paths (relative to the compiled module) they computed.
`analyze` then walks each "## Call CompiledFxGraph" region of the trace and hands each launched
kernel to its site's module — or, where a site spans modules, to their common ancestor, listed
as a fusion across module boundaries.

Caches are off while capturing: a cache hit skips code generation, and with it the map.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from traceparse.errors import TraceparseError

# Post-grad nodes that only re-view memory: they carry the module of the tensor they view (the
# q_proj output viewed as heads inside attention), so they would blur a site's module set.
_VIEW_OPS = frozenset(
    {
        *("view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "unsqueeze", "squeeze"),
        *("slice", "select", "as_strided", "alias", "getitem"),
    }
)
_INDEX = re.compile(r"\[(\d+)\]")
_MODULES_KEY = re.compile(r"\._modules\[['\"]([^'\"]+)['\"]\]")
_GETATTR = re.compile(r"getattr\((.+), ['\"]([^'\"]+)['\"]\)")


def relative_path(dynamo_path: str) -> str:
    """Dynamo's module path ("L['self'].layers[0].mlp") → the dotted name under the compiled
    module ("layers.0.mlp"); "" is the compiled module itself."""
    path = dynamo_path
    while (m := _GETATTR.search(path)) is not None:
        path = path[: m.start()] + f"{m.group(1)}.{m.group(2)}" + path[m.end() :]
    path = _MODULES_KEY.sub(r".\1", path)
    path = _INDEX.sub(r".\1", path)
    for head in ("L['self']", 'L["self"]', "L['fn']", "self"):
        if path.startswith(head):
            path = path[len(head) :]
            break
    return path.lstrip(".")


def _node_modules(node: Any) -> tuple[str, str]:
    stack = node.meta.get("nn_module_stack") or node.meta.get("fwd_nn_module_stack")
    if not stack:
        return ("", "")
    path, cls = list(stack.values())[-1]
    return relative_path(str(path)), getattr(cls, "__name__", str(cls).rsplit(".", 1)[-1].rstrip("'>"))


def _op_name(node: Any) -> str:
    target = node.target
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


@dataclass
class ProvenanceRecorder:
    """Collects, per generated graph, its call sites in launch order: (kernel, module indices)."""

    mode: str
    modules: list[list[str]] = field(default_factory=list)  # [relative path, class]
    graphs: list[dict[str, Any]] = field(default_factory=list)
    compile_calls: int = 0
    _module_index: dict[tuple[str, str], int] = field(default_factory=dict)

    def _module(self, path: str, cls: str) -> int:
        key = (path, cls)
        if key not in self._module_index:
            self._module_index[key] = len(self.modules)
            self.modules.append([path, cls])
        return self._module_index[key]

    def backend(self, gm: Any, example_inputs: Any) -> Any:
        from torch._inductor import list_mode_options
        from torch._inductor.compile_fx import compile_fx

        self.compile_calls += 1
        patches = list_mode_options(self.mode)  # "default" → {}
        return compile_fx(gm, example_inputs, inner_compile=self._inner, config_patches=patches)

    def _inner(self, gm: Any, example_inputs: Any, **kwargs: Any) -> Any:
        import torch._inductor.debug as inductor_debug
        from torch._inductor.compile_fx import compile_fx_inner

        table = getattr(inductor_debug, "_inductor_triton_kernel_to_post_grad_node_info", None)
        if table is not None:
            table.clear()
        compiled = compile_fx_inner(gm, example_inputs, **kwargs)
        table = getattr(inductor_debug, "_inductor_triton_kernel_to_post_grad_node_info", None) or {}
        nodes = {n.name: n for n in gm.graph.nodes}
        sites = []
        for key, node_names in table.items():
            kernel, _, handle = str(key).rpartition(":")
            if not handle.isdigit():  # older Inductor: one entry per kernel, not per call site
                kernel = str(key)
            mods: list[int] = []
            for name in node_names:
                node = nodes.get(name)
                if node is None or node.op != "call_function" or _op_name(node) in _VIEW_OPS:
                    continue
                idx = self._module(*_node_modules(node))
                if idx not in mods:
                    mods.append(idx)
            sites.append([kernel, mods])
        source = getattr(compiled, "source_code", None) or ""
        self.graphs.append(
            {
                "key": getattr(compiled, "_fx_graph_cache_key", None),
                "backward": bool(kwargs.get("is_backward", False)),
                "inference": bool(kwargs.get("is_inference", False)),
                "sites": sites,
                # Inductor's own estimates per Triton kernel (benchmark_kernel on): the bytes it
                # moves (the roofline of fused kernels, which have no shapes in the trace) and,
                # for GEMM templates, the FLOPs.
                "kernel_bytes": _kernel_meta(source, "kernel_num_gb", 1e9),
                "kernel_flops": _kernel_meta(source, "kernel_flop", 1.0),
            }
        )
        return compiled


_KERNEL_NAME = re.compile(r"""['"]kernel_name['"]: ['"](\w+)['"]""")


def _kernel_meta(source: str, key: str, scale: float) -> dict[str, float]:
    """{Triton kernel: value} for an `inductor_meta` key in the generated module's kernel
    sources; each value belongs to the kernel named last before it."""
    values = re.compile(rf"""['"]{key}['"]: ([0-9.eE+-]+)""")
    names = [(m.start(), m.group(1)) for m in _KERNEL_NAME.finditer(source)]
    out: dict[str, float] = {}
    k = -1
    for m in values.finditer(source):
        while k + 1 < len(names) and names[k + 1][0] < m.start():
            k += 1
        if k >= 0:
            try:
                out[names[k][1]] = float(m.group(1)) * scale
            except ValueError:
                continue
    return out


@contextlib.contextmanager
def inductor_settings() -> Iterator[None]:
    """Caches off (a hit skips the code generation that fills the provenance map) and the
    per-call-site provenance map on, for the whole capture."""
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    # benchmark_kernel only adds Inductor's byte/FLOP estimates to each kernel's metadata (and a
    # benchmark harness to its source file); it changes no kernel.
    patches: dict[str, Any] = {"fx_graph_cache": False, "benchmark_kernel": True}
    trace_cfg = inductor_config.trace
    if hasattr(trace_cfg, "provenance_tracking_level"):
        patches["trace.provenance_tracking_level"] = 1
    elif hasattr(trace_cfg, "provenance_tracking"):
        patches["trace.provenance_tracking"] = True
    # Blocks that read their own index (a static cache's layer_idx) compile once per block and
    # shape: past Dynamo's default limit of 8 the rest would silently run eager.
    import torch._dynamo.config as dynamo_config

    known = getattr(dynamo_config, "_config", {})
    limits = {k: 1024 for k in ("recompile_limit", "accumulated_recompile_limit") if k in known}
    with (
        inductor_config.patch(patches),
        functorch_config.patch({"enable_autograd_cache": False}),
        dynamo_config.patch(limits),
    ):
        yield


def compiled_regions(model: nn.Module, scope: str, container: str | None) -> list[str]:
    """Qualified names of the modules whose forward gets compiled ("" is the root)."""
    if scope == "model":
        return [""]
    if container is None:
        raise TraceparseError("--compile-scope blocks: no list of repeated blocks found; use --compile-scope model")
    holder = model.get_submodule(container)
    return [f"{container}.{i}" for i in range(len(holder))]  # type: ignore[arg-type]


def apply_compile(model: nn.Module, regions: list[str], recorder: ProvenanceRecorder) -> None:
    """Replace each region's `forward` by its compiled form: the module's own hooks (its scope)
    still run eagerly in `__call__` around it, so block attribution stays exact."""
    for qual in regions:
        module = model.get_submodule(qual) if qual else model
        module.forward = torch.compile(module.forward, backend=recorder.backend)


def inside_regions(regions: list[str]) -> Callable[[str], bool]:
    """Whether a module (by qualified name) runs inside a compiled region: no scope hook there,
    since Dynamo would have to trace it."""
    if regions == [""]:
        return lambda qual: qual != ""
    prefixes = tuple(f"{r}." for r in regions)
    return lambda qual: qual.startswith(prefixes)


def warm_until_stable(fns: list[Callable[[], None]], device: torch.device, limit: int = 6) -> dict[str, Any]:
    """Call each function until a round compiles nothing new, so compile time and recompiles
    stay out of the profiled steps; returns what it took."""
    from torch._dynamo.utils import counters

    from traceparse.capture.timing import synchronize

    def compiled_frames() -> int:
        return int(sum(counters["stats"].values())) + int(sum(counters["frames"].values()))

    t0 = time.perf_counter()
    rounds, first_s = 0, None
    before = compiled_frames()
    for rounds in range(1, limit + 1):
        start = compiled_frames()
        for fn in fns:
            fn()
        synchronize(device)
        if first_s is None:
            first_s = time.perf_counter() - t0
        if compiled_frames() == start and rounds > 1:
            break
    return {
        "first_call_s": round(first_s or 0.0, 3),
        "warmup_s": round(time.perf_counter() - t0, 3),
        "warmup_rounds": rounds,
        "stable": compiled_frames() == start,
        "frame_counter_delta": compiled_frames() - before,
    }
