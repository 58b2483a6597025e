"""Issue #23: every failure explains itself.

Files people keep beside their traces are recognised by content and refused with what they are
and what to pass instead; an optional cross-check (HTA) that fails leaves the report standing; a
Ctrl-C is one line. All through the real CLI.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, USER_TRAIN
from tests.test_bad_input import assert_one_line_error, run_cli

NOT_KINETO = ROOT / "fixtures" / "foreign" / "not-kineto"
MI300_TRAIN = ROOT / "fixtures" / "foreign" / "tl-mi300-resnet_act_checkpoint.json.gz"


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("hta-benchmark_simple_add_et.json.gz", "PyTorch execution trace"),
        ("param-linear_et.json.gz", "pass the Kineto trace written beside it"),
        ("param-pt2_et.json.gz", "PyTorch execution trace"),
        ("hta-memory_timeline.raw.gz", "memory-timeline export"),
        ("chakra-small_chakra.0.json.gz", "Chakra workload graph"),
        ("tl-cpu_op_map_trace1.json.gz", "JSON without 'traceEvents'"),
    ],
)
def test_real_files_kept_beside_traces_say_what_they_are(name: str, fragment: str) -> None:
    assert_one_line_error(run_cli("analyze", NOT_KINETO / name), 3, fragment)


@pytest.mark.parametrize(
    ("file_name", "content", "fragment"),
    [
        ("profile.sqlite", b"SQLite format 3\x00" + bytes(200), "SQLite database"),
        ("run.nsys-rep", bytes(range(256)), "Nsight Systems report"),
        ("run.pftrace", b"\x0a\x12" + bytes(100), "Perfetto protobuf"),
        ("events.out.tfevents.1700000000.host", b"\x18\x00\x00\x00" + bytes(60), "TensorBoard event file"),
        ("results.json", json.dumps({"rocprofiler-sdk-tool": [{"agents": []}]}).encode(), "rocprofv3"),
        (
            "tf.trace.json",
            json.dumps(
                {"traceEvents": [{"ph": "X", "cat": "Op", "name": "MatMul", "ts": 1, "dur": 2, "pid": 1}]}
            ).encode(),
            "another tool wrote it",
        ),
    ],
)
def test_other_profilers_outputs_say_what_they_are(
    tmp_path: Path, file_name: str, content: bytes, fragment: str
) -> None:
    path = tmp_path / file_name
    path.write_bytes(content)
    assert_one_line_error(run_cli("analyze", path), 3, fragment)


def test_a_failing_hta_cross_check_leaves_the_report(tmp_path: Path) -> None:
    """HTA 0.5's loader raises on this real MI300 training trace (an int16 overflow in its own id
    columns): the report still prints, HTA's failure is in a note and in the JSON, exit 0."""
    pytest.importorskip("hta")
    run = run_cli("analyze", MI300_TRAIN, "--hta", "-f", "json", "-q")
    assert run.rc == 0, run.stderr
    report = run.report
    assert report["general"]["kernel_ms"] > 0 and report["blocks"]
    assert "HTA could not load" in report["hta"]["error"]
    assert any("HTA could not load" in n for n in report["notes"])
    table = run_cli("analyze", MI300_TRAIN, "--hta", "-q")
    assert table.rc == 0 and "HTA could not load this trace" in table.stdout


def test_a_tensorboard_log_folder_is_read_through_to_its_trace(tmp_path: Path) -> None:
    """tensorboard_trace_handler's folder: the event file at the top, the trace under plugins/profile/."""
    (tmp_path / "events.out.tfevents.1.host").write_bytes(b"\x18" + bytes(20))
    run_dir = tmp_path / "plugins" / "profile" / "run1"
    run_dir.mkdir(parents=True)
    shutil.copy(USER_TRAIN, run_dir / USER_TRAIN.name)
    run = run_cli("analyze", tmp_path, "-f", "json", "-q")
    assert run.rc == 0, run.stderr
    direct = run_cli("analyze", USER_TRAIN, "-f", "json", "-q")
    assert run.report["general"] == direct.report["general"]


def test_ctrl_c_is_one_line_even_while_workers_decode(tmp_path: Path) -> None:
    """Ctrl-C in a terminal interrupts the whole process group: the loader's worker processes too.
    Whenever it lands, the user sees one line and exit 130 (or the finished report, exit 0)."""
    doc = json.loads(gzip.decompress(USER_TRAIN.read_bytes()))
    events = doc["traceEvents"] * 40  # ~30 MB of Kineto layout: decoded by worker processes
    big = tmp_path / "big.pt.trace.json"
    big.write_text('{\n  "traceEvents": [\n  ' + ",\n  ".join(json.dumps(e) for e in events) + "\n  ]\n}\n")
    env = {k: v for k, v in os.environ.items() if k != "TRACEPARSE_DEBUG"}
    # 0.2 s: where `python -m` used to end by SIGINT (-2) after printing the line, ~1 run in 4
    for delay in (0.2, 0.3, 0.6, 1.0):
        proc = subprocess.Popen(
            [sys.executable, "-m", "traceparse", "analyze", str(big), "-q", "-f", "json"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):  # already done
            os.killpg(proc.pid, signal.SIGINT)
        err = proc.communicate(timeout=120)[1].decode()
        assert proc.returncode in (0, 130), (proc.returncode, err)
        assert "Traceback" not in err
        if proc.returncode == 130:
            assert err.splitlines() == ["traceparse: error: interrupted"], err
