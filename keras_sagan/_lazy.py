"""Lazy module attributes (PEP 562): the one implementation behind `keras_sagan` and `keras_sagan.training`."""

import importlib
import sys


def lazy_attributes(module_name: str, lazy: dict[str, str]):
    """`(__getattr__, __dir__)` for a package whose names in `lazy` (name -> defining module) load on first access."""

    def __getattr__(name):
        if name not in lazy:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(lazy[name]), name)
        setattr(sys.modules[module_name], name, value)  # Later accesses skip this hook.
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[module_name])) | set(lazy))

    return __getattr__, __dir__
