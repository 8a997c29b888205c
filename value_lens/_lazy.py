"""Lazy package faces (PEP 562): a package lists its public names, and each name imports its
module on first use, so ``import value_lens`` (or a subpackage) loads nothing heavy until a name
is touched.

Example:
    >>> getattr_, dir_ = attach("value_lens", {"load_model": "value_lens.core.model"}, ["core"])
    >>> getattr_("load_model").__name__, "core" in dir_()
    ('load_model', True)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["attach"]


def attach(
    package: str, names: Mapping[str, str], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``.

    ``names`` maps a public name to the module that defines it (``"module:attr"`` when the
    attribute is named otherwise there); ``submodules`` are subpackages or modules reachable as
    attributes (``value_lens.viz``). Anything else raises the usual ``AttributeError``.
    """
    subs = tuple(submodules)

    def __getattr__(name: str) -> Any:
        if name in names:
            module, _, attr = names[name].partition(":")
            return getattr(importlib.import_module(module), attr or name)
        if name in subs:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*names, *subs})

    return __getattr__, __dir__
