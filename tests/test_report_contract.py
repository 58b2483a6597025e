"""The report contract, pinned: every fixture's `-f json` report (and its CSV, in English and
Russian) has the SHA-256 recorded in tests/data/report_digests.json.

A refactor must leave these byte-identical. A deliberate change of the contract (a new field, a
fixed number) regenerates the file in the same commit — `python scripts/pin_reports.py` — so the
diff names the fixtures whose reports moved; `--check` lists them without writing.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import analysis

ROOT = Path(__file__).resolve().parent.parent


@cache
def _pin() -> ModuleType:
    """scripts/pin_reports.py as a module: the test computes the digests exactly as it does."""
    name = "traceparse_pin_reports_script"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "pin_reports.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


PINNED: dict[str, dict[str, str]] = json.loads((ROOT / "tests" / "data" / "report_digests.json").read_text())


def test_every_fixture_is_pinned() -> None:
    assert sorted(PINNED) == _pin().fixtures(), "regenerate with scripts/pin_reports.py"


@pytest.mark.parametrize("rel", sorted(PINNED))
def test_report_is_byte_identical_to_the_pinned_one(rel: str) -> None:
    # conftest's cached pipeline: the fixtures other tests analyze are not analyzed twice.
    assert _pin().digests_of(rel, analysis) == PINNED[rel], (
        f"{rel}: the report changed; if deliberately, regenerate tests/data/report_digests.json "
        "(python scripts/pin_reports.py) in the same commit"
    )
