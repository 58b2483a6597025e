"""Kernels of compiled regions → the modules Inductor generated them for.

`capture --compile` stores, per generated graph, its call sites in launch order: the kernel (a
Triton kernel's name, or the extern ATen op) and the module paths of the FX nodes it computes,
relative to the compiled module. At run time Inductor wraps each graph call in a
"## Call CompiledFxGraph <key> ##" op, and each Triton launch in an op named after the kernel;
extern calls are ordinary ATen ops. So within one graph call the k-th op named N is the k-th
call site named N. A region is matched to the recorded graph that explains most of its ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from traceparse.attribute import Attribution

GRAPH_CALL_PREFIX = "## Call CompiledFxGraph"


def site_op_name(kernel: str) -> str:
    """A call site's kernel as the trace names the op that launches it."""
    if kernel.startswith("extern_kernels."):
        return "aten::" + kernel[len("extern_kernels.") :]
    if kernel.startswith("torch.ops.aten."):
        return "aten::" + kernel[len("torch.ops.aten.") :].split(".")[0]
    if kernel.startswith("aten."):
        return "aten::" + kernel[len("aten.") :].split(".")[0]
    return kernel


@dataclass(frozen=True)
class Graph:
    names: tuple[str, ...]  # per call site, the op name in the trace
    modules: tuple[tuple[str, ...], ...]  # per call site, the relative module paths it computes
    bytes: tuple[float, ...] = ()  # per call site, Inductor's estimate of the bytes it moves (nan: none)

    def occurrences(self) -> dict[tuple[str, int], int]:
        seen: dict[str, int] = {}
        out: dict[tuple[str, int], int] = {}
        for k, name in enumerate(self.names):
            n = seen.get(name, 0)
            seen[name] = n + 1
            out[(name, n)] = k
        return out


def graphs_of(meta: dict[str, Any]) -> tuple[list[Graph], str] | None:
    """The recorded graphs and the compile scope, or None without usable provenance."""
    comp = meta.get("compile")
    if not isinstance(comp, dict) or not isinstance(comp.get("graphs"), list):
        return None
    mods = comp.get("modules")
    if not isinstance(mods, list):
        return None
    paths = [str(m[0]) if isinstance(m, list) and m else "" for m in mods]
    out = []
    for g in comp["graphs"]:
        sites = g.get("sites") if isinstance(g, dict) else None
        if not isinstance(sites, list):
            continue
        names, modules = [], []
        est = g.get("kernel_bytes") if isinstance(g.get("kernel_bytes"), dict) else {}
        for site in sites:
            if not (isinstance(site, list) and len(site) == 2 and isinstance(site[1], list)):
                continue
            names.append(site_op_name(str(site[0])))
            modules.append(tuple(paths[i] for i in site[1] if isinstance(i, int) and 0 <= i < len(paths)))
        byts = tuple(float(est[n]) if isinstance(est.get(n), int | float) else float("nan") for n in names)
        out.append(Graph(tuple(names), tuple(modules), byts))
    return (out, str(comp.get("scope", ""))) if out else None


@dataclass(frozen=True)
class RegionSites:
    """Per forest position: the call site (row of `modules`) it runs under, -1 if none."""

    site_of_pos: np.ndarray
    modules: list[tuple[str, ...]]  # per site row: relative module paths
    names: list[str]  # per site row: the kernel/op name
    bytes: np.ndarray  # per site row: Inductor's byte estimate (nan: none, an extern op's come from shapes)
    regions: int  # graph calls in the trace
    matched_regions: int  # of which matched to a recorded graph


def find_sites(attr: Attribution, graphs: list[Graph]) -> RegionSites | None:
    ev, forest = attr.index.events, attr.index.forest
    call_ids = [i for i, n in enumerate(ev.names) if n.startswith(GRAPH_CALL_PREFIX)]
    if not call_ids or not len(forest):
        return None
    is_region = np.isin(ev.name[forest.rows], call_ids)
    par = forest.parent
    kids = np.flatnonzero((par >= 0) & is_region[np.maximum(par, 0)])
    kids = kids[np.lexsort((forest.start[kids], par[kids]))]
    kid_names = ev.name[forest.rows[kids]]
    bounds = np.flatnonzero(np.diff(par[kids])) + 1
    occ = [g.occurrences() for g in graphs]
    site_rows: dict[tuple[int, int], int] = {}
    modules: list[tuple[str, ...]] = []
    names: list[str] = []
    byts: list[float] = []
    site_of_pos = np.full(len(forest), -1, np.int64)
    cache: dict[tuple[int, ...], tuple[int, list[int]]] = {}
    matched = 0
    groups = np.split(np.arange(kids.size), bounds) if kids.size else []
    for members in groups:
        sig = tuple(int(x) for x in kid_names[members])
        if sig not in cache:
            cache[sig] = _match(sig, ev.names, occ, graphs)
        g, per_kid = cache[sig]
        if g < 0:
            continue
        matched += 1
        for j, k in zip(members.tolist(), per_kid, strict=True):
            if k < 0:
                continue
            row = site_rows.get((g, k))
            if row is None:
                row = site_rows[(g, k)] = len(modules)
                modules.append(graphs[g].modules[k])
                names.append(graphs[g].names[k])
                byts.append(graphs[g].bytes[k] if graphs[g].bytes else float("nan"))
            site_of_pos[kids[j]] = row
    return RegionSites(site_of_pos, modules, names, np.asarray(byts, np.float64), int(is_region.sum()), matched)


def _match(
    sig: tuple[int, ...], names: tuple[str, ...], occ: list[dict[tuple[str, int], int]], graphs: list[Graph]
) -> tuple[int, list[int]]:
    """(best graph, per op its site there or -1); -1 when no graph explains half the ops that
    launch work (allocations such as aten::empty are no call sites)."""
    best, best_sites, best_score = -1, [], (0, 0)
    for g, table in enumerate(occ):
        seen: dict[str, int] = {}
        sites = []
        for nid in sig:
            name = names[nid]
            n = seen.get(name, 0)
            seen[name] = n + 1
            sites.append(table.get((name, n), -1))
        hits = sum(s >= 0 for s in sites)
        score = (hits, -abs(len(graphs[g].names) - hits))
        if score > best_score:
            best, best_sites, best_score = g, sites, score
    if best < 0 or best_score[0] < 0.5 * len(graphs[best].names):
        return -1, []
    return best, best_sites
