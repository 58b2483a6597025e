"""What do module scopes cost? Plain forward vs traceparse scopes vs per-module sync hooks.

Run on the GPU box (one process, one model at a time, same inputs):
    python scripts/bench_capture.py --presets nemotron-nano-9b-v2 llama-3.1-8b llama-3.1-8b:4096 qwen3-0.6b

A case is `PRESET` (at --seq-len) or `PRESET:SEQ`; cases of one preset share one built model.
"sync hooks" is the seed report's method: a device synchronize and a perf_counter read before and
after every module. Target: the scopes' overhead is at most half of the sync hooks' overhead on
every model.

How it measures (issue 23: measured one configuration after another, the first one absorbed the
warm-up and a run showed scopes 16% *faster* than the plain forward):
  1. a common warm-up: the three configurations in turn, at least --warmup forwards each and at
     least --warmup-s seconds in all (clocks ramp up, kernels are chosen, caches fill);
  2. --rounds rounds; in each, every configuration times --runs forwards (CUDA events; the
     block's median is the round's value), and the order rotates from round to round
     (plain/scopes/hooks, scopes/hooks/plain, hooks/plain/scopes), so drift and the
     after-a-switch cost hit all three alike;
  3. per cell: the median over rounds and the spread as the interquartile range [q1…q3]
     (min–max in the JSON). Overheads are paired per round (scopes_r − plain_r), so drift
     between rounds cancels; the ratio column is the median of the per-round ratios.
A cell whose spread (q3 − q1) exceeds the effect it reports (|median|) is flagged with †: at this
number of rounds that effect is not told apart from noise. The verdict per model is "met" when
the ratio's q3 is at most 0.5, "NOT met" when its q1 is above 0.5, else "unclear".
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from traceparse.capture.model import BuiltModel, build_model
from traceparse.capture.options import CaptureOptions
from traceparse.capture.scopes import module_scopes
from traceparse.capture.timing import synchronize, time_ms
from traceparse.capture.workload import make_workload

CONFIGS = ("plain", "scopes", "sync_hooks")
TARGET = 0.5  # scopes' overhead at most this share of the sync hooks' overhead
FLAG = "†"


# ---- pure statistics (tests/test_bench_stats.py) ---------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Median, quartiles and extremes of a sample."""

    median: float
    q1: float
    q3: float
    lo: float
    hi: float
    n: int

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def noisy(self) -> bool:
        """The spread exceeds the effect the median reports: not told apart from noise."""
        return self.iqr > abs(self.median)


def summarize(xs: Sequence[float]) -> Summary:
    """Median, quartiles (inclusive method: they lie within the data) and min/max."""
    if not xs:
        raise ValueError("summarize() needs at least one value")
    vals = sorted(float(x) for x in xs)
    med = statistics.median(vals)
    if len(vals) == 1:
        q1 = q3 = med
    else:
        q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    return Summary(med, q1, q3, vals[0], vals[-1], len(vals))


def paired_diffs(base: Sequence[float], other: Sequence[float]) -> list[float]:
    """other_r − base_r for each round r."""
    if len(base) != len(other):
        raise ValueError("paired samples need the same number of rounds")
    return [o - b for b, o in zip(base, other, strict=True)]


def paired_ratios(num: Sequence[float], den: Sequence[float]) -> list[float]:
    """num_r / den_r for each round r (NaN where den_r ≤ 0: no overhead to compare against)."""
    if len(num) != len(den):
        raise ValueError("paired samples need the same number of rounds")
    return [n / d if d > 0 else math.nan for n, d in zip(num, den, strict=True)]


def rotation(configs: Sequence[str], round_index: int) -> list[str]:
    """The order of the configurations in one round: shifted by one each round."""
    k = round_index % len(configs)
    return [*configs[k:], *configs[:k]]


def verdict(ratio: Summary, sync_overhead: Summary, rounds: int, target: float = TARGET) -> str:
    """'met' when even the ratio's upper quartile is within the target, 'NOT met' when even its
    lower quartile is above it; 'unclear' when the target lies inside the spread, or when the
    yardstick itself is not resolved (the sync hooks' overhead is within noise, or fewer than
    half of the rounds had a positive one to divide by)."""
    if math.isnan(ratio.median) or sync_overhead.noisy or sync_overhead.median <= 0 or 2 * ratio.n < rounds:
        return "unclear"
    if ratio.q3 <= target:
        return "met"
    if ratio.q1 > target:
        return "NOT met"
    return "unclear"


