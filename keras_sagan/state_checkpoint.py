"""The backend-neutral checkpoint format: every piece of training state in one `.npz` file.

`tf.train.Checkpoint` cannot hold JAX variables, so on backends other than TensorFlow a run
checkpoints through `StateCheckpoint`, and `StateCheckpointManager` gives it the interface of
`tf.train.CheckpointManager`. `keras_sagan.run_directory` owns the run layout and picks the kind
(`make_checkpoint`); this module is the file format.
"""

from __future__ import annotations

import os
import uuid
import zipfile

import keras
import numpy as np

from keras_sagan.errors import UsageError, one_line


class StateCheckpointError(UsageError):
    """A state checkpoint that cannot be read, or that does not match the model (one line)."""


STATE_SUFFIX = ".state.npz"
"""A checkpoint of the backend-neutral format: `checkpoints/ckpt-<step>.state.npz`."""
STATE_FORMAT = "keras_sagan.state/1"


def state_variables(objects) -> dict[str, list]:
    """`{name: [variables]}` of `{name: object}` (`run_directory.checkpoint_objects`, or a `SAGAN`).

    A network gives its `weights` (their order is fixed by construction, the same on every
    backend), an optimizer its `variables`, a variable itself.
    """
    if not isinstance(objects, dict):
        from keras_sagan.run_directory import checkpoint_objects

        objects = checkpoint_objects(objects)
    groups = {}
    for name, obj in objects.items():
        if isinstance(obj, keras.Variable):
            groups[name] = [obj]
        elif isinstance(obj, keras.optimizers.Optimizer):
            groups[name] = list(obj.variables)
        else:
            groups[name] = list(obj.weights)
    return groups


class StateCheckpoint:
    """Every piece of a `SAGAN`'s training state in one `.npz` file, on any Keras backend.

    `tf.train.Checkpoint` cannot hold JAX variables, so on JAX a run checkpoints through this:
    arrays keyed `<object>/<index>` (G, D, EMA G, both optimizers, the seed state, the step) plus a
    format tag, written to a temporary file and renamed into place (a crash never leaves half a
    checkpoint). `restore` checks every object's variable count and shapes first and assigns
    nothing on a mismatch.
    """

    def __init__(self, objects):
        self.objects = objects  # {name: network, optimizer or variable}, or a SAGAN

    def save(self, path: str) -> str:
        arrays = {"format": np.array(STATE_FORMAT)}
        for name, variables in state_variables(self.objects).items():
            for index, variable in enumerate(variables):
                arrays[f"{name}/{index:04d}"] = np.asarray(variable)
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def restore(self, path: str) -> str:
        stored = read_state(path)
        pairs = []
        for name, variables in state_variables(self.objects).items():
            keys = sorted(key for key in stored if key.startswith(f"{name}/"))
            if len(keys) != len(variables):
                raise StateCheckpointError(
                    f"cannot resume from {path}: it does not match this configuration ({name} has {len(keys)} "
                    f"variables there, {len(variables)} here); use another model_dir or the settings it was saved with"
                )
            for key, variable in zip(keys, variables):
                if tuple(stored[key].shape) != tuple(variable.shape):
                    raise StateCheckpointError(
                        f"cannot resume from {path}: it does not match this configuration ({key} has shape "
                        f"{tuple(stored[key].shape)}, {tuple(variable.shape)} here); use another model_dir"
                    )
                pairs.append((variable, stored[key]))
        for variable, value in pairs:
            variable.assign(value)
        return path


def read_state(path: str) -> dict[str, np.ndarray]:
    """The arrays of a `StateCheckpoint` file; an unreadable file is a one-line `StateCheckpointError`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise StateCheckpointError(f"cannot read checkpoint {path}: {one_line(err)}") from None
    if str(arrays.pop("format", "")) != STATE_FORMAT:
        raise StateCheckpointError(f"cannot read checkpoint {path}: not a {STATE_FORMAT} file")
    return arrays


def state_step(path: str) -> int | None:
    """The step in a state checkpoint's name (`ckpt-<step>.state.npz`), or None for another name."""
    name = os.path.basename(path)
    if not (name.startswith("ckpt-") and name.endswith(STATE_SUFFIX)):
        return None
    digits = name[len("ckpt-") : -len(STATE_SUFFIX)]
    return int(digits) if digits.isdigit() else None


def state_checkpoints(directory: str) -> list[str]:
    """The state checkpoints in `directory`, oldest step first."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = [(state_step(name), os.path.join(directory, name)) for name in names]
    return [path for step, path in sorted((s, p) for s, p in found if s is not None)]


class StateCheckpointManager:
    """`tf.train.CheckpointManager`'s interface over `StateCheckpoint` files: `save`, `latest_checkpoint`.

    Keeps the `max_to_keep` newest (by step), deleting older ones only after the new file is in
    place, as TensorFlow's manager does.
    """

    def __init__(self, checkpoint: StateCheckpoint, directory: str, max_to_keep: int):
        self.checkpoint = checkpoint
        self.directory = directory
        self.max_to_keep = max_to_keep

    @property
    def checkpoints(self) -> list[str]:
        return state_checkpoints(self.directory)

    @property
    def latest_checkpoint(self) -> str | None:
        found = self.checkpoints
        return found[-1] if found else None

    def save(self, checkpoint_number: int) -> str:
        os.makedirs(self.directory, exist_ok=True)
        path = self.checkpoint.save(os.path.join(self.directory, f"ckpt-{int(checkpoint_number)}{STATE_SUFFIX}"))
        for old in self.checkpoints[: -self.max_to_keep] if self.max_to_keep else []:
            os.remove(old)
        return path
