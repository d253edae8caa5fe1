"""Writes a trained generator: a TF Serving SavedModel version (`export_generator`), an ONNX
model (`export_onnx`) or a LiteRT/TFLite model (`export_litert`); `export_model` picks by format.

`export_generator` writes `base_path/<version>/`, the layout TF Serving's model server watches,
with the `serving_default` and `sample` signatures of `keras_sagan.serving` (see there for their
inputs and outputs). The SavedModel loads with plain `tf.saved_model.load`; keras_sagan is not
needed to serve it. This module only writes: reading models back is `keras_sagan.loading`.

A run directory can be exported too: `keras_sagan.loading` builds its generator from
`config.json` and restores the latest checkpoint, the EMA weights when it has them.

ONNX and LiteRT files are written by Keras' own exporters (`model.export(format=...)`: tf2onnx
for ONNX, TensorFlow's TFLite converter for LiteRT) from `serving.inference_model`, the
inference graph with named inputs `z` (and `labels`) and outputs `images` and `images_uint8`.
Both exporters constant-fold the variables: each spectrally normalised kernel becomes one
constant W / sigma (sigma from the stored `u`, no power iteration, no `u` left in the file) and
BatchNorm's moving statistics become a constant scale and shift.
"""

import contextlib
import errno
import importlib
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import uuid

import tensorflow as tf

from keras_sagan import serving
from keras_sagan.errors import UsageError, one_line
from keras_sagan.loading import check_finite_generator, load_generator, read_marker, resolve_generator
from keras_sagan.run_directory import write_json_atomically
from keras_sagan.serving import EXPORT_RECORD, MARKER_FILENAME, list_versions, serving_module

# `.tmp-<host>-<pid>-<hex>`: whose export a temporary directory is, so that a later export can
# tell a killed one's leftovers (removed) from one still running (kept). `.tmp-<hex>` is the
# name older versions used; those are removed too.
_TMP = re.compile(r"\.tmp-(?:(?P<host>.+)-(?P<pid>\d+)-)?[0-9a-f]{32}")

# Config keys that name an instance rather than describe the model.
_IDENTITY_KEYS = ("name", "trainable", "dtype")


FORMATS = ("saved_model", "onnx", "litert", "preset")
"""The export formats (`keras-sagan export --format`)."""

SUFFIXES = {"onnx": ".onnx", "litert": ".tflite"}
# The packages each of Keras' exporters imports (beyond TensorFlow), with the pip name to install.
_EXPORTER_PACKAGES = {"onnx": (("tf2onnx", "tf2onnx"), ("onnx", "onnx")), "litert": ()}


class ExportError(UsageError):
    """An export that cannot go ahead (a clash with existing versions, a bad version)."""


def _comparable_config(config):
    config = json.loads(json.dumps(config))  # tuples -> lists, as on disk
    return {k: v for k, v in config.items() if k not in _IDENTITY_KEYS}


def _check_marker(base_path, config):
    """Refuses a base_path whose versions hold another model; writes the marker."""
    marker = os.path.join(base_path, MARKER_FILENAME)
    versions = list_versions(base_path)
    if os.path.isfile(marker):
        existing = (read_marker(base_path) or {}).get("generator", {})
        if versions and _comparable_config(existing) != _comparable_config(config):
            raise ExportError(
                f"{base_path} holds versions {versions} of a different model "
                f"(generator config in {marker} differs: {_comparable_config(existing)} "
                f"vs {_comparable_config(config)}); export to another base path"
            )
    elif versions:
        raise ExportError(
            f"{base_path} holds versions {versions} with no {MARKER_FILENAME}: not a keras_sagan export; "
            "export to another base path"
        )
    write_json_atomically(marker, {"generator": config})


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # Someone else's live process.
    return True


def remove_stray_temporaries(base_path: str) -> list[str]:
    """Removes the temporary directories of killed exports in `base_path`; returns their paths.

    One of another host's is kept (its process cannot be checked from here), as is one whose
    process still runs.
    """
    removed = []
    names = os.listdir(base_path) if os.path.isdir(base_path) else []
    for name in names:
        match = _TMP.fullmatch(name)
        if not match:
            continue
        host, pid = match.group("host"), match.group("pid")
        if host is not None and (host != socket.gethostname() or _process_alive(int(pid))):
            continue
        shutil.rmtree(os.path.join(base_path, name), ignore_errors=True)
        removed.append(os.path.join(base_path, name))
    return removed


