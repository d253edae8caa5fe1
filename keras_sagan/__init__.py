"""keras_sagan: Self-Attention GAN layers, models, training and export for Keras 3.

`import keras_sagan` imports nothing heavy: every public name is loaded on first attribute
access (PEP 562). The network (`keras_sagan.layers`, `keras_sagan.models`) never pulls in
tensorflow_datasets or the training loop, and the command line (`python -m keras_sagan`,
`keras-sagan`) can set TensorFlow's log level before anything imports TensorFlow.
"""

from keras_sagan._lazy import lazy_attributes

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
    "export_generator": "keras_sagan.export.saved_model",
    "export_litert": "keras_sagan.export.portable",
    "export_onnx": "keras_sagan.export.portable",
    "import_reference": "keras_sagan.reference",
    "load_generator": "keras_sagan.export.loading",
    "TrainConfig": "keras_sagan.training.config",
    "train": "keras_sagan.training.loop",
}

__version__ = "0.1.0"
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
