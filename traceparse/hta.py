"""HolisticTraceAnalysis (HTA) as a cross-check: `traceparse analyze --hta`.

HTA (pip install 'traceparse[hta]') reads the same trace with its own loader and adds three of
its analyses to the report: the temporal breakdown (idle / compute / non-compute GPU time), the
idle-time breakdown (host wait, kernel wait, other) and the kernel launch statistics (CPU launch
duration vs GPU duration, launch delay). It is not the core loader (README: "HTA, and why it is
not the loader"): it parses
the whole file into Python objects and DataFrames, which is 10-100x slower than traceparse's
streamed columns, and its numbers cover different spans (all kept steps, not a per-step mean).

HTA's traps, handled here:
  * `include_last_profiler_step=True`: by default HTA silently drops the last ProfilerStep;
  * `HTA_DISABLE_NS_ROUNDING=1`: by default it rounds timestamps to whole microseconds;
  * one file, `trace_files={0: path}`, `trace_dir` its folder: given only a folder HTA loads
    every trace in it as another rank;
  * the file name must end in .json or .gz (traceparse reads any name, and folders): anything
    else is linked under such a name in a temporary folder;
  * `visualize=False` everywhere (plotly would open figures), HTA's log lines muted;
  * pandas: these analyses work under pandas 2 and 3 (HTA 0.5.0's call-stack features, which
    traceparse does not use, need pandas < 3), so the [hta] extra pins nothing extra.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import numbers
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from traceparse.errors import TraceparseError, UsageError

INSTALL_HINT = "--hta needs HolisticTraceAnalysis: pip install 'traceparse[hta]'"
RUNTIME_CUTOFF_US = 50  # HTA's defaults for launch outliers
LAUNCH_DELAY_CUTOFF_US = 100


def _require_hta() -> Any:
    try:
        from hta.trace_analysis import TraceAnalysis
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return TraceAnalysis


@contextlib.contextmanager
def _hta_environment() -> Iterator[None]:
    """No ns rounding, HTA's warnings muted, for the duration of one analysis."""
    old_env = os.environ.get("HTA_DISABLE_NS_ROUNDING")
    os.environ["HTA_DISABLE_NS_ROUNDING"] = "1"
    loggers = [logging.getLogger(n) for n in ("hta", "hta.configs.config")]
    try:
        from hta.configs.config import logger as hta_logger

        loggers.append(hta_logger)
    except ImportError:
        pass
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # pandas deprecations raised inside HTA: not the user's concern
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if old_env is None:
            os.environ.pop("HTA_DISABLE_NS_ROUNDING", None)
        else:
            os.environ["HTA_DISABLE_NS_ROUNDING"] = old_env


@contextlib.contextmanager
def _hta_path(path: Path) -> Iterator[Path]:
    """The trace under a name HTA accepts (.json or .json.gz), alone in its folder as HTA sees it."""
    from traceparse.load import find_trace_in_dir

    if path.is_dir():
        path = find_trace_in_dir(path)
    if not path.is_file():
        raise TraceparseError(f"{path}: no such file")
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if path.name.endswith(".json.gz" if gz else ".json"):
        yield path.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="traceparse-hta-") as tmp:
        link = Path(tmp) / ("trace.json.gz" if gz else "trace.json")
        try:
            link.symlink_to(path.resolve())
        except OSError:
            import shutil

            shutil.copyfile(path, link)
        yield link


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _records(df: Any) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-safe dicts (numpy scalars → Python, NaN → None)."""
    out = []
    for row in df.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for k, v in row.items():
            if v is None or isinstance(v, str | bool):
                clean[str(k)] = v
            elif isinstance(v, numbers.Integral):
                clean[str(k)] = int(v)
            else:
                clean[str(k)] = _num(v)
        out.append(clean)
    return out


def _quantiles(series: Any) -> dict[str, float | None]:
    s = series.dropna()
    if not len(s):
        return {"mean": None, "p50": None, "p95": None, "max": None}
    return {
        "mean": _num(s.mean()),
        "p50": _num(s.quantile(0.5)),
        "p95": _num(s.quantile(0.95)),
        "max": _num(s.max()),
    }


def _launch_summary(df: Any) -> dict[str, Any]:
    """HTA's per-launch table (cpu_duration, gpu_duration, launch_delay in µs) summarized."""
    return {
        "launches": len(df),
        "cpu_duration_us": _quantiles(df["cpu_duration"]),
        "gpu_duration_us": _quantiles(df["gpu_duration"]),
        "launch_delay_us": _quantiles(df["launch_delay"]),
        "gpu_shorter_than_launch": int((df["gpu_duration"] < df["cpu_duration"]).sum()),
        "runtime_outliers": int((df["cpu_duration"] > RUNTIME_CUTOFF_US).sum()),
        "launch_delay_outliers": int((df["launch_delay"] > LAUNCH_DELAY_CUTOFF_US).sum()),
        "runtime_cutoff_us": RUNTIME_CUTOFF_US,
        "launch_delay_cutoff_us": LAUNCH_DELAY_CUTOFF_US,
    }


