"""Atomic output: write to a temp file beside the target, then rename over it.

A crash or Ctrl-C mid-write leaves the previous file (or none), never half a report. Any OS
failure (no such directory, no permission, disk full) becomes one `OutputError` line.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import IO

from traceparse.errors import OutputError


@cache
def _new_file_mode() -> int:
    """What open() would give a new file: 0o666 less the umask (mkstemp alone gives 0o600)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _cannot_write(target: Path, exc: OSError) -> OutputError:
    return OutputError(f"{target}: cannot write ({exc.strerror or exc})")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path in the target's directory; rename it onto `target` on success.

    A symlink is followed (the file it points to is replaced, the link stays). A target that
    is not a regular file (a FIFO, a terminal, /dev/stdout) cannot be replaced, and must not
    be: it is written in place. A replaced file keeps its permission bits.
    """
    target = Path(target)
    try:
        st: os.stat_result | None = os.stat(target)  # follows symlinks
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _cannot_write(target, exc) from exc
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{target}: is a directory")
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            yield target
        except OSError as exc:
            raise _cannot_write(target, exc) from exc
        return
    if target.is_symlink():
        target = Path(os.path.realpath(target))
    mode = stat.S_IMODE(st.st_mode) if st is not None else _new_file_mode()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise _cannot_write(target, exc) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)
        _fsync(tmp_path)
        os.replace(tmp_path, target)
    except OSError as exc:
        raise _cannot_write(target, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp_path.unlink(missing_ok=True)


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[bytes]]:
    with atomic_path(target) as tmp, open(tmp, mode) as fh:
        yield fh
