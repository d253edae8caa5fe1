"""Writes a trained generator as a TF Serving SavedModel version (`export_generator`).

`export_generator` writes `base_path/<version>/`, the layout TF Serving's model server watches,
with the `serving_default` and `sample` signatures of `keras_sagan.serving` (see there for their
inputs and outputs). The SavedModel loads with plain `tf.saved_model.load`; keras_sagan is not
needed to serve it. This module only writes: reading models back is `keras_sagan.loading`.

A run directory can be exported too: `keras_sagan.loading` builds its generator from
`config.json` and restores the latest checkpoint, the EMA weights when it has them.
"""

import errno
import json
import os
import re
import shutil
import socket
import uuid

import tensorflow as tf

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
            plus `tf.train.CheckpointManager` checkpoints; EMA weights are
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