def fmt_cell(s: Summary, unit: str = " ms", digits: int = 2, flag: bool = False, signed: bool = False) -> str:
    """`median [q1–q3]` (`+median` when signed), with † when asked and the spread exceeds the effect."""

    def num(x: float) -> str:
        return f"{x:.{digits}f}".replace("-", "−")

    sign = "+" if signed and s.median >= 0 else ""
    mark = FLAG if flag and s.noisy else ""
    return f"{sign}{num(s.median)}{unit} [{num(s.q1)}…{num(s.q3)}]{mark}"


def parse_case(spec: str, default_seq: int) -> tuple[str, int]:
    """`PRESET` or `PRESET:SEQ`."""
    preset, sep, seq = spec.partition(":")
    if not sep:
        return preset, default_seq
    try:
        n = int(seq)
    except ValueError:
        raise SystemExit(f"{spec!r}: the sequence length after ':' must be an integer") from None
    if n < 1:
        raise SystemExit(f"{spec!r}: the sequence length must be at least 1")
    return preset, n


# ---- the measurement ---------------------------------------------------------------------------


@contextmanager
def sync_hooks(model: nn.Module, device: torch.device) -> Iterator[dict[str, float]]:
    """The hook-based profiler the seed used: sync + timestamp around each module call."""
    totals: dict[str, float] = {}
    handles = []
    for name, module in model.named_modules():
        starts: list[float] = []

        def pre(_m: nn.Module, _a: object, _s: list[float] = starts) -> None:
            synchronize(device)
            _s.append(time.perf_counter())

        def post(_m: nn.Module, _a: object, _o: object, _n: str = name, _s: list[float] = starts) -> None:
            synchronize(device)
            totals[_n] = totals.get(_n, 0.0) + time.perf_counter() - _s.pop()

        handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
    try:
        yield totals
    finally:
        for h in handles:
            h.remove()


def config_context(config: str, model: nn.Module, device: torch.device) -> AbstractContextManager[object]:
    if config == "scopes":
        return module_scopes(model)
    if config == "sync_hooks":
        return sync_hooks(model, device)
    return nullcontext()


