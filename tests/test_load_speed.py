"""Issue #21, HTA ≥ 20x at a million events: the loader's fast paths give the columns the
whole-file reader gives (a gzip's blocks through memory shared with the workers, columns
reserved ahead and grown when short), and analyzing one file imports nothing it does not use."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import USER_TRAIN
from tests.test_scale import _full, assert_same_events
from traceparse.load import stream
from traceparse.load.merge import Columns

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def train_json(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A training trace, plain and gzipped (~2 MB: a dozen 128 KiB blocks)."""
    out = tmp_path_factory.mktemp("speed") / "train.pt.trace.json"
    out.write_bytes(gzip.decompress(USER_TRAIN.read_bytes()))
    gz = out.with_suffix(".json.gz")
    gz.write_bytes(USER_TRAIN.read_bytes())
    return out, gz


def _submitted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the functions the loader hands its blocks to, as it submits them."""
    names: list[str] = []
    submit = stream.InOrder.submit

    def spy(self: stream.InOrder, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        names.append(fn.__name__)
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(stream.InOrder, "submit", spy)
    return names


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_a_gzip_goes_to_the_workers_through_shared_memory(train_json: tuple[Path, Path], monkeypatch) -> None:
    assert stream._can_fork(), "the worker path should run here"
    plain, gz = train_json
    names = _submitted(monkeypatch)
    fast = stream.load_columns(gz, block=128 << 10, n_workers=2)
    assert fast is not None
    assert set(names) == {"decode_shared"} and len(names) > 8  # more blocks than ring slots: slots reused
    _, ref, dropped = _full(plain)
    assert_same_events(fast.events, ref)
    assert fast.dropped == dropped


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers are forked on Linux only")
def test_an_event_longer_than_a_slot_has_room_for_takes_a_buffer_of_its_own(
    train_json: tuple[Path, Path], monkeypatch
) -> None:
    """A carried-over partial event that does not fit a ring slot's spare room: that block goes
    through the pipe, the others through the ring, and the columns are the same."""
    assert stream._can_fork(), "the worker path should run here"
    plain, gz = train_json
    monkeypatch.setattr(stream, "CARRY_ROOM", 400)  # about one event: some carries fit, some do not
    names = _submitted(monkeypatch)
    fast = stream.load_columns(gz, block=128 << 10, n_workers=2)
    assert fast is not None
    assert {"decode_shared", "decode_text"} <= set(names)
    assert_same_events(fast.events, _full(plain)[1])


@pytest.mark.parametrize("share", [1.0, 1e-3])
def test_columns_reserved_too_short_or_far_too_long_hold_the_same_rows(
    train_json: tuple[Path, Path], monkeypatch, share: float
) -> None:
    """The first block's share of the file sizes the columns; a wrong guess (too few rows: grown
    1.5x at a time; far too many: never touched) changes nothing in them."""
    plain, gz = train_json
    merge = Columns.merge
    monkeypatch.setattr(Columns, "merge", lambda self, block, _share=None: merge(self, block, share))
    _, ref, _ = _full(plain)
    for path in (plain, gz):
        fast = stream.load_columns(path, block=128 << 10, n_workers=2)
        assert fast is not None
        assert_same_events(fast.events, ref)


def test_analyzing_one_file_imports_neither_the_job_package_nor_click() -> None:
    """Each is ~10-20 ms of start-up before the first block is decoded."""
    code = (
        "import sys\n"
        "from traceparse.cli import main\n"
        f"sys.argv = ['traceparse', 'analyze', '-f', 'json', '-q', {str(USER_TRAIN)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('traceparse.job' in sys.modules, 'click' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stderr.split()[-2:] == ["False", "False"]
