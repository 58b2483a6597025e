"""Fuzz the analyze pipeline with mutated real traces (issue #8: bad input never crashes).

Every input must give either a report or a TraceparseError (the CLI's one-line error and exit
code), never any other exception; every report must keep the attribution invariant
(`Attribution.self_check`), render in every format with no NaN, and say null where a value is
unknown. The inputs are the H200 fixtures (cut to a step or a window, so that a case takes tens
of milliseconds) and variants of them (CPU-only, ROCm, ns timestamps), mutated structurally
(drop fields, change types, shuffle, cut, duplicate ids, move timestamps, rename, break the
metadata) and, for some cases, at the byte level (truncate, flip, gzip damage).

    python scripts/fuzz.py --cases 10000 --jobs 2            # the long run (~10 min on 2 cores)
    python scripts/fuzz.py --cases 300 --seed 7 --crash-dir out/fuzz-crashes

It prints the number of cases, reports, clean rejections (by exit code) and crashes, and exits 1
if any case crashed; each crash's input is saved under --crash-dir. tests/test_fuzz.py drives the
same mutators with hypothesis (a fast subset in CI); tests/test_bad_input.py uses the variants.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tracefuzz package beside this script

from tracefuzz.cases import BYTE_MUTATORS, FORMS, Case, build, random_case
from tracefuzz.mutators import MUTATORS, REPORT_OWED, WEIRD_CONCRETE, WEIRD_NAMES
from tracefuzz.oracle import HarnessError, PropertyViolation, check_case, check_path, report_owed
from tracefuzz.seeds import (
    GPU_CATEGORIES,
    SCOPE,
    SEEDS,
    cpu_only,
    first_steps,
    fixture,
    fixture_bytes,
    gpu_only,
    nanoseconds,
    no_scopes,
    no_shapes,
    no_steps,
    rocm,
    seed_bytes,
    steps_of,
    trailing_empty_step,
    unicode_modules,
    window,
)

__all__ = [
    "BYTE_MUTATORS",
    "FORMS",
    "GPU_CATEGORIES",
    "MUTATORS",
    "REPORT_OWED",
    "SCOPE",
    "SEEDS",
    "WEIRD_CONCRETE",
    "WEIRD_NAMES",
    "Case",
    "HarnessError",
    "PropertyViolation",
    "build",
    "check_case",
    "check_path",
    "cpu_only",
    "first_steps",
    "fixture",
    "fixture_bytes",
    "gpu_only",
    "nanoseconds",
    "no_scopes",
    "no_shapes",
    "no_steps",
    "report_owed",
    "rocm",
    "steps_of",
    "trailing_empty_step",
    "unicode_modules",
    "window",
]


# ---- the driver -----------------------------------------------------------------------------------


@dataclass
class Tally:
    cases: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    crashes: list[tuple[str, str, str]] = field(default_factory=list)  # (signature, case, traceback)


def _signature(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = next((f"{Path(f.filename).name}:{f.lineno}" for f in reversed(tb) if "traceparse" in f.filename), "?")
    return f"{type(exc).__name__} at {where}: {str(exc)[:120]}"


def _run_chunk(args: tuple[int, int, int, str]) -> Tally:
    seed, start, count, workdir = args
    tally = Tally()
    for i in range(start, start + count):
        case = random_case(random.Random(f"{seed}:{i}"))
        tally.cases += 1
        try:
            tally.outcomes[check_case(case, workdir)] += 1
        except HarnessError as exc:
            tally.outcomes["harness error"] += 1
            tally.crashes.append((f"harness: {exc.__cause__!r}"[:160], case.describe(), traceback.format_exc()))
        except Exception as exc:
            tally.outcomes["crash"] += 1
            tally.crashes.append((_signature(exc), case.describe(), traceback.format_exc()))
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    parser.add_argument("--crash-dir", type=Path, default=None, help="save each crashing input here")
    args = parser.parse_args(argv)

    for name in SEEDS:  # build the seeds once, before forking
        seed_bytes(name)
    start = time.perf_counter()
    chunk = 50
    work = [(args.seed, i, min(chunk, args.cases - i)) for i in range(0, args.cases, chunk)]
    total = Tally()
    with tempfile.TemporaryDirectory(prefix="traceparse-fuzz-") as workdir:
        jobs = [(s, i, n, workdir) for s, i, n in work]
        if args.jobs > 1:
            import multiprocessing

            with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
                results = pool.imap_unordered(_run_chunk, jobs)
                for done, t in enumerate(results, 1):
                    _merge(total, t)
                    if done % 20 == 0:
                        _progress(total, start)
        else:
            for done, job in enumerate(jobs, 1):
                _merge(total, _run_chunk(job))
                if done % 20 == 0:
                    _progress(total, start)
    elapsed = time.perf_counter() - start
    by_sig = Counter(sig for sig, _, _ in total.crashes)
    print(
        f"fuzz: {total.cases} cases in {elapsed:.0f} s ({total.cases / elapsed:.1f}/s, "
        f"{args.jobs} jobs, seed {args.seed}): "
        f"{total.outcomes['report']} reports, "
        + ", ".join(f"{n} {k}" for k, n in sorted(total.outcomes.items()) if k.startswith("rejected"))
        + f", {total.outcomes['crash']} crashes"
        + (f" ({total.outcomes['harness error']} harness errors)" if total.outcomes["harness error"] else "")
    )
    for sig, n in by_sig.most_common():
        example = next(c for s, c, _ in total.crashes if s == sig)
        print(f"  {n} x {sig}\n      e.g. {example}")
    if total.crashes and args.crash_dir is not None:
        args.crash_dir.mkdir(parents=True, exist_ok=True)
        for k, (sig, desc, tb) in enumerate(total.crashes[:50]):
            (args.crash_dir / f"crash-{k}.txt").write_text(f"{sig}\n{desc}\n\n{tb}")
        print(f"  inputs: rebuild with scripts/fuzz.py's build(Case(...)); tracebacks in {args.crash_dir}")
    return 1 if total.crashes else 0


def _merge(total: Tally, t: Tally) -> None:
    total.cases += t.cases
    total.outcomes.update(t.outcomes)
    total.crashes.extend(t.crashes)


def _progress(total: Tally, start: float) -> None:
    print(
        f"  … {total.cases} cases, {total.outcomes['crash']} crashes, {time.perf_counter() - start:.0f} s",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
