"""Pin the report contract: SHA-256 of every fixture's report, as `traceparse analyze` prints it.

    python scripts/pin_reports.py          # rewrite tests/data/report_digests.json
    python scripts/pin_reports.py --check  # compare, list what differs (exit 1 if anything does)

The digests cover `-f json` (the contract, `Report.to_dict`) and `-f csv` in English and Russian
(every section's declared columns and cells; the csv module is the standard library's, so the
digest does not move with a table-drawing library's version). tests/test_report_contract.py
recomputes them. A deliberate change of the contract regenerates the file in the same commit, so
the diff shows which fixtures' reports moved.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIGESTS = ROOT / "tests" / "data" / "report_digests.json"
# Every trace the suite holds that traceparse reads (fixtures/foreign/not-kineto/ is what it refuses).
GLOBS = (
    "fixtures/h200/*.json.gz",
    "fixtures/h200x2/*.json.gz",
    "fixtures/h200-compile/*.json.gz",
    "fixtures/h200-plain/*.json.gz",
    "fixtures/foreign/*.json.gz",
)
# (key, format, language)
RENDERINGS = (("json", "json", "en"), ("csv", "csv", "en"), ("csv_ru", "csv", "ru"))


def fixtures() -> list[str]:
    """The traces, as paths relative to the repository (the report's `source`, as the CLI run from
    the repository root writes it)."""
    return sorted(str(p.relative_to(ROOT)) for g in GLOBS for p in ROOT.glob(g))


def digests_of(rel: str, analyze: Callable[[Path], object] | None = None) -> dict[str, str]:
    """The digests of one fixture's reports; `analyze(path) -> Analysis` may be a cached pipeline."""
    from traceparse.api import run_pipeline
    from traceparse.render import render

    analysis = (analyze or run_pipeline)(ROOT / rel)
    # The source as the CLI run from the repository root gives it, wherever the checkout is.
    report = dataclasses.replace(analysis.report, source=rel)  # type: ignore[attr-defined]
    return {key: hashlib.sha256(render(report, fmt, lang).encode()).hexdigest() for key, fmt, lang in RENDERINGS}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with the pinned digests instead of writing")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    now = {rel: digests_of(rel) for rel in fixtures()}
    if args.check:
        pinned = json.loads(DIGESTS.read_text())
        moved = sorted(k for k in now.keys() | pinned.keys() if now.get(k) != pinned.get(k))
        for rel in moved:
            print(f"differs: {rel}")
        return 1 if moved else 0
    DIGESTS.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
    print(f"wrote {DIGESTS.relative_to(ROOT)} ({len(now)} fixtures)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
