"""Integrations with training frameworks. Each loads its framework on first use only.

`TraceparseCallback`: transformers' `Trainer` (needs torch, transformers and accelerate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from traceparse.integrations.trainer import TraceparseCallback

__all__ = ["TraceparseCallback"]


def __getattr__(name: str) -> Any:
    if name == "TraceparseCallback":
        from traceparse.integrations.trainer import TraceparseCallback

        return TraceparseCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
