"""A gzipped trace, streamed: this process inflates it and cuts it into blocks of whole events,
and worker processes (if any) decode them (stream.py starts them and merges what they return).

A gzip has no random access, so one process must inflate it all. Its blocks go to the workers
through buffers shared with them (`Ring`: an anonymous shared mapping made before they fork):
the inflated text is written once, into the buffer the worker reads, and only the block's place
in it goes through the pipe. Pickled through the pipe instead, every block was copied four more
times, into fresh memory each time: on a million-event trace 1.5 s of system time and 600k page
faults, the gzip taking 2.4 s where the plain file took 1.7 s.
"""

from __future__ import annotations

import contextlib
import mmap
import zlib
from typing import TYPE_CHECKING, Any, cast

from traceparse.load.blocks import Bail, decode_shared, decode_text, fill
from traceparse.load.layout import Layout

if TYPE_CHECKING:
    from traceparse.load.stream import InOrder

# Inflate runs in this process, ahead of the workers: ISA-L's is ~3x zlib's (0.15 s vs 0.43 s for
# a 370 MB trace). Without isal (a box without the registry), the stdlib's.
GzipFile: Any
try:
    from isal.igzip import IGzipFile as GzipFile
    from isal.isal_zlib import error as _IsalError

    GZIP_ERRORS: tuple[type[Exception], ...] = (zlib.error, cast(type[Exception], _IsalError))
except ImportError:  # pragma: no cover - isal is a dependency; this is for bare environments
    from gzip import GzipFile

    GZIP_ERRORS = (zlib.error,)

__all__ = ["CARRY_ROOM", "GZIP_ERRORS", "GzipFile", "Ring", "cut_blocks"]

CARRY_ROOM = 1 << 20  # room in a slot for the partial event carried over from the block before


class Ring:
    """Block buffers shared with the worker processes: `slots` slots of `size` bytes. Made before
    the workers fork (they inherit the mapping); a slot is free again once its block's result is
    back, because a worker's structs (and the zero-copy raw texts in them) die before it returns."""

    def __init__(self, slots: int, size: int) -> None:
        self.mem = mmap.mmap(-1, slots * size)  # MAP_SHARED | MAP_ANONYMOUS: seen by forked children
        self.size = size
        self.free = list(range(slots))

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a view still alive: the mapping goes with it
            self.mem.close()


def cut_blocks(stream: Any, layout: Layout, carry: bytes, decoder: InOrder, block: int, share: Any) -> bytes:
    """Inflate `stream` and hand the decoder block after block of whole events (in the shared
    ring when it has one); returns what follows the last cut: the last event, "]" and the
    top-level keys after it. `share()`: the share of the file read so far."""
    ring = decoder.ring
    while True:
        if ring is not None and len(carry) + block + 2 <= ring.size:
            while not ring.free:
                decoder.take_one()
            slot = ring.free.pop()
            base, mem = slot * ring.size, ring.mem
            mem[base] = 0x5B  # "["
            mem[base + 1 : base + 1 + len(carry)] = carry
            got = fill(stream, memoryview(mem)[base + 1 + len(carry) : base + 1 + len(carry) + block])
            end = base + 1 + len(carry) + got
            cut = mem.rfind(layout.sep, base + 1, end)
            if cut >= 0:
                mem[cut + 1] = 0x5D  # the "," after the last complete event becomes "]"
                carry = mem[cut + len(layout.sep) - 1 : end]
                decoder.submit(decode_shared, (base, cut + 2 - base), cut + 2 - base, share(), slot)
            else:  # no separator yet: carried on (past the slot's room, the branch below goes on)
                ring.free.append(slot)
                carry = mem[base + 1 : end]
        else:  # one process, or an event too long for a slot: the block in its own buffer
            buf = bytearray(len(carry) + block + 2)
            buf[0] = 0x5B
            buf[1 : 1 + len(carry)] = carry
            got = fill(stream, memoryview(buf)[1 + len(carry) : 1 + len(carry) + block])
            end = 1 + len(carry) + got
            cut = buf.rfind(layout.sep, 1, end)
            if cut >= 0:
                buf[cut + 1] = 0x5D
                carry = bytes(buf[cut + len(layout.sep) - 1 : end])
                del buf[cut + 2 :]
                decoder.submit(decode_text, (buf,), cut + 2, share())
            elif got == block and end > 4 * block:
                raise Bail  # no separator in 4 blocks: another format (minified): the full path
            else:
                carry = bytes(buf[1:end])
        if got < block:  # the end
            return carry
