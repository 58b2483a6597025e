"""Issue 20: scopes and metadata in the user's own loop, and the Trainer callback, on the CPU.

The callback's trace of a real `Trainer` run must give the block table `traceparse capture --mode
train` gives for the same model (names, kinds, FLOPs, parameters: what does not depend on timing);
the API must work with the user's own schedule and `tensorboard_trace_handler`.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest
from typer.testing import CliRunner

from traceparse.api import run_pipeline
from traceparse.cli import app

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SEQ = 24
PRESET = "llama-3.1-8b-tiny"


def _keys(path: Path) -> list[str]:
    return list(msgspec.json.decode(gzip.decompress(path.read_bytes()), type=dict[str, msgspec.Raw]))


def _load(path: Path) -> dict[str, Any]:
    with gzip.open(path) as fh:
        return json.load(fh)  # type: ignore[no-any-return]


def _model(preset: str) -> Any:
    from traceparse.capture.presets import preset_config

    values = dict(preset_config(preset))
    config = transformers.AutoConfig.for_model(values.pop("model_type"), **values)
    torch.manual_seed(0)
    return transformers.AutoModelForCausalLM.from_config(config)


class _Tokens(torch.utils.data.Dataset):  # type: ignore[misc]
    def __init__(self, vocab: int, n: int = 64) -> None:
        self.vocab, self.n = vocab, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        ids = torch.randint(3, self.vocab, (SEQ,), generator=torch.Generator().manual_seed(i))
        return {"input_ids": ids, "labels": ids.clone()}


def _train(tmp: Path, preset: str, max_steps: int, **callback: Any) -> Any:
    pytest.importorskip("accelerate", reason="transformers' Trainer needs accelerate (the dev extra has it)")
    from traceparse.integrations import TraceparseCallback

    model = _model(preset)
    args = transformers.TrainingArguments(
        output_dir=str(tmp / "run"), max_steps=max_steps, per_device_train_batch_size=1, use_cpu=True,
        report_to="none", save_strategy="no", logging_steps=1000, disable_tqdm=True,
    )  # fmt: skip
    cb = TraceparseCallback(model_id=preset, **callback)
    transformers.Trainer(model=model, args=args, train_dataset=_Tokens(model.config.vocab_size), callbacks=[cb]).train()
    return cb


def _block_table(path: Path) -> list[tuple[Any, ...]]:
    return [(b.index, b.name, b.kind, b.flops, b.params) for b in run_pipeline(path).report.blocks]


@pytest.fixture(scope="module")
def trainer_run(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("trainer")
    return _train(tmp, PRESET, 9, steps=(6, 8), report=tmp / "report.md")


def test_trainer_callback_gives_captures_block_table(trainer_run: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["capture", "--preset", PRESET, "--mode", "train", "--device", "cpu", "--seq-len", str(SEQ),
              "--steps", "3", "-o", str(tmp_path), "-q", "--no-report"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (captured,) = tmp_path.glob("*.pt.trace.json.gz")
    path = trainer_run.trace_path
    assert path.name == captured.name == f"{PRESET}-train-seq{SEQ}.pt.trace.json.gz"
    assert path.parent.name == "traceparse" and path.parent.parent.name == "run"  # <output_dir>/traceparse
    assert _block_table(path) == _block_table(captured) and len(_block_table(path)) == 3
    mine, theirs = run_pipeline(path).report.general, run_pipeline(captured).report.general
    for key in ("mode", "seq_len", "batch_size", "params", "params_linear", "num_blocks", "steps", "hidden_size"):
        assert getattr(mine, key) == getattr(theirs, key), key
    assert mine.steps == 3 and mine.step_ms_uninstrumented and mine.effective_basis == "step_ms_uninstrumented"


def test_callback_trace_holds_the_metadata_block_and_events_last(trainer_run: Any) -> None:
    path = trainer_run.trace_path
    keys = _keys(path)
    assert keys[0] == "traceparse" and keys[-1] == "traceEvents"
    trace = _load(path)
    meta = trace["traceparse"]
    assert meta["model_class"] == "LlamaForCausalLM" and meta["blocks_container"] == "model.layers"
    assert meta["config"]["hidden_size"] == 64 and meta["dtype"] == "float32" and meta["rank"] == 0
    assert meta["mode"] == "train" and meta["input_shapes"] == [[1, SEQ]]
    assert len(meta["timing"]["plain_step_wall_ms"]) == 3  # steps 2..4: neither step 1 nor the warm-up
    assert len(meta["timing"]["profiled_step_wall_ms"]) == 3
    steps = {e["name"] for e in trace["traceEvents"] if e.get("name", "").startswith("ProfilerStep#")}
    assert len(steps) == 3
    names = {e.get("name") for e in trace["traceEvents"]}
    assert {"model (LlamaForCausalLM)", "model.layers.2.mlp (LlamaMLP)"} <= names


def test_callback_saves_the_report(trainer_run: Any) -> None:
    text = Path(trainer_run.report_to).read_text()
    assert text.startswith(f"# {PRESET}") and "model.layers.2" in text


def test_training_that_ends_inside_the_window_keeps_its_steps(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cb = _train(tmp_path, PRESET, 6, steps=(5, 8), timed_steps=0)
    assert cb.report.general.steps == 2  # steps 5 and 6
    assert cb.report.general.step_ms_uninstrumented is None  # no step timed plain: no basis claimed
    printed = capsys.readouterr().out  # report=True: printed on rank 0
    assert str(cb.trace_path) in printed and "Per-block efficiency" in printed


def test_training_that_ends_before_the_window_warns(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="before profiled step 6"):
        cb = _train(tmp_path, PRESET, 3, report=False)
    assert cb.trace_path is None


def test_callback_refuses_a_window_that_does_not_fit() -> None:
    from traceparse.integrations.trainer import TraceparseCallback

    with pytest.raises(ValueError, match="warmup=2 does not fit"):
        TraceparseCallback(steps=(2, 3), warmup=2)
    with pytest.raises(ValueError, match="1 <= N <= M"):
        TraceparseCallback(steps=(4, 3))


def _user_loop(tmp: Path, on_ready: Any, attach: bool) -> tuple[Any, float]:
    """What a user writes: their own schedule, their own handler; traceparse adds scopes + metadata."""
    from torch.profiler import ProfilerActivity, profile, schedule

    import traceparse

    model = _model(PRESET).eval()
    ids = torch.randint(3, model.config.vocab_size, (2, SEQ), generator=torch.Generator().manual_seed(0))

    def forward() -> None:
        with torch.no_grad():
            model(input_ids=ids, use_cache=False)

    plain = traceparse.time_uninstrumented(forward, runs=3, device="cpu")
    sched = schedule(wait=1, warmup=1, active=2, repeat=2)
    with (
        traceparse.scopes(model),
        profile(activities=[ProfilerActivity.CPU], record_shapes=True, schedule=sched, on_trace_ready=on_ready) as prof,
    ):
        if attach:
            meta = traceparse.attach_metadata(prof, model, mode="forward", seq_len=SEQ, batch_size=2)
            meta["timing"] = {"forward_ms_uninstrumented": plain}  # measured before: written at export
        for _ in range(8):
            forward()
            prof.step()
    return model, plain


@pytest.mark.filterwarnings("ignore:Warning. Profiler clears events:UserWarning")
@pytest.mark.parametrize("how", ["attach_metadata", "trace_handler"])
def test_api_with_users_schedule_and_tensorboard_handler(tmp_path: Path, how: str) -> None:
    from torch.profiler import tensorboard_trace_handler

    import traceparse

    out = tmp_path / "tb"
    if how == "attach_metadata":
        _, plain = _user_loop(tmp_path, tensorboard_trace_handler(str(out), worker_name="w0", use_gzip=True), True)
    else:
        model = _model(PRESET)
        handler = traceparse.trace_handler(out, model, worker_name="w0", mode="forward", seq_len=SEQ, batch_size=2)
        _, plain = _user_loop(tmp_path, handler, False)
    files = sorted(out.glob("w0.*.pt.trace.json.gz"))
    assert len(files) == 2  # repeat=2: one file per cycle, each with the block
    for path in files:
        keys = _keys(path)
        assert keys[0] == "traceparse" and keys[-1] == "traceEvents"
        report = run_pipeline(path).report
        assert report.general.steps == 2 and report.general.seq_len == SEQ and report.general.batch_size == 2
        assert [b.name for b in report.blocks] == [f"model.layers.{i}" for i in range(3)]
        assert {b.kind for b in report.blocks} == {"decoder"} and all(b.params == 43136 for b in report.blocks)
        if how == "attach_metadata":
            assert report.general.forward_ms_uninstrumented == pytest.approx(plain)


def test_traceparse_scopes_stays_callable_after_analyze_imports_the_module() -> None:
    """`traceparse.scopes` is also a submodule's name: importing it must not hide the API."""
    code = (
        "import sys, traceparse, traceparse.api, torch\n"
        "import traceparse.scopes as s\n"
        "assert s is traceparse.scopes and s.ROOT_QUAL == 'model'\n"
        "m = torch.nn.Sequential(torch.nn.Linear(2, 2))\n"
        "from torch.profiler import profile\n"
        "with traceparse.scopes(m), profile() as p: m(torch.ones(1, 2))\n"
        "assert any(e.name == 'model (Sequential)' for e in p.events())\n"
        "assert any(e.name == '0 (Linear)' for e in p.events())\n"
        "assert 'transformers' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_importing_traceparse_and_analyzing_loads_no_torch() -> None:
    code = (
        "import sys, traceparse, traceparse.integrations, traceparse.capture\n"
        "from traceparse.api import run_pipeline\n"
        f"run_pipeline({str(Path(__file__).parent.parent / 'fixtures/h200/user-train.pt.trace.json.gz')!r})\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ---- the callback's H200 trace in the viewers of issue 24 (tests/test_viewers.py has the machinery) ---

TRAINER_H200 = (
    Path(__file__).resolve().parent.parent / "fixtures/h200/trainer-qwen3-0.6b-4l-train-seq215.pt.trace.json.gz"
)


@pytest.mark.filterwarnings("ignore:The copy keyword is deprecated:Warning")  # torch-tb-profiler's, with pandas 3
def test_tensorboard_plugin_loads_the_callbacks_trace(tmp_path: Path) -> None:
    pytest.importorskip("torch_tb_profiler", reason="torch-tb-profiler is not installed (the dev extra has it)")
    from torch_tb_profiler.profiler.data import RunProfileData
    from torch_tb_profiler.profiler.run_generator import RunGenerator

    data = RunProfileData.parse("worker0", None, str(TRAINER_H200), str(tmp_path))
    profile = RunGenerator("worker0", None, data).generate_run_profile()
    assert profile.overview and profile.has_kernel and {v.name for v in profile.views} >= {"overall", "kernel", "trace"}
    # The Trace tab's splice of its GPU counters into the file parses, the block intact.
    raw = gzip.decompress(TRAINER_H200.read_bytes())
    spliced = json.loads(gzip.decompress(profile.append_gpu_metrics(raw)))
    assert len(profile.gpu_metrics) > 10 and spliced["traceEvents"][-1] == json.loads(profile.gpu_metrics[-1])
    assert spliced["traceparse"] == json.loads(raw)["traceparse"]


@pytest.mark.browser
def test_catapult_imports_the_callbacks_trace(tmp_path: Path) -> None:
    from tests import catapult

    if catapult.chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    if catapult.trace_viewer() is None:
        pytest.skip("torch-tb-profiler (which ships Catapult's viewer) is missing")
    got = catapult.import_traces({"trainer": catapult.read_text(TRAINER_H200)}, tmp_path)["trainer"]
    assert "error" not in got, got.get("error")
    slices = sum(n for p in got["processes"] for n in p["threads"].values())
    assert slices > 1000, got["processes"]


def test_h200_trainer_run_gives_captures_block_table() -> None:
    """A real Trainer run on the H200 (scripts/trainer_h200.py) against `traceparse capture --mode
    train` of the same shapes: same blocks, FLOPs and parameters, block GPU times within 3 %."""
    from tests.conftest import H200, QWEN_TRAIN

    trainer = run_pipeline(H200 / "trainer-qwen3-0.6b-4l-train-seq215.pt.trace.json.gz").report
    captured = run_pipeline(QWEN_TRAIN).report
    assert [(b.index, b.name, b.kind, b.flops, b.params) for b in trainer.blocks] == [
        (b.index, b.name, b.kind, b.flops, b.params) for b in captured.blocks
    ]
    for mine, theirs in zip(trainer.blocks, captured.blocks, strict=True):
        assert mine.gpu_ms == pytest.approx(theirs.gpu_ms, rel=0.03)
    assert trainer.general.flops == captured.general.flops and trainer.general.device == "NVIDIA H200"
    assert trainer.attribution == "scopes" and trainer.general.step_ms_uninstrumented
