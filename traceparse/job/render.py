"""The job report as text, Markdown or JSON (`traceparse.job/1`)."""

from __future__ import annotations

import json
from typing import Any

from traceparse.job.report import BlockAcross, CollectiveAcross, JobReport

ISSUER_ROWS = 24  # the text table's slowest call sites; -f json has them all


def _num(v: float | None, fmt: str = "{:.3f}") -> str:
    return "unknown" if v is None else fmt.format(v)


def tables(r: JobReport) -> list[tuple[str, list[str], list[list[Any]]]]:
    dev = "cpu" if r.cpu_only else "gpu"
    out = [
        (
            "Ranks (ms per step)",
            ["rank", "step", dev, "busy", "idle %", "compute", "comm", "exposed comm", "TFLOP/s"],
            [
                [
                    x.rank,
                    _num(x.step_ms),
                    _num(x.kernel_ms),
                    _num(x.busy_ms),
                    _num(x.idle_pct, "{:.1f}"),
                    _num(x.compute_ms),
                    _num(x.comm_ms),
                    _num(x.exposed_comm_ms),
                    _num(x.effective_tflops, "{:.2f}"),
                ]
                for x in r.ranks
            ],
        )
    ]
    if r.blocks:
        headers = ["block", "kind", "median", "min", "max", "slowest rank", "skew %", "comm (median)"]
        out.append((f"Blocks across ranks ({dev.upper()} ms per step)", headers, [_block_row(b) for b in r.blocks]))
    if r.collectives:
        headers = ["collective", "ranks", "calls", "ms (median)", "ms (max)", "bus GB/s (median)", "bus GB/s (min)"]
        out.append(
            ("Collectives across ranks (per step)", [*headers, "group"], [_collective_row(c) for c in r.collectives])
        )
    if r.issuers:
        headers = ["issuing module", "phase", "collective", "ranks", "calls", "ms (median)", "ms (max)"]
        rows = [[i.module, i.phase, i.collective, i.ranks, f"{i.calls:g}", _num(i.ms_median), _num(i.ms_max)]
                for i in r.issuers[:ISSUER_ROWS]]  # fmt: skip
        out.append(("Communication by issuing module (per step)", headers, rows))
    return out


def _block_row(b: BlockAcross) -> list[Any]:
    return [
        b.index,
        b.kind,
        _num(b.median_ms),
        _num(b.min_ms),
        _num(b.max_ms),
        b.slowest_rank,
        _num(b.skew_pct, "{:.1f}"),
        _num(b.comm_ms_median),
    ]


def _collective_row(c: CollectiveAcross) -> list[Any]:
    return [
        c.collective,
        c.ranks,
        f"{c.calls:g}",
        _num(c.ms_median),
        _num(c.ms_max),
        _num(c.busbw_gbps_median, "{:.1f}"),
        _num(c.busbw_gbps_min, "{:.1f}"),
        c.group_size or "unknown",
    ]


def render_job(r: JobReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(r.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    from tabulate import tabulate

    markdown = fmt == "markdown"
    head = f"job: {len(r.ranks)} rank(s)" + (f" of {r.world_size}" if r.world_size else "")
    head += f" · {r.model or 'model unknown'} · {r.device or 'device unknown'}"
    parts = [f"# {head}" if markdown else f"{head}\n{'=' * len(head)}", ""]
    for title, headers, rows in tables(r):
        parts.append(f"## {title}\n" if markdown else f"{title}\n{'-' * len(title)}\n")
        parts.append(
            tabulate(rows, headers=headers, tablefmt="github" if markdown else "simple", disable_numparse=True)
        )
        parts.append("")
    if r.straggler:
        parts.append(("**Straggler:** " if markdown else "Straggler: ") + r.straggler["verdict"])
        parts.append("")
    if len(r.issuers) > ISSUER_ROWS:
        parts.append(f"- {len(r.issuers) - ISSUER_ROWS} more issuing call sites in -f json.")
    for note in r.notes:
        parts.append(f"- {note}")
    return "\n".join(parts).rstrip() + "\n"
