"""ONNX and LiteRT files of a generator: `inference_model` (the graph Keras' exporters convert), `export_onnx`,
`export_litert`.

Both files are written by Keras' own exporters (`model.export(format=...)`: tf2onnx for ONNX, TensorFlow's TFLite
converter for LiteRT) from `inference_model(generator)`, the inference graph with named inputs `z` (and `labels`)
and outputs `images` and `images_uint8`. In it each spectrally normalised kernel is one constant W / sigma (sigma
from the stored `u`, no power iteration, no `u` left in the file) and BatchNorm's moving statistics become a
constant scale and shift. Files are written beside their path and linked into place, never overwriting.
"""

import importlib
import os
import shutil
import sys
import tempfile

import keras
import tensorflow as tf

from keras_sagan.atomic_file import temporary_name
from keras_sagan.export.formats import ExportError
from keras_sagan.export.loading import check_finite_generator, resolve_generator
from keras_sagan.images import to_uint8
from keras_sagan.layers.spectral_normalization import SpectralNormalization
from keras_sagan.quiet import stderr_to

SUFFIXES = {"onnx": ".onnx", "litert": ".tflite"}
# The packages each of Keras' exporters imports (beyond TensorFlow), with the pip name to install.
_EXPORTER_PACKAGES = {"onnx": (("tf2onnx", "tf2onnx"), ("onnx", "onnx")), "litert": ()}


def _plain_layer(layer):
    """`layer` with spectral norm folded: an SN wrapper becomes its inner layer holding W / sigma."""
    if isinstance(layer, SpectralNormalization):
        inner = layer.layer
        target = inner.embeddings if isinstance(inner, keras.layers.Embedding) else inner.kernel
        target.assign(keras.ops.cast(layer.normalized_kernel(training=False), target.dtype))
        return inner
    if isinstance(layer, keras.Sequential) and any(isinstance(x, SpectralNormalization) for x in layer.layers):
        return keras.Sequential([_plain_layer(x) for x in layer.layers], name=layer.name)
    return layer


def _fold_spectral_norm(layer, seen=None) -> None:
    """Replaces, in place, every SN wrapper held by `layer` or by any layer below it (an attribute, a list item or
    inside a `keras.Sequential`) with `_plain_layer`'s plain layer.

    The walk goes through public attributes (`vars`), because Keras has no public recursive listing of a
    subclassed layer's sub-layers (`Model.layers` is one level; `_flatten_layers` is private). The attributes are
    set past Keras' tracking (`object.__setattr__`): a built layer refuses new sub-layers, and this copy is only
    ever called for export. The inner layers' variables stay reachable through the wrappers, which nothing calls
    any more.
    """
    seen = set() if seen is None else seen
    if id(layer) in seen:
        return
    seen.add(id(layer))
    if isinstance(layer, keras.Sequential):
        for child in layer.layers:
            _fold_spectral_norm(child, seen)
        return
    for name, value in list(vars(layer).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, keras.layers.Layer):
                    plain = _plain_layer(item)
                    if plain is not item:
                        list.__setitem__(value, index, plain)
                    _fold_spectral_norm(plain, seen)
        elif isinstance(value, keras.layers.Layer):
            plain = _plain_layer(value)
            if plain is not value:
                object.__setattr__(layer, name, plain)
            _fold_spectral_norm(plain, seen)


def inference_model(generator, batch_size: int | None = None):
    """A functional `keras.Model` of `generator`'s inference graph, for Keras' exporters.

    Inputs `{"z": float32 (batch, z_dim)}`, plus `"labels": int32 (batch,)` for a conditional
    generator; outputs `{"images": float32 (batch, H, W, 3) in [-1, 1], "images_uint8": uint8}`
    (the serving signatures' outputs). The generator runs with `training=False`: spectral norm
    divides by sigma from the stored `u` (no power iteration, no update), BatchNorm uses its
    moving statistics.

    The model holds a copy of `generator` (same config and weights) in which:
    - every `SpectralNormalization` wrapper is replaced by its inner layer, whose kernel is set to
      `W / sigma` (`normalized_kernel(training=False)`: sigma from the stored `u`). The graph then
      has no power iteration and reads no `u`, whatever the exporter folds. (Left to TFLite's
      converter, some W / sigma were not folded, and a conv with a computed filter needs TF's
      Select ops);
    - attention computes the whole map (`query_chunk_size=None`): the blocked path's run-time
      block sizes and `map_fn` loops would otherwise become ONNX `Loop` / TFLite `While` ops.
    The images are the generator's inference output (within float32 rounding).

    Args:
        generator: a built `Generator`.
        batch_size: int or None. A fixed batch dimension, or None for a dynamic one.
    """
    if not generator.built:
        generator.build()
    config = {**generator.get_config(), "query_chunk_size": None}
    copy = type(generator).from_config(config)
    copy.build()
    copy.set_weights(generator.get_weights())
    _fold_spectral_norm(copy)
    inputs = {"z": keras.Input((generator.z_dim,), batch_size=batch_size, name="z", dtype="float32")}
    if generator.num_classes is None:
        images = copy(inputs["z"], training=False)
    else:
        inputs["labels"] = keras.Input((), batch_size=batch_size, name="labels", dtype="int32")
        images = copy(inputs["z"], inputs["labels"], training=False)
    images = keras.ops.cast(images, "float32")
    return keras.Model(inputs, {"images": images, "images_uint8": to_uint8(images)}, name="keras_sagan_inference")


