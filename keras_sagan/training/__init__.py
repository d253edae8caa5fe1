"""Adversarial training: the SAGAN model and its losses, plus the training run on first access.

`SAGAN` and the losses load with this package. The run (`TrainConfig`, `train`, the callbacks)
pulls in the data pipelines and tensorflow_datasets, so it is imported on first attribute access
(PEP 562): `import keras_sagan.training` stays light.
"""

from keras_sagan._lazy import lazy_attributes
from keras_sagan.training import losses
from keras_sagan.training.losses import LOSSES
from keras_sagan.training.sagan import SAGAN, TTUR, build_sagan, default_d_optimizer, default_g_optimizer

# name -> module that defines it, imported on first access.
_LAZY = {
    "DivergenceGuard": "keras_sagan.training.guard",
    "TrainingDiverged": "keras_sagan.training.guard",
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


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
