"""A real transformers `Trainer` run with `TraceparseCallback` (issue 20), for the README and a fixture.

    python scripts/trainer_h200.py OUT_DIR

1. fixture: Qwen3-0.6B widths cut to 4 blocks, bf16 weights, seq 215, batch 1 — the shapes of
   `traceparse capture --preset qwen3-0.6b --layers 4 --mode train --seq-len 215` (the committed
   capture fixture), so tests/test_training_loop.py can hold the two block tables equal on a GPU;
2. README: all of Qwen3-0.6B (random weights), fp32 weights under bf16 autocast (`bf16=True`, the
   usual fine-tuning setup), seq 1024, batch 8, steps 6..8 profiled, the report printed at the end.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

from traceparse.capture.model import build_model
from traceparse.capture.options import CaptureOptions
from traceparse.integrations import TraceparseCallback


class RandomTokens(torch.utils.data.Dataset):  # type: ignore[misc]
    def __init__(self, vocab: int, seq: int, n: int = 4096) -> None:
        self.vocab, self.seq, self.n = vocab, seq, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        ids = torch.randint(3, self.vocab, (self.seq,), generator=torch.Generator().manual_seed(i))
        return {"input_ids": ids, "labels": ids.clone()}


def train(out: Path, opts: CaptureOptions, batch: int, bf16: bool, steps: tuple[int, int], **cb: object) -> None:
    t0 = time.perf_counter()
    built = build_model(opts)
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(), max_steps=steps[1], per_device_train_batch_size=batch, bf16=bf16,
        report_to="none", save_strategy="no", logging_steps=1000, disable_tqdm=True, dataloader_num_workers=2,
    )  # fmt: skip
    callback = TraceparseCallback(steps=steps, out=out, model_id=built.model_id, **cb)  # type: ignore[arg-type]
    data = RandomTokens(built.model.config.vocab_size, opts.seq_len)
    Trainer(model=built.model, args=args, train_dataset=data, callbacks=[callback]).train()
    print(f"{callback.trace_path}: {time.perf_counter() - t0:.1f} s", flush=True)
    del built
    torch.cuda.empty_cache()


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    small = CaptureOptions(preset="qwen3-0.6b", layers=4, seq_len=215, dtype="bf16", mode="train")
    train(out, small, 1, False, (4, 5), timed_steps=2, name="trainer-qwen3-0.6b-4l-train-seq215", report=False)
    full = CaptureOptions(preset="qwen3-0.6b", seq_len=1024, dtype="fp32", mode="train")
    train(out, full, 8, True, (6, 8), report=out / "qwen3-0.6b-trainer.md")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "trainer-out"))