def load(path: str | os.PathLike[str]) -> Any:
    """HTA's TraceAnalysis of one trace file, with the traps above handled."""
    trace_analysis = _require_hta()
    with _hta_environment(), _hta_path(Path(path)) as p:
        try:
            return trace_analysis(trace_files={0: str(p)}, trace_dir=str(p.parent), include_last_profiler_step=True)
        except Exception as exc:  # HTA raises anything from KeyError to AssertionError on odd traces
            raise TraceparseError(f"HTA could not load {path}: {type(exc).__name__}: {exc}") from None


LOAD_FAILED = "HTA could not load this trace, so its cross-check is missing; traceparse's report is unaffected"


def analyze(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The "hta" section of the report: HTA's own numbers for the same trace. An optional
    cross-check never takes the report down: when HTA's loader fails (it raises on real traces,
    e.g. an int16 overflow of its own id columns on MI300 traces), the section says so instead."""
    try:
        ta = load(path)
    except UsageError:
        raise  # HTA is not installed: the user asked for something that cannot run
    except TraceparseError as exc:
        return {"version": _hta_version(), "error": f"{LOAD_FAILED}: {exc}", "note": LOAD_FAILED + "."}
    out: dict[str, Any] = {"version": _hta_version(), "steps": None}
    with _hta_environment():
        try:
            out["steps"] = len(ta.get_profiler_steps())
        except Exception:
            out["steps"] = None
        for key, fn in (
            ("temporal_breakdown", lambda: _records(ta.get_temporal_breakdown(visualize=False))),
            ("idle_time_breakdown", lambda: _records(ta.get_idle_time_breakdown(visualize=False)[0])),
            (
                "kernel_launch_stats",
                lambda: {
                    str(rank): _launch_summary(df)
                    for rank, df in ta.get_cuda_kernel_launch_stats(
                        runtime_cutoff=RUNTIME_CUTOFF_US, launch_delay_cutoff=LAUNCH_DELAY_CUTOFF_US, visualize=False
                    ).items()
                },
            ),
        ):
            try:
                out[key] = fn()
            except Exception as exc:  # one analysis failing leaves the others
                out[key] = {"error": f"{type(exc).__name__}: {exc}"}
    out["note"] = (
        "HTA's numbers, from its own loader, in µs: totals over the profiler steps HTA keeps, "
        "not traceparse's per-step means."
    )
    return out


def kernel_totals(path: str | os.PathLike[str]) -> dict[str, float]:
    """Total GPU time (µs) per kernel name, by HTA's get_gpu_kernel_breakdown (memcpy/memset too)."""
    ta = load(path)
    with _hta_environment():
        _, per_kernel = ta.get_gpu_kernel_breakdown(
            visualize=False, duration_ratio=1.0, num_kernels=1_000_000, include_memory_kernels=True
        )
    totals: dict[str, float] = {}
    for name, us in zip(per_kernel["name"], per_kernel["sum (us)"], strict=True):
        totals[str(name)] = totals.get(str(name), 0.0) + float(us)
    return totals


