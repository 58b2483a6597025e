"""Recognise module scopes and phase markers in CPU interval names.

Three sources of module scopes, best first:
  * traceparse's own: "<qualified name> (<ClassName>)" (cpu_op or user_annotation events);
  * torch's with_stack=True Python events: "nn.Module: <ClassName>_<N>";
  * none: attribution falls back to operators.
"""

from __future__ import annotations

import re
import sys
import types
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np

from traceparse.load import CPU_OP, PYTHON_FUNCTION, USER_ANNOTATION, Events

# Names are Python identifiers, so they may be non-ASCII: [^\W\d] is "a letter or _" in Unicode.
TRACEPARSE_SCOPE = re.compile(r"^(?P<qual>[^\W\d][\w.\-]*) \((?P<cls>[^\W\d]\w*)\)$")
STACK_SCOPE = re.compile(r"^nn\.Module: (?P<cls>[^\W\d]\w*?)_(?P<n>\d+)$")
ROOT_QUAL = "model"

# Phases, in the order the report lists them.
FORWARD, BACKWARD, LOSS, OPTIMIZER, ZERO_GRAD, OTHER_PHASE = range(6)
PHASE_NAMES = ("forward", "backward", "loss", "optimizer", "zero_grad", "other")

_PHASE_MARKERS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"^traceparse:backward$"), BACKWARD),
    (re.compile(r"^autograd::engine::evaluate_function: "), BACKWARD),
    # torch 1.8-1.9 recorded the autograd node itself ("CudnnConvolutionBackward", "AddmmBackward")
    (re.compile(r"^[A-Z]\w*Backward\d*$"), BACKWARD),
    (re.compile(r"^traceparse:loss$"), LOSS),
    (re.compile(r"^traceparse:optimizer$"), OPTIMIZER),
    (re.compile(r"^Optimizer\.step#"), OPTIMIZER),
    (re.compile(r"^Optimizer\.zero_grad#"), ZERO_GRAD),
)
BACKWARD_NODE = re.compile(r"^autograd::engine::evaluate_function: |^[A-Z]\w*Backward\d*$")


@dataclass(frozen=True)
class ScopeNames:
    """Per interned name: is it a module scope, and its qualified name and class."""

    source: str  # "scopes" | "with_stack" | "none"
    is_scope: np.ndarray  # bool by name id
    qual: tuple[str, ...]  # by name id ("" where not a scope)
    cls: tuple[str, ...]


def classify_names(ev: Events) -> ScopeNames:
    names = ev.names
    n = len(names)
    kinds_by_name = _kinds_by_name(ev)
    tp_qual, tp_cls = [""] * n, [""] * n
    st_qual, st_cls = [""] * n, [""] * n
    tp_mask = np.zeros(n, bool)
    st_mask = np.zeros(n, bool)
    for i, name in enumerate(names):
        kinds = kinds_by_name.get(i, set())
        # A class name starts with a capital: torch's own "CUDAGraphNode.record (dynamo_timed)" is no scope.
        if kinds & {CPU_OP, USER_ANNOTATION} and (m := TRACEPARSE_SCOPE.match(name)) and m.group("cls")[0].isupper():
            tp_mask[i], tp_qual[i], tp_cls[i] = True, m.group("qual"), m.group("cls")
        elif PYTHON_FUNCTION in kinds and (m := STACK_SCOPE.match(name)):
            st_mask[i], st_qual[i], st_cls[i] = True, f"{m.group('cls')}_{m.group('n')}", m.group("cls")
    if tp_mask.any():
        return ScopeNames("scopes", tp_mask, tuple(tp_qual), tuple(tp_cls))
    if st_mask.any():
        return ScopeNames("with_stack", st_mask, tuple(st_qual), tuple(st_cls))
    return ScopeNames("none", np.zeros(n, bool), tuple([""] * n), tuple([""] * n))


def _kinds_by_name(ev: Events) -> dict[int, set[int]]:
    seen = np.zeros((len(ev.names), int(ev.kind.max()) + 1 if len(ev) else 1), bool)
    seen[ev.name, ev.kind] = True  # a scatter, not a sort of a million (name, kind) pairs
    out: dict[int, set[int]] = {}
    for name_id, kind in zip(*np.nonzero(seen), strict=True):
        out.setdefault(int(name_id), set()).add(int(kind))
    return out


def phase_markers(names: tuple[str, ...]) -> np.ndarray:
    """Per name id: the phase it opens (-1 if none)."""
    out = np.full(len(names), -1, np.int8)
    for i, name in enumerate(names):
        for pattern, phase in _PHASE_MARKERS:
            if pattern.search(name):
                out[i] = phase
                break
    return out


def backward_nodes(names: tuple[str, ...]) -> np.ndarray:
    return np.array([bool(BACKWARD_NODE.search(n)) for n in names], bool)


class _CallableModule(types.ModuleType):
    """`with traceparse.scopes(model):` is the public API's name for the capture scopes, and it is
    this module's name too: importing a submodule rebinds the package's attribute to the module, so
    a function of that name in traceparse/__init__.py would be replaced. The module is callable
    instead. It imports torch only when called."""

    def __call__(self, model: Any) -> AbstractContextManager[None]:
        from traceparse.capture.scopes import module_scopes

        return module_scopes(model)


sys.modules[__name__].__class__ = _CallableModule
