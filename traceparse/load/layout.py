"""How a trace file lays its events out, read from its first megabyte (the streamed reader's cuts).

Kineto writes `{…, "traceEvents": [\n  {…},\n  {…}\n  ], …}`; other tools re-save traces as one
line (`json.dump`), with compact separators, indented, with CRLF line ends, or in Chrome's array
form (`[{…}, {…}]`). The reader cuts blocks at the separator between two events, so it needs to
know which one the file uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from traceparse.load.blocks import Bail

HEAD_LIMIT = 64 << 20  # a header (metadata before the events) larger than this: the whole-file reader
_KEY = re.compile(rb'"traceEvents"\s*:\s*\[([ \t\r\n]*)')
_ARRAY_KEY = re.compile(rb"[ \t\r\n]*\[([ \t\r\n]*)")


@dataclass(frozen=True)
class Layout:
    """How the file lays its events out, read from its first megabyte."""

    header: bytes  # the text through `"traceEvents": [` (the array form: a stand-in for it)
    sep: bytes  # between two events
    closing: bytes  # what the top level needs after the events' "]": "}" for the array form
    form: str  # "object" or "array"


def read_layout(stream: Any) -> tuple[Layout, bytes]:
    """The layout, and what was read after the event list's "[" (from the first event on)."""
    head = bytearray()
    m = None
    array = False
    while m is None or m.end() == len(head):  # to the first byte after `"traceEvents": [` and blanks
        more = stream.read(1 << 20)
        if not more or len(head) > HEAD_LIMIT:
            raise Bail
        seen = max(0, len(head) - 256)
        head += more
        lead = head.lstrip()[:1]
        if lead == b"[":  # Chrome's array form: the events from the first "[" on
            array = True
            m = _ARRAY_KEY.match(head)
            continue
        if lead not in (b"", b"{"):
            raise Bail  # a BOM, not JSON: the full path decides
        m = _KEY.search(head, seen if m is None else m.start())
    if head[m.end() : m.end() + 1] != b"{":
        raise Bail  # an empty or odd event list
    after = bytes(head[m.end() :])
    if array:
        return Layout(b'{"traceEvents": [', _separator(m.group(1), after), b"}", "array"), after
    return Layout(bytes(head[: m.end() - len(m.group(1))]), _separator(m.group(1), after), b"", "object"), after


# Separators between events that writers use: Kineto's ("},\n  {", the blanks after "[" tell its
# indent), json.dump's default ("}, {"), compact ("},{"), CRLF and indented forms of each.
_SEPARATORS = (b"}, {", b"},{", b"},\n{", b"},\r\n{", b"}, \n{")


def _separator(blanks: bytes, text: bytes) -> bytes:
    """The separator between events: of the candidates, the one that occurs most often in the
    first text after the event list opens. Any string of the events could hold it too, but a cut
    there leaves a string or a bracket open, which the block's decode rejects (full path then)."""
    candidates = [b"}," + blanks + b"{", *_SEPARATORS]
    return max(candidates, key=text.count)
