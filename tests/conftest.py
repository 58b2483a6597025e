"""Shared test fixtures: the real H200 traces under fixtures/h200 and a cached pipeline run."""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

from traceparse.api import Analysis, run_pipeline

ROOT = Path(__file__).resolve().parent.parent
H200 = ROOT / "fixtures" / "h200"

NEMOTRON_9B = H200 / "nemotron-nano-9b-v2-forward-seq215.pt.trace.json.gz"
NEMOTRON_8L = H200 / "nemotron-nano-9b-v2-8l-forward-seq215.pt.trace.json.gz"
NEMOTRON_8L_TRAIN = H200 / "nemotron-nano-9b-v2-8l-train-seq215.pt.trace.json.gz"
NEMOTRON_8L_GENERATE = H200 / "nemotron-nano-9b-v2-8l-generate-seq64.pt.trace.json.gz"
LLAMA_4L = H200 / "llama-3.1-8b-4l-forward-seq215.pt.trace.json.gz"
QWEN_TRAIN = H200 / "qwen3-0.6b-4l-train-seq215.pt.trace.json.gz"
QWEN_GENERATE = H200 / "qwen3-0.6b-4l-generate-seq64.pt.trace.json.gz"
USER_TRAIN = H200 / "user-train.pt.trace.json.gz"
USER_STACK = H200 / "user-forward-stack.pt.trace.json.gz"


# Headless Chromium with everything that phones home turned off (tests/test_html.py, tests/catapult.py).
HEADLESS_CHROMIUM = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


@cache
def analysis(path: Path, attention: str = "causal") -> Analysis:
    """Run the pipeline once per (fixture, convention) for the whole session."""
    return run_pipeline(path, attention)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def nemotron_9b() -> Analysis:
    return analysis(NEMOTRON_9B)


def load_fuzz_script() -> ModuleType:
    """scripts/fuzz.py as a module (its mutators and checks serve the tests too)."""
    name = "traceparse_fuzz_script"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "fuzz.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
