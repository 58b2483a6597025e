"""A `record_function` scope around every nn.Module call, and the module table for metadata.

Naming contract (analyze relies on it): a module call is the scope
    "<qualified name> (<ClassName>)"
where the qualified name is the module's name in `model.named_modules()`, and the root module is
"model (<ClassName>)". The scope opens in a forward pre-hook and closes in a forward hook that is
`always_call`, so an exception inside a module still closes it. Nothing here synchronises the
device: scopes cost a few microseconds of host time per call and none of device time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.autograd.profiler import record_function

# The fast C++ scope (what torch.compile's generated code uses) costs ~0.4 µs per enter/exit
# against ~13 µs for record_function on our CI machine; that gap is most of a launch-bound
# forward's budget at 400 modules. It is exported as a `cpu_op` event (record_function's is a
# `user_annotation`), so analyze recognises scopes by their name, in either category.
_Scope: Any = getattr(getattr(torch._C, "_profiler", None), "_RecordFunctionFast", None) or record_function

ROOT_NAME = "model"

# Names of the ModuleList that holds a model's repeated blocks, in the order we trust them.
_BLOCK_LIST_NAMES = re.compile(r"(^|\.)(layers|h|blocks|layer|decoder\.layers|encoder\.layers)$")


def class_name(module: nn.Module) -> str:
    """The module's class name; FSDP2's `fully_shard` swaps the class for a subclass named
    `FSDP<Class>`, and the contract names the model's own class."""
    cls = type(module)
    own = cls.__name__.removeprefix("FSDP")
    if own != cls.__name__ and any(base.__name__ == own for base in cls.__mro__[1:]):
        return own
    return cls.__name__


def scope_name(qualified_name: str, module: nn.Module) -> str:
    return f"{qualified_name or ROOT_NAME} ({class_name(module)})"


def find_block_container(model: nn.Module) -> str | None:
    """The qualified name of the ModuleList holding the blocks: a known name first, else the largest."""
    lists = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) >= 1]
    if not lists:
        return None
    named = [item for item in lists if _BLOCK_LIST_NAMES.search(item[0])]
    pool = named or lists
    return max(pool, key=lambda item: len(item[1]))[0]


def module_table(model: nn.Module, container: str | None) -> list[dict[str, Any]]:
    """One row per module: qualified name, class, own parameter count, block index."""
    prefix = f"{container}." if container else None
    rows = []
    for name, module in model.named_modules():
        block = None
        if prefix and name.startswith(prefix):
            head = name[len(prefix) :].split(".", 1)[0]
            block = int(head) if head.isdigit() else None
        rows.append(
            {
                "name": name or ROOT_NAME,
                "class": class_name(module),
                "params": sum(p.numel() for p in module.parameters(recurse=False)),
                "block": block,
            }
        )
    return rows


@contextmanager
def module_scopes(model: nn.Module, skip: Callable[[str], bool] | None = None) -> Iterator[None]:
    """Wrap every module call in a named record_function scope while the context is open;
    `skip(qualified name)`: modules left without one (inside a compiled region, where Dynamo
    would have to trace the hook)."""
    handles = []
    for qualified_name, module in model.named_modules():
        if skip is not None and skip(qualified_name):
            continue
        name = scope_name(qualified_name, module)
        open_scopes: list[Any] = []

        def pre_hook(_mod: nn.Module, _args: Any, _name: str = name, _open: list = open_scopes) -> None:
            scope = _Scope(_name)
            scope.__enter__()
            _open.append(scope)

        def post_hook(_mod: nn.Module, _args: Any, _out: Any, _open: list = open_scopes) -> None:
            if _open:
                _open.pop().__exit__(None, None, None)

        # First of the pre-hooks: work other hooks do for the call (FSDP2's all-gather) is inside it.
        handles.append(module.register_forward_pre_hook(pre_hook, prepend=True))
        handles.append(module.register_forward_hook(post_hook, always_call=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def linear_param_count(model: nn.Module) -> int:
    return sum(p.numel() for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters(False))
