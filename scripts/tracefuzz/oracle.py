"""The oracle: every input gives a report that keeps its promises, or a one-line error."""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

from tracefuzz.cases import Case, build
from tracefuzz.mutators import REPORT_OWED

# ---- the oracle -----------------------------------------------------------------------------------


class PropertyViolation(AssertionError):
    """A report was produced but breaks a promise (invariant, NaN, unknown not null)."""


def _finite_everywhere(obj: Any, where: str = "$") -> None:
    if isinstance(obj, float) and not math.isfinite(obj):
        raise PropertyViolation(f"non-finite number at {where}")
    if isinstance(obj, dict):
        for k, v in obj.items():
            _finite_everywhere(v, f"{where}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _finite_everywhere(v, f"{where}[{i}]")


def check_path(path: str | os.PathLike[str], owed: bool = False) -> str:
    """Analyze `path` as the CLI does; return "report" or "rejected:<exit code>". Raises
    PropertyViolation when a report breaks a promise, and lets any crash propagate."""
    from traceparse.api import run_pipeline
    from traceparse.errors import TraceparseError
    from traceparse.render import render

    try:
        analysis = run_pipeline(path)
    except TraceparseError as exc:
        message = str(exc)
        if "\n" in message or not message:
            raise PropertyViolation(f"error message is not one line: {message!r}") from exc
        if owed:
            raise PropertyViolation(f"a report was owed, got: {message}") from exc
        return f"rejected:{int(exc.code)}"
    try:
        analysis.attribution.self_check()
    except AssertionError as exc:
        raise PropertyViolation(f"attribution invariant: {exc}") from exc
    report = analysis.report
    data = json.loads(render(report, "json"))  # allow_nan=False: a NaN raises ValueError here
    _finite_everywhere(data)
    for fmt in ("table", "markdown", "csv"):
        render(report, fmt)
    for frame in ("blocks_df", "module_types_df", "slowest_modules_df", "kernel_families_df", "phases_df"):
        getattr(report, frame)
    g = data["general"]
    if not analysis.flops.has_shapes:
        unknown = ("flops", "flops_elementwise", "flops_analytic", "effective_tflops", "kernel_tflops", "mfu")
        if any(g[k] is not None for k in unknown) or g["flop_coverage"] != 0:
            raise PropertyViolation(f"FLOPs unknown but not null: { {k: g[k] for k in unknown} }")
        if any(b["flops"] is not None or b["tflops"] is not None or b["mfu"] is not None for b in data["blocks"]):
            raise PropertyViolation("FLOPs unknown but a block has a FLOP value")
    if g["peak_tflops"] is None and g["mfu"] is not None:
        raise PropertyViolation("MFU without a peak")
    if report.attribution == "cpu" and g["gpu_busy_ms"] is not None:
        raise PropertyViolation("GPU busy time in a CPU-only trace")
    tol = 1e-6 * max(1.0, g["kernel_ms"])
    if g["kernel_ms"] < 0 or not (-tol <= g["unattributed_ms"] <= g["kernel_ms"] + tol):
        raise PropertyViolation(f"unattributed {g['unattributed_ms']} outside [0, kernel {g['kernel_ms']}]")
    return "report"


def report_owed(case: Case) -> bool:
    """Nothing structural was broken: the input must give a report, not an error."""
    intact = case.byte_mutation is None and case.form != "gz-damaged"
    return intact and all(m in REPORT_OWED for m, _ in case.mutations)


class HarnessError(Exception):
    """A mutator failed: a bug in this script, not in traceparse (counted apart)."""


def check_case(case: Case, workdir: str | os.PathLike[str]) -> str:
    try:
        data = build(case)
    except Exception as exc:
        raise HarnessError(f"building {case.describe()}: {type(exc).__name__}: {exc}") from exc
    suffix = ".json.gz" if case.form.startswith("gz") else ".json"
    fd, name = tempfile.mkstemp(suffix=suffix, dir=workdir)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return check_path(name, owed=report_owed(case))
    finally:
        os.unlink(name)