def _check_exporter(format):
    missing = []
    for module, pip in _EXPORTER_PACKAGES[format]:
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(pip)
    if missing:
        raise ExportError(
            f"format {format!r} needs the {', '.join(missing)} package(s), which are not installed: "
            f"pip install {' '.join(missing)}"
        )


def _write_file(path, format, write):
    """Runs `write(tmp)` for a temporary file beside `path`, then links it to `path` (never overwriting)."""
    path = os.path.abspath(os.fspath(path))
    suffix = SUFFIXES[format]
    if not path.endswith(suffix):
        raise ExportError(f"the {format} output path must end with {suffix}; received: {path}")
    if os.path.lexists(path):
        raise ExportError(f"{path} already exists; refusing to overwrite it")
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # A temporary folder (`atomic_file`'s name, so `is_temporary` knows a killed export's) holding a file with the
    # suffix: Keras' LiteRT exporter refuses a path without it.
    folder = temporary_name(path)
    os.makedirs(folder)
    try:
        tmp = os.path.join(folder, os.path.basename(path))
        write(tmp)
        try:
            os.link(tmp, path)  # Fails if `path` appeared meanwhile: an atomic no-overwrite rename.
        except FileExistsError:
            raise ExportError(f"{path} already exists; refusing to overwrite it") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path


def _input_signature(model):
    """The inference model's input signature, given explicitly: without it Keras' exporters require a
    model that has been called once ("The model provided has never called")."""
    return [{name: keras.InputSpec(shape=x.shape, dtype=x.dtype, name=name) for name, x in model.input.items()}]


def export_onnx(generator_or_checkpoint, path: str | os.PathLike) -> str:
    """Writes a generator's inference graph as an ONNX model (Keras' exporter, through tf2onnx).

    Inputs `z` float32 `[batch, z_dim]` (and `labels` int32 `[batch]` for a conditional
    generator) with a dynamic batch; outputs `images` float32 `[batch, H, W, 3]` in [-1, 1] and
    `images_uint8`. The file is written beside `path` and linked into place; an existing `path`
    is never overwritten.

    Args:
        generator_or_checkpoint: as in `export_generator` (EMA weights of a run when present).
        path: str. The `.onnx` file to write.

    Returns:
        The absolute path written.

    Example:

    >>> keras_sagan.export_onnx("runs/celeba64_demo", "celeba64.onnx")
    >>> onnxruntime.InferenceSession("celeba64.onnx").run(["images"], {"z": z})
    """
    _check_exporter("onnx")
    generator = resolve_generator(generator_or_checkpoint)
    check_finite_generator(generator, "the generator to export")
    model = inference_model(generator)
    signature = _input_signature(model)
    return _write_file(
        path, "onnx", lambda tmp: model.export(tmp, format="onnx", verbose=False, input_signature=signature)
    )


def _convert_litert(model, tmp, batch_size):
    from tensorflow.lite.python.convert_phase import ConverterError  # Not in TF's public API.

    builtins = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}  # Any LiteRT interpreter runs them.
    with tempfile.TemporaryFile() as log:
        try:
            with stderr_to(log):  # A refused conversion prints pages of MLIR diagnostics: a one-line error instead.
                model.export(tmp, format="litert", verbose=False, input_signature=_input_signature(model),
                             target_spec=builtins)  # fmt: skip
        except ConverterError:
            if batch_size is None:
                # TF 2.21's converter loses the feature-map height after repeated 2x upsamplings when
                # the batch is dynamic, and leaves the next convs as TF ops (the resnet generators).
                raise ExportError(
                    "the LiteRT converter cannot lower this generator to built-in ops with a dynamic batch "
                    "(it would need TF Select ops); give a fixed batch: --batch N (batch_size=N)"
                ) from None
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise ExportError("the LiteRT converter failed (its diagnostics are above)") from None
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise


def export_litert(generator_or_checkpoint, path: str | os.PathLike, batch_size: int | None = None) -> str:
    """Writes a generator's inference graph as a LiteRT (TFLite) model (Keras' exporter).

    The signature `serving_default` takes `z` (and `labels`) and returns `images` and
    `images_uint8`, as the ONNX model. The model holds TFLite built-in ops only, so any LiteRT
    interpreter runs it without the Flex delegate. With `batch_size=None` the batch is dynamic
    (`shape_signature` -1: the interpreter resizes the inputs); the dcgan generators convert so.
    TF 2.21's converter cannot lower the resnet generators with a dynamic batch: for them the
    export is refused with one line asking for a fixed `batch_size`. Written as `export_onnx`,
    never overwriting.

    Args:
        generator_or_checkpoint: as in `export_generator`.
        path: str. The `.tflite` file to write.
        batch_size: int >= 1 or None. A fixed batch dimension. Defaults to None (dynamic).

    Returns:
        The absolute path written.
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ExportError(f"`batch` must be None or an int >= 1; received: batch={batch_size!r}")
    _check_exporter("litert")
    generator = resolve_generator(generator_or_checkpoint)
    check_finite_generator(generator, "the generator to export")
    model = inference_model(generator, batch_size=batch_size)
    return _write_file(path, "litert", lambda tmp: _convert_litert(model, tmp, batch_size))
