"""keras_sagan: Self-Attention GAN layers, models, training and export for Keras 3.

`import keras_sagan` loads only the network (layers and models). The application layer
(`SAGAN`, `build_sagan`, `export_generator`, `load_generator`, `TrainConfig`, `train`) is
imported on first attribute access (PEP 562), so importing the network never pulls in
tensorflow_datasets or the training loop.
"""

import importlib

from keras_sagan.layers import ConditionalBatchNormalization, SelfAttention, SpectralNormalization
from keras_sagan.models import Discriminator, Generator, build_discriminator, build_generator, list_presets

# name -> module that defines it, imported on first access.
_LAZY = {
    "SAGAN": "keras_sagan.training.sagan",
    "build_sagan": "keras_sagan.training.sagan",
    "export_generator": "keras_sagan.export",
    "load_generator": "keras_sagan.loading",
    "TrainConfig": "keras_sagan.training",
    "train": "keras_sagan.training",
}

__version__ = "0.1.0"
__all__ = [
    "ConditionalBatchNormalization",
    "Discriminator",
    "Generator",
    "SelfAttention",
    "SpectralNormalization",
    "build_discriminator",
    "build_generator",
    "list_presets",
    *_LAZY,
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later accesses skip this hook
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