def export_generator(
    generator_or_checkpoint, base_path: str | os.PathLike, version: int | None = None, step: int | None = None
) -> str:
    """Writes a generator as a TF Serving SavedModel at `base_path/<version>/`.

    The SavedModel is written into a temporary directory inside `base_path`
    and renamed into place, so a failed export leaves no partial version.
    An existing version is never overwritten. `base_path` gets a
    `keras_sagan_model.json` marker holding the generator config; exporting a
    different model (config other than in name, trainable or dtype) into a
    base path that already has versions is refused.

    Args:
        generator_or_checkpoint: a `Generator`; a `SAGAN` (its
            `ema_generator` when present, else its `generator`); or a
            checkpoint directory (see the module docstring: `config.json`
            plus its checkpoints, `keras_sagan.checkpoint`; EMA weights are
            preferred).
        base_path: str. The model's base directory, as in TF Serving's
            `base_path`. Created if missing.
        version: int >= 1 or None. None picks one more than the highest
            existing version (1 for the first).
        step: int or None. The training step of the weights, recorded in
            the version (`serving.EXPORT_RECORD`) so that a rerun can tell
            whether the latest version is up to date. None: the checkpoint's
            step when exporting a run directory, else unrecorded.

    Returns:
        The path of the written version directory.

    Example:

    >>> path = keras_sagan.export.export_generator(generator, "saved_models/celeba64_demo")
    >>> images = tf.saved_model.load(path).signatures["serving_default"](z=z)["images"]
    """
    if isinstance(generator_or_checkpoint, (str, os.PathLike)):
        loaded = load_generator(generator_or_checkpoint)  # One-line errors; an unreadable newest checkpoint falls back.
        step = loaded.step if step is None else step
    generator = resolve_generator(
        loaded if isinstance(generator_or_checkpoint, (str, os.PathLike)) else generator_or_checkpoint
    )
    check_finite_generator(generator, "the generator to export")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ValueError(f"version must be None or an int >= 1; received {version!r}.")
    base_path = os.path.abspath(os.fspath(base_path))
    os.makedirs(base_path, exist_ok=True)
    remove_stray_temporaries(base_path)
    config = generator.get_config()
    _check_marker(base_path, config)
    if version is None:
        versions = list_versions(base_path)
        version = versions[-1] + 1 if versions else 1
    target = os.path.join(base_path, str(version))
    if os.path.exists(target):
        raise ExportError(f"Version {version} already exists at {target}; refusing to overwrite it")

    module = serving_module(generator)
    signatures = {
        "serving_default": module.serving_default.get_concrete_function(),
        "sample": module.sample.get_concrete_function(),
    }
    if hasattr(module, "attention"):  # a generator with attention layers: maps for one query pixel
        signatures["attention"] = module.attention.get_concrete_function()
    tmp = os.path.join(base_path, f".tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}")
    try:
        try:
            tf.saved_model.save(module, tmp, signatures=signatures)
            if step is not None:
                os.makedirs(os.path.dirname(os.path.join(tmp, EXPORT_RECORD)), exist_ok=True)
                write_json_atomically(os.path.join(tmp, EXPORT_RECORD), {"step": int(step)})
        except (tf.errors.OpError, OSError) as err:
            full = isinstance(err, tf.errors.ResourceExhaustedError) or getattr(err, "errno", None) == errno.ENOSPC
            raise ExportError(
                f"cannot write the export to {base_path}"
                + (" (no space left on the device)" if full else "")
                + f": {one_line(err, 300)}; nothing was exported, the earlier versions are kept"
            ) from None
        if os.path.exists(target):  # Another export won the race.
            raise ExportError(f"Version {version} already exists at {target}; refusing to overwrite it")
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# -- ONNX and LiteRT ------------------------------------------------------------------------------


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
    tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}{suffix}")
    try:
        write(tmp)
        try:
            os.link(tmp, path)  # Fails if `path` appeared meanwhile: an atomic no-overwrite rename.
        except FileExistsError:
            raise ExportError(f"{path} already exists; refusing to overwrite it") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _input_signature(model):
    """The inference model's input signature, given explicitly: without it Keras' exporters require a
    model that has been called once ("The model provided has never called")."""
    import keras

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

    >>> keras_sagan.export.export_onnx("runs/celeba64_demo", "celeba64.onnx")
    >>> onnxruntime.InferenceSession("celeba64.onnx").run(["images"], {"z": z})
    """
    _check_exporter("onnx")
    generator = resolve_generator(generator_or_checkpoint)
    check_finite_generator(generator, "the generator to export")
    model = serving.inference_model(generator)
    signature = _input_signature(model)
    return _write_file(
        path, "onnx", lambda tmp: model.export(tmp, format="onnx", verbose=False, input_signature=signature)
    )


@contextlib.contextmanager
def _stderr_to(log):
    """Sends file descriptor 2 to `log` (TF's C++ logging and the converter's MLIR diagnostics go there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _convert_litert(model, tmp, batch_size):
    from tensorflow.lite.python.convert_phase import ConverterError  # Not in TF's public API.

    builtins = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}  # Any LiteRT interpreter runs them.
    with tempfile.TemporaryFile() as log:
        try:
            with _stderr_to(log):  # A refused conversion prints pages of MLIR diagnostics: a one-line error instead.
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
    model = serving.inference_model(generator, batch_size=batch_size)
    return _write_file(path, "litert", lambda tmp: _convert_litert(model, tmp, batch_size))


def export_model(
    generator_or_checkpoint,
    out: str | os.PathLike,
    format: str = "saved_model",
    version=None,
    batch_size=None,
    metadata=None,
) -> str:
    """Exports in one of `FORMATS`: `export_generator` (`out` a base path), `export_onnx`, `export_litert` or
    `preset_export.export_preset` (`out` a folder).

    `version` applies to `saved_model` only, `batch_size` to `litert` only and `metadata` to `preset`
    only; any given with another format is refused.
    """
    if format not in FORMATS:
        raise ExportError(f"`format` must be one of {FORMATS}; received: format={format!r}")
    if metadata is not None and format != "preset":
        raise ExportError(f"`metadata` applies to format 'preset' only; received: metadata with {format}")
    if version is not None and format != "saved_model":
        raise ExportError(
            f"`version` applies to format 'saved_model' only; received: version={version!r} with {format}"
        )
    if batch_size is not None and format != "litert":
        raise ExportError(f"`batch` applies to format 'litert' only; received: batch={batch_size!r} with {format}")
    if format == "onnx":
        return export_onnx(generator_or_checkpoint, out)
    if format == "litert":
        return export_litert(generator_or_checkpoint, out, batch_size=batch_size)
    if format == "preset":
        from keras_sagan.preset_export import export_preset

        return export_preset(generator_or_checkpoint, out, metadata=metadata)
    return export_generator(generator_or_checkpoint, out, version=version)
