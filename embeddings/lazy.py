"""Package exports that load on first use (PEP 562), so that importing one light part of a package
(a config, the store, the errors) does not pull in torch, numba or faiss through its ``__init__``."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose name ``exports[name]`` lives in that module.

    Use as ``__getattr__, __dir__ = lazy_exports(__name__, {...})``; a loaded name is cached in
    the package's namespace, so the lookup runs once per name.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(importlib.import_module(package)), *exports})

    return __getattr__, __dir__
