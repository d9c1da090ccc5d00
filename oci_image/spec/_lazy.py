"""Lazy module attributes (PEP 562) for the packages' curated exports: a name loads its
module on first use, so importing a package does not import everything it exports."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(namespace: dict[str, Any], exports: Mapping[str, str]
                 ) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``exports`` (name -> module: absolute, or relative
    to the module's package with a leading dot). ``namespace`` is the module's
    ``globals()``: a loaded value is stored there, so later lookups never come back, and
    a value already there (set by a test, say) is what the module uses."""
    module_name = namespace["__name__"]
    package = namespace["__package__"]

    def load(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        namespace[name] = value
        return value

    return load
