"""What one profiler step runs: a forward, a train step, or a generate() call.

Phases other than module calls get their own scopes, so analyze can tell them apart without
guessing: "traceparse:loss", "traceparse:backward", "traceparse:optimizer", "traceparse:generate".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.profiler import record_function

from traceparse.capture.model import BuiltModel
from traceparse.capture.options import CaptureOptions
from traceparse.capture.parallel import param_groups

PHASE_PREFIX = "traceparse:"


@dataclass
class Workload:
    step: Callable[[], None]
    # The part timed for "uninstrumented forward ms": always a plain forward of the same inputs.
    forward: Callable[[], None]
    tokens_per_step: int


def make_inputs(built: BuiltModel, opts: CaptureOptions) -> torch.Tensor:
    vocab = int(getattr(built.model.config, "vocab_size", 32000))
    gen = torch.Generator(device="cpu").manual_seed(0)
    # Avoid token 0..2 (pad/bos/eos in most vocabularies) so generate never stops early on eos.
    ids = torch.randint(3, max(vocab, 4), (opts.batch_size, opts.seq_len), generator=gen)
    return ids.to(built.device)


def make_workload(built: BuiltModel, opts: CaptureOptions) -> Workload:
    model = built.model
    ids = make_inputs(built, opts)

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)

    if opts.mode == "forward":
        model.eval()
        return Workload(forward, forward, opts.batch_size * opts.seq_len)

    if opts.mode == "train":
        model.train()
        optimizer = torch.optim.AdamW(param_groups(model), lr=1e-5, foreach=True)
        labels = ids.roll(-1, dims=1)
        # DDP's wrapper runs the step (its backward hooks reduce the gradients); scopes stay on the model.
        runner = built.parallel.runner if built.parallel is not None else model

        def train_step() -> None:
            optimizer.zero_grad(set_to_none=True)
            logits = runner(input_ids=ids, use_cache=False).logits
            with record_function(PHASE_PREFIX + "loss"):
                loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())
            with record_function(PHASE_PREFIX + "backward"):
                loss.backward()
            with record_function(PHASE_PREFIX + "optimizer"):
                optimizer.step()

        return Workload(train_step, forward, opts.batch_size * opts.seq_len)

    model.eval()
    attention_mask = torch.ones_like(ids)

    def generate() -> None:
        with torch.no_grad(), record_function(PHASE_PREFIX + "generate"):
            model.generate(  # type: ignore[operator]  # transformers' stubs mistype it
                input_ids=ids,
                attention_mask=attention_mask,
                max_new_tokens=opts.new_tokens,
                min_new_tokens=opts.new_tokens,
                do_sample=False,
                pad_token_id=0,
            )

    return Workload(generate, forward, opts.batch_size * (opts.seq_len + opts.new_tokens))
