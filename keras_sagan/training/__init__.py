"""Adversarial training: the SAGAN model and its losses, plus the training run on first access.

`SAGAN` and the losses load with this package. The run (`TrainConfig`, `train`, the callbacks)
pulls in the data pipelines and tensorflow_datasets, so it is imported on first attribute access
(PEP 562): `import keras_sagan.training` stays light.
"""

import importlib

from keras_sagan.training import losses
from keras_sagan.training.losses import LOSSES
from keras_sagan.training.sagan import SAGAN, TTUR, build_sagan, default_d_optimizer, default_g_optimizer

# name -> module that defines it, imported on first access.
_LAZY = {
    "TrainConfig": "keras_sagan.training.config",
    "TrainResult": "keras_sagan.training.loop",
    "TrainingInterrupted": "keras_sagan.training.loop",
    "train": "keras_sagan.training.loop",
    "make_grid": "keras_sagan.images",
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


def __getattr__(name):
    if name == "callbacks":  # A submodule: `keras_sagan.training.callbacks`.
        return importlib.import_module("keras_sagan.training.callbacks")
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later accesses skip this hook
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
