"""Lazy module attributes (PEP 562): the one implementation behind `keras_sagan` and `keras_sagan.training`."""

import importlib
import sys

_TENSORFLOW_PACKAGES = ("tensorflow", "tensorflow_datasets", "tensorboard")


def lazy_attributes(module_name: str, lazy: dict[str, str]):
    """`(__getattr__, __dir__)` for a package whose names in `lazy` (name -> defining module) load on first access."""

    def __getattr__(name):
        if name not in lazy:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        try:
            module = importlib.import_module(lazy[name])
        except ModuleNotFoundError as err:
            missing = (err.name or "").split(".")[0]
            if missing not in _TENSORFLOW_PACKAGES:
                raise
            # On JAX or torch without TensorFlow the network and SAGAN work; this name needs TensorFlow.
            raise ImportError(
                f"{module_name}.{name} needs TensorFlow ({missing} is not installed; pip install tensorflow "
                "tensorflow-datasets); the layers, models and SAGAN run without it on KERAS_BACKEND=jax or torch"
            ) from None
        value = getattr(module, name)
        setattr(sys.modules[module_name], name, value)  # Later accesses skip this hook.
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[module_name])) | set(lazy))

    return __getattr__, __dir__
