"""One error type for everything a user can cause, each kind with its own exit code.

The CLI turns a TraceparseError into one line on stderr and its exit code; anything else is a
bug and still becomes one line (with --debug showing the traceback).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug in traceparse: please report with --debug
    USAGE = 2  # bad options, unknown preset, impossible request
    NOT_A_TRACE = 3  # readable, but not a torch.profiler / Chrome trace
    UNREADABLE = 4  # missing, empty, truncated or corrupt file
    RUNTIME = 5  # capture failed while running the model
    UNWRITABLE = 6  # the output (-o) could not be written


class TraceparseError(Exception):
    """A user-facing failure: `str(err)` is the whole message, one line."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(" ".join(message.split()))
        self.code = code


class NotATraceError(TraceparseError):
    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.NOT_A_TRACE)


class UnreadableError(TraceparseError):
    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.UNREADABLE)


class UsageError(TraceparseError):
    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.USAGE)


class OutputError(TraceparseError):
    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.UNWRITABLE)
