"""Make a "foreign" trace: what a user's own loop writes, without traceparse's scopes.

    python scripts/user_trace.py --preset qwen3-0.6b --layers 4 --mode train -o DIR
    python scripts/user_trace.py --preset qwen3-0.6b --layers 4 --mode forward --with-stack -o DIR

Uses the stock `tensorboard_trace_handler` and a plain loop (AdamW, cross-entropy), the way the
PyTorch profiler recipe shows it: the traces analyze must handle without metadata or scopes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

from traceparse.capture.model import build_model
from traceparse.capture.options import CaptureOptions
from traceparse.capture.workload import make_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="qwen3-0.6b-tiny")
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--mode", choices=["forward", "train"], default="train")
    parser.add_argument("--with-stack", action="store_true")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default=None)
    parser.add_argument("-o", "--out", type=Path, default=Path("traces"))
    parser.add_argument("--worker", default=None, help="worker name in the file name")
    args = parser.parse_args()
    opts = CaptureOptions(preset=args.preset, layers=args.layers, seq_len=args.seq_len, device=args.device)
    built = build_model(opts.validate())
    model, ids = built.model, make_inputs(built, opts)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if built.device.type == "cuda" else [])
    worker = args.worker or f"user-{args.mode}{'-stack' if args.with_stack else ''}"
    with profile(
        activities=activities,
        schedule=schedule(wait=0, warmup=1, active=args.steps),
        on_trace_ready=tensorboard_trace_handler(str(args.out), worker_name=worker, use_gzip=True),
        record_shapes=True,
        with_stack=args.with_stack,
    ) as prof:
        for _ in range(1 + args.steps):
            if args.mode == "train":
                model.train()
                logits = model(input_ids=ids, use_cache=False).logits
                loss = F.cross_entropy(logits.flatten(0, 1).float(), ids.roll(-1, 1).flatten())
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            else:
                with torch.no_grad():
                    model(input_ids=ids, use_cache=False)
            prof.step()


if __name__ == "__main__":
    main()
