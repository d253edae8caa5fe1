"""Adversarial training: the SAGAN model and its losses, plus the training run on first access.

`SAGAN` and the losses load with this package. The run (`TrainConfig`, `train`, the callbacks)
pulls in the data pipelines and tensorflow_datasets, so it is imported on first attribute access
(PEP 562): `import keras_sagan.training` stays light.
"""

import importlib
import importlib.util

from keras_sagan.training import losses
from keras_sagan.training.losses import LOSSES
from keras_sagan.training.sagan import SAGAN, TTUR, build_sagan, default_d_optimizer, default_g_optimizer

# name -> modules that may define it, first one that has it wins (the application layer is
# being split into modules; whichever holds a name serves it).
_LAZY = {
    "TrainConfig": ("keras_sagan.training.config", "keras_sagan.training.loop"),
    "TrainResult": ("keras_sagan.training.loop",),
    "TrainingInterrupted": ("keras_sagan.training.loop",),
    "train": ("keras_sagan.training.loop",),
    "make_grid": ("keras_sagan.images", "keras_sagan.training.callbacks"),
    "callbacks": ("keras_sagan.training.callbacks",),
}

__all__ = [
    "LOSSES",
    "SAGAN",
    "TTUR",
    "build_sagan",
    "default_d_optimizer",
    "default_g_optimizer",
    "losses",
    *_LAZY,
]


def _find_spec(module_name):
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module_name in _LAZY[name]:
        if not _find_spec(module_name):
            continue
        module = importlib.import_module(module_name)
        # A module named like the attribute is the attribute itself (`callbacks`).
        value = module if module_name.endswith("." + name) else getattr(module, name, None)
        if value is not None:
            globals()[name] = value  # later accesses skip this hook
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