def _hta_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("HolisticTraceAnalysis")
    except Exception:
        return None


# ---- rendering: appended to whatever format the report was rendered in ---------------------------


def _tables(section: dict[str, Any]) -> list[tuple[str, str, list[str], list[list[Any]]]]:
    """(key, title, headers, rows) for the text and CSV forms."""
    out: list[tuple[str, str, list[str], list[list[Any]]]] = []
    temporal = section.get("temporal_breakdown")
    if isinstance(temporal, list) and temporal:
        headers = list(temporal[0])
        out.append(
            (
                "hta_temporal",
                "HTA: temporal breakdown (µs, all kept steps)",
                headers,
                [[r.get(h) for h in headers] for r in temporal],
            )
        )
    idle = section.get("idle_time_breakdown")
    if isinstance(idle, list) and idle:
        headers = list(idle[0])
        out.append(("hta_idle", "HTA: idle time breakdown (µs)", headers, [[r.get(h) for h in headers] for r in idle]))
    launch = section.get("kernel_launch_stats")
    if isinstance(launch, dict) and launch and "error" not in launch:
        rows = []
        for rank, s in launch.items():
            for what in ("cpu_duration_us", "gpu_duration_us", "launch_delay_us"):
                q = s[what]
                rows.append([rank, what, s["launches"], q["mean"], q["p50"], q["p95"], q["max"]])
        out.append(
            (
                "hta_launch",
                "HTA: kernel launch statistics",
                ["rank", "quantity", "launches", "mean", "p50", "p95", "max"],
                rows,
            )
        )
        out.append(
            (
                "hta_launch_outliers",
                "HTA: launch outliers",
                [
                    "rank",
                    "gpu_shorter_than_launch",
                    f"runtime > {RUNTIME_CUTOFF_US} µs",
                    f"delay > {LAUNCH_DELAY_CUTOFF_US} µs",
                ],
                [
                    [r, s["gpu_shorter_than_launch"], s["runtime_outliers"], s["launch_delay_outliers"]]
                    for r, s in launch.items()
                ],
            )
        )
    errors = [f"{k}: {v['error']}" for k, v in section.items() if isinstance(v, dict) and "error" in v]
    if errors:
        out.append(("hta_errors", "HTA: analyses that failed", ["analysis"], [[e] for e in errors]))
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1e6 else f"{v:,.0f}"
    return str(v)


def attach(text: str, fmt: str, section: dict[str, Any]) -> str:
    """The rendered report with the HTA section added: an "hta" key in JSON, tables otherwise."""
    if fmt == "json":
        doc = json.loads(text)
        doc["hta"] = section
        if "error" in section:
            doc["notes"] = [*doc.get("notes", []), section["error"]]
        return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    tables = _tables(section)
    if "error" in section:
        tables.append(("hta_error", "HTA", ["error"], [[section["error"]]]))
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for key, _title, headers, rows in tables:
            w.writerow(["section", *headers])
            for row in rows:
                w.writerow([key, *row])
            w.writerow([])
        return text + buf.getvalue()
    from tabulate import tabulate

    markdown = fmt == "markdown"
    parts = [text.rstrip("\n"), ""]
    for _key, title, headers, rows in tables:
        parts.append(f"## {title}\n" if markdown else f"{title}\n{'-' * len(title)}\n")
        cells = [[_fmt(v) for v in row] for row in rows]
        parts.append(
            tabulate(cells, headers=headers, tablefmt="github" if markdown else "simple", disable_numparse=True)
        )
        parts.append("")
    parts.append(f"- {section['note']}" if markdown else section["note"])
    return "\n".join(parts) + "\n"