def measure(
    forward: Callable[[], None],
    model: nn.Module,
    device: torch.device,
    rounds: int,
    runs: int,
    warmup: int,
    warmup_s: float,
) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Common warm-up, then `rounds` rotated rounds; per configuration, one value per round."""
    t0 = time.perf_counter()
    done = 0
    while done < warmup or time.perf_counter() - t0 < warmup_s:
        for config in rotation(CONFIGS, done):
            with config_context(config, model, device):
                forward()
        done += 1
    synchronize(device)
    warm_s = time.perf_counter() - t0
    # A full gc.collect() walks torch's and transformers' ~350k objects (~0.3 s); frozen, the
    # collect before each block only clears what the last block left, in microseconds.
    gc.collect()
    gc.freeze()
    try:
        return _rounds(forward, model, device, rounds, runs, {"warmup_rounds": done, "warmup_s": warm_s})
    finally:
        gc.unfreeze()


def _rounds(
    forward: Callable[[], None],
    model: nn.Module,
    device: torch.device,
    rounds: int,
    runs: int,
    extra: dict[str, object],
) -> tuple[dict[str, list[float]], dict[str, object]]:
    per_round: dict[str, list[float]] = {c: [] for c in CONFIGS}
    samples: dict[str, list[list[float]]] = {c: [] for c in CONFIGS}
    orders = []
    for r in range(rounds):
        order = rotation(CONFIGS, r)
        orders.append(order)
        for config in order:
            gc.collect()
            with config_context(config, model, device):
                block = time_ms(forward, device, runs, warmup=0)
            samples[config].append(block)
            per_round[config].append(statistics.median(block))
    return per_round, {**extra, "orders": [",".join(o) for o in orders], "samples_ms": samples}


def bench_case(built: BuiltModel, preset: str, seq_len: int, args: argparse.Namespace) -> dict[str, object]:
    opts = CaptureOptions(preset=preset, seq_len=seq_len, device=args.device, layers=args.layers).validate()
    work = make_workload(built, opts)
    t0 = time.perf_counter()
    per_round, extra = measure(
        work.forward, built.model, built.device, args.rounds, args.runs, args.warmup, args.warmup_s
    )
    wall = time.perf_counter() - t0
    plain = per_round["plain"]
    scope_d = paired_diffs(plain, per_round["scopes"])
    sync_d = paired_diffs(plain, per_round["sync_hooks"])
    ratio = paired_ratios(scope_d, sync_d)
    s = {
        "plain_ms": summarize(plain),
        "scopes_ms": summarize(per_round["scopes"]),
        "sync_hooks_ms": summarize(per_round["sync_hooks"]),
        "scopes_overhead_ms": summarize(scope_d),
        "sync_overhead_ms": summarize(sync_d),
        "scopes_x": summarize(paired_ratios(per_round["scopes"], plain)),
        "sync_x": summarize(paired_ratios(per_round["sync_hooks"], plain)),
        "scopes_over_sync_overhead": summarize([x for x in ratio if not math.isnan(x)] or [math.nan]),
    }
    del work
    return {
        "model": built.model_id,
        "seq_len": seq_len,
        "rounds": args.rounds,
        "runs_per_round": args.runs,
        "wall_s": wall,
        "verdict": verdict(s["scopes_over_sync_overhead"], s["sync_overhead_ms"], args.rounds),
        "summary": {k: {**asdict(v), "iqr": v.iqr, "noisy": v.noisy} for k, v in s.items()},
        "per_round_ms": per_round,
        **extra,
        "_s": s,
    }


def table(rows: list[dict[str, object]]) -> str:
    out = [
        "| model | seq | plain forward | with scopes (overhead, ×) | with per-module sync hooks (overhead, ×) "
        "| scope overhead / sync overhead | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        s = row["_s"]
        assert isinstance(s, dict)
        out.append(
            f"| {row['model']} | {row['seq_len']} | {fmt_cell(s['plain_ms'])} "
            f"| {fmt_cell(s['scopes_ms'])} ({fmt_cell(s['scopes_overhead_ms'], flag=True, signed=True)}, "
            f"×{s['scopes_x'].median:.3f}) "
            f"| {fmt_cell(s['sync_hooks_ms'])} ({fmt_cell(s['sync_overhead_ms'], flag=True, signed=True)}, "
            f"×{s['sync_x'].median:.3f}) "
            f"| {fmt_cell(s['scopes_over_sync_overhead'], unit='', digits=3, flag=True)} | {row['verdict']} |"
        )
    return "\n".join(out)


def environment(device: str | None) -> dict[str, str]:
    import transformers

    import traceparse

    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": name,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "traceparse": traceparse.__version__,
        "command": " ".join(["python", *sys.argv]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["qwen3-0.6b-tiny"], help="PRESET or PRESET:SEQ")
    parser.add_argument("--seq-len", type=int, default=215, help="for cases given without :SEQ")
    parser.add_argument("--rounds", type=int, default=21, help="rotated rounds (a multiple of 3 is fair)")
    parser.add_argument(
        "--runs", type=int, default=5, help="timed forwards per configuration and round (their median is kept)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="warm-up forwards per configuration, at least")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="warm-up seconds per case, at least")
    parser.add_argument("--device", default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    if args.rounds < 1 or args.runs < 1:
        parser.error("--rounds and --runs must be at least 1")
    env = environment(args.device)
    print(" | ".join(f"{k}: {v}" for k, v in env.items()), flush=True)
    cases = [parse_case(c, args.seq_len) for c in args.presets]
    rows: list[dict[str, object]] = []
    for preset in dict.fromkeys(p for p, _ in cases):
        opts = CaptureOptions(preset=preset, device=args.device, layers=args.layers).validate()
        t0 = time.perf_counter()
        built = build_model(opts)
        print(f"built {built.model_id} in {time.perf_counter() - t0:.1f} s", flush=True)
        for p, seq in cases:
            if p != preset:
                continue
            row = bench_case(built, preset, seq, args)
            rows.append(row)
            s = row["_s"]
            assert isinstance(s, dict)
            print(
                f"{row['model']:<22} seq {seq:<5} plain {fmt_cell(s['plain_ms'])} | "
                f"scopes {fmt_cell(s['scopes_overhead_ms'], flag=True, signed=True)} | "
                f"sync hooks {fmt_cell(s['sync_overhead_ms'], flag=True, signed=True)} | "
                f"ratio {fmt_cell(s['scopes_over_sync_overhead'], unit='', digits=3, flag=True)} "
                f"-> {row['verdict']} ({row['wall_s']:.1f} s)",
                flush=True,
            )
            write_json(args.json, env, rows, "incomplete")  # what a time limit leaves is still read
        del built
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    print()
    print(table(rows))
    print(f"\n{FLAG}: the spread (IQR over {args.rounds} rounds) exceeds the effect (|median|)")
    verdicts = [str(r["verdict"]) for r in rows]
    overall = "met" if all(v == "met" for v in verdicts) else "NOT met" if "NOT met" in verdicts else "unclear"
    print(f"verdict (scopes overhead <= {TARGET} of sync-hook overhead on every model): {overall}", flush=True)
    write_json(args.json, env, rows, overall)
    return 0


def write_json(path: Path | None, env: dict[str, str], rows: list[dict[str, object]], overall: str) -> None:
    if path is not None:
        clean = [{k: v for k, v in r.items() if k != "_s"} for r in rows]
        path.write_text(json.dumps({"environment": env, "verdict": overall, "rows": clean}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
