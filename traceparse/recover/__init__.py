"""Stage 3b, recover: module calls the scopes could not record (compiled regions, graph replays).

Runs after `attribute` and before FLOPs: kernels of compiled regions go to the modules Inductor
generated them for (`compiled`), replayed graph kernels to the modules of their twins in the
reference pass (`replay`); both become calls nested under the eager call that ran them
(`synth`). Nothing changes for a trace without that metadata. The conservation invariant is
checked again on the result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from traceparse.attribute import Attribution
from traceparse.recover.compiled import find_sites, graphs_of
from traceparse.recover.replay import chain_to_root, match_replays
from traceparse.recover.synth import CallBuilder, chain_below, common_path


@dataclass(frozen=True)
class Fusion:
    """A compiled kernel computing parts of several modules: given to their common ancestor."""

    kernel: str
    modules: tuple[str, ...]  # relative to the compiled module
    owner: str  # the relative path it was given to ("" = the compiled module itself)


@dataclass(frozen=True)
class Recovery:
    """What recovery did, per GPU item (for the report's `recovered` and `fusions` sections)."""

    source: np.ndarray  # per item: 0 untouched, 1 compiled region, 2 graph replay
    matched: np.ndarray  # per item: given a module below its eager call
    fusion: np.ndarray  # per item: index into `fusions`, -1 if none
    fusions: tuple[Fusion, ...]
    compile_scope: str | None
    regions: int
    matched_regions: int
    reference_items: int
    twin: np.ndarray | None = None  # per item: its reference twin (graph replays), -1 if none
    # Per forest position: the compiled call site whose op it is (-1: none), and per site the
    # bytes Inductor estimated it moves (nan: none): the roofline of fused kernels.
    site_of_pos: np.ndarray | None = None
    site_bytes: np.ndarray | None = None


SOURCE_COMPILED, SOURCE_REPLAY = 1, 2


def _class_table(meta: dict[str, Any]) -> dict[str, str]:
    """Qualified name → class, from the capture's module table (its first row is the root,
    named "model" like a child that may be called "model" too: left out)."""
    rows = meta.get("modules")
    out: dict[str, str] = {}
    for row in rows[1:] if isinstance(rows, list) else []:
        if isinstance(row, dict) and isinstance(row.get("name"), str):
            out[row["name"]] = str(row.get("class", "?"))
    return out


def _owner(paths: list[str], container: str | None) -> str:
    """The module a site's kernel is given to: the common ancestor of its modules; but when the
    modules inside blocks all lie in one block, that block's share of the common ancestor. A
    kernel applying the rotary tables inside layer 3's attention, fused with computing them in
    the model, runs for layer 3 (model-scope compiles fuse such shared inputs into every layer);
    one fusing the end of layer 3 with the start of layer 4 stays with the model."""
    if container and len(paths) > 1:
        head = f"{container}."
        blocks = {p[len(head) :].split(".", 1)[0] for p in paths if p.startswith(head)}
        if len(blocks) == 1:
            return common_path([p for p in paths if p.startswith(head)])
    return common_path(paths)


def recover_modules(attr: Attribution, meta: dict[str, Any]) -> Attribution:
    graphs = graphs_of(meta)
    cg = meta.get("cuda_graphs")
    ref_scope = cg.get("reference_scope") if isinstance(cg, dict) else None
    if graphs is None and not ref_scope:
        return attr
    n_items = len(attr.items)
    source = np.zeros(n_items, np.int8)
    matched = np.zeros(n_items, bool)
    fusion = np.full(n_items, -1, np.int64)
    fusions: list[Fusion] = []
    class_of = _class_table(meta)
    regions = matched_regions = 0
    builder = CallBuilder(attr.calls)
    recovered = np.full(len(attr.index.forest), -1, np.int64)
    call = attr.items.call.copy()
    items = attr.items
    safe = np.where(items.anchor >= 0, items.anchor, 0)

    sites = find_sites(attr, graphs[0]) if graphs is not None else None
    container = meta.get("blocks_container") if isinstance(meta.get("blocks_container"), str) else None
    if sites is not None:
        regions, matched_regions = sites.regions, sites.matched_regions
        site_at = attr.index.forest.propagate(sites.site_of_pos, sites.site_of_pos >= 0)
        pos = np.flatnonzero(site_at >= 0)
        base = attr.call_of_pos(pos)
        keep = base >= 0
        pos, base = pos[keep], base[keep]
        pairs, inverse = np.unique(np.stack([base, site_at[pos]]), axis=1, return_inverse=True)
        fusion_of_site: dict[int, int] = {}
        leaf = np.empty(pairs.shape[1], np.int64)
        for j, (b, s) in enumerate(pairs.T.tolist()):
            rel = sorted(set(sites.modules[s]))
            if sites.names[s].startswith("aten::") and rel:
                # An extern op computes one FX node; the others in its origins are inputs whose
                # views or casts were folded into the call (the mask, the rotary tables).
                rel = [max(rel, key=lambda p: (p.count(".") + bool(p), p))]
            owner = _owner(rel, container)
            if len(rel) > 1 and s not in fusion_of_site:
                fusion_of_site[s] = len(fusions)
                fusions.append(Fusion(sites.names[s], tuple(rel), owner))
            prefix = "" if attr.calls.parent[b] < 0 else str(attr.calls.qual[b])
            full = f"{prefix}.{owner}" if prefix and owner else (owner or prefix)
            leaf[j] = builder.leaf(b, chain_below(prefix, full, class_of)) if owner else b
        recovered[pos] = leaf[inverse.ravel()]
        hit = (items.anchor >= 0) & (site_at[safe] >= 0) & (recovered[safe] >= 0)
        source[hit] = SOURCE_COMPILED
        call[hit] = recovered[safe[hit]]
        matched[hit] = call[hit] != attr.items.call[hit]
        fusion_of_row = np.full(len(sites.modules), -1, np.int64)
        fusion_of_row[list(fusion_of_site)] = list(fusion_of_site.values())
        fusion[hit] = fusion_of_row[site_at[safe[hit]]]

    ref_items = 0
    twin = None
    if ref_scope:
        # Reference twins carry the calls recovery gave them above (a compiled reference).
        interim = dataclasses.replace(attr, calls=builder.table(), items=dataclasses.replace(items, call=call))
        rm = match_replays(interim, str(ref_scope))
        if rm is not None:
            ref_items, twin = rm.reference_items, rm.twin
            source[rm.replayed] = SOURCE_REPLAY
            ext = interim.calls
            chains: dict[int, tuple[tuple[str, str], ...]] = {}  # per twin call: one walk up the tree
            for i in np.flatnonzero(rm.replayed & (rm.twin >= 0) & (call >= 0)).tolist():
                twin_call = int(call[rm.twin[i]])
                if twin_call not in chains:
                    chains[twin_call] = chain_to_root(ext, twin_call)
                chain = chains[twin_call]
                if chain:
                    call[i] = builder.leaf(int(call[i]), chain)
                    matched[i] = True
                fusion[i] = fusion[rm.twin[i]]

    out = dataclasses.replace(
        attr,
        calls=builder.table(),
        items=dataclasses.replace(items, call=call),
        recovered_call=recovered if sites is not None else None,
        recovery=Recovery(
            source,
            matched,
            fusion,
            tuple(fusions),
            graphs[1] if graphs is not None else None,
            regions,
            matched_regions,
            ref_items,
            twin,
            sites.site_of_pos if sites is not None else None,
            sites.bytes if sites is not None else None,
        ),
    )
    out.self_check()
    return out
