"""keras_sagan: Self-Attention GAN layers, models, training and export for Keras 3.

`import keras_sagan` imports nothing heavy: every public name is loaded on first attribute
access (PEP 562). The network (`keras_sagan.layers`, `keras_sagan.models`) never pulls in
tensorflow_datasets or the training loop, and the command line (`python -m keras_sagan`,
`keras-sagan`) can set TensorFlow's log level before anything imports TensorFlow.
"""

import importlib

# name -> module that defines it, imported on first access.
_LAZY = {
    "ConditionalBatchNormalization": "keras_sagan.layers",
    "SelfAttention": "keras_sagan.layers",
    "SpectralNormalization": "keras_sagan.layers",
    "Discriminator": "keras_sagan.models",
    "Generator": "keras_sagan.models",
    "build_discriminator": "keras_sagan.models",
    "build_generator": "keras_sagan.models",
    "list_presets": "keras_sagan.models",
    "SAGAN": "keras_sagan.training.sagan",
    "build_sagan": "keras_sagan.training.sagan",
    "export_generator": "keras_sagan.export",
    "load_generator": "keras_sagan.loading",
    "TrainConfig": "keras_sagan.training",
    "train": "keras_sagan.training",
}

__version__ = "0.1.0"
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later accesses skip this hook
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
