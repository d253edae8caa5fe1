"""Reading a run's checkpoint files, in both formats: listing, probing, the backend-neutral `.npz` format.

A run's `checkpoints/` holds TensorFlow checkpoints (`ckpt-<step>.index` + `.data-*`, and TF's
`checkpoint` index file) or, on other backends, state files (`ckpt-<step>.state.npz`, written by
`run_directory.StateCheckpoint`). This module reads them without building a network:

- `list_checkpoints(directory)`: `{step: path}` of both formats, from the files and TF's index;
- `unreadable_reason(path)`: why a checkpoint cannot be read (a missing file, truncation,
  corruption: every tensor or array is read), or None;
- `checkpoint_children(path)`: the top-level objects and their variable counts;
- `read_state`, `state_step`, `state_checkpoints`, `StateCheckpointManager`: the state format.

`keras_sagan.run_directory` builds on these (and re-exports them); it owns the layout.
TensorFlow is imported only for TensorFlow checkpoints.
"""

from __future__ import annotations

import os
import re
import zipfile

import numpy as np

from keras_sagan import backend
from keras_sagan.errors import UsageError, one_line

CHECKPOINT_STATE_FILENAME = "checkpoint"  # tf.train.CheckpointManager's index of its checkpoints.
_TF_CHECKPOINT_FILE = re.compile(r"(ckpt-(\d+))\.(index|data-\d+-of-\d+)")


class RunDirectoryError(UsageError):
    """A run directory, its config or a checkpoint that cannot be used (one line)."""


STATE_SUFFIX = ".state.npz"
"""A checkpoint of the backend-neutral format: `checkpoints/ckpt-<step>.state.npz`."""
STATE_FORMAT = "keras_sagan.state/1"


def read_state(path: str) -> dict[str, np.ndarray]:
    """The arrays of a `StateCheckpoint` file; an unreadable file is a one-line `RunDirectoryError`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise RunDirectoryError(f"cannot read checkpoint {path}: {one_line(err)}") from None
    if str(arrays.pop("format", "")) != STATE_FORMAT:
        raise RunDirectoryError(f"cannot read checkpoint {path}: not a {STATE_FORMAT} file")
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


def checkpoint_children(prefix: str) -> dict[str, int]:
    """`{name: number of variables reachable from it}` for a checkpoint's top-level objects."""
    if state_step(prefix) is not None:  # the backend-neutral format: its key names and tag, not its arrays
        try:
            with np.load(prefix, allow_pickle=False) as data:
                keys = data.files
                tag = str(data["format"]) if "format" in keys else ""
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise RunDirectoryError(f"cannot read checkpoint {prefix}: {one_line(err)}") from None
        if tag != STATE_FORMAT:
            raise RunDirectoryError(f"cannot read checkpoint {prefix}: not a {STATE_FORMAT} file")
        keys = [key for key in keys if key != "format"]
        counts = {}
        for key in keys:
            name = key.split("/")[0]
            counts[name] = counts.get(name, 0) + 1
        return counts
    tf = backend.require_tensorflow(f"reading the TensorFlow checkpoint {prefix}")
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    try:
        reader = tf.train.load_checkpoint(prefix)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except (tf.errors.OpError, ValueError, DecodeError, IndexError) as err:
        raise RunDirectoryError(f"cannot read checkpoint {prefix}: {one_line(err)}") from None

    def count_variables(node_id):
        # The whole object graph under the node: a variable can be stored under another object's
        # path (an optimizer's, say) and still belong here.
        seen, stack = set(), [node_id]
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(child.node_id for child in graph.nodes[node].children)
        return sum(any(a.name == "VARIABLE_VALUE" for a in graph.nodes[n].attributes) for n in seen)

    return {child.local_name: count_variables(child.node_id) for child in graph.nodes[0].children}


class StateCheckpointManager:
    """`tf.train.CheckpointManager`'s interface over `StateCheckpoint` files: `save`, `latest_checkpoint`.

    Keeps the `max_to_keep` newest (by step), deleting older ones only after the new file is in
    place, as TensorFlow's manager does.
    """

    def __init__(self, checkpoint, directory: str, max_to_keep: int):  # a run_directory.StateCheckpoint
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
        """Saves `ckpt-<checkpoint_number>.state.npz`; returns its path.

        In a multi-process JAX run only the chief (process 0) writes, and every process waits at a
        barrier until it has written and rotated, so no process reads a half-rotated folder.
        """
        path = os.path.join(self.directory, f"ckpt-{int(checkpoint_number)}{STATE_SUFFIX}")
        try:
            if backend.is_chief():
                os.makedirs(self.directory, exist_ok=True)
                self.checkpoint.save(path)
                for old in self.checkpoints[: -self.max_to_keep] if self.max_to_keep else []:
                    os.remove(old)
        finally:
            backend.wait_for_processes(f"keras_sagan checkpoint {int(checkpoint_number)}")
        return path


def _tf_errors():
    """The exceptions a damaged TensorFlow checkpoint raises while it is read."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    return (tf.errors.OpError, ValueError, DecodeError, IndexError, UnicodeDecodeError)


def indexed_prefixes(directory: str) -> list[str]:
    """The prefixes TF's `checkpoint` index file names; [] when it is missing or cannot be parsed."""
    if not os.path.isfile(os.path.join(directory, CHECKPOINT_STATE_FILENAME)) or not backend.tensorflow_available():
        return []
    import tensorflow as tf

    try:
        state = tf.train.get_checkpoint_state(directory)
    except _tf_errors():
        return []  # A garbage index: the checkpoint files themselves are listed instead.
    if state is None:
        return []
    return [*state.all_model_checkpoint_paths, state.model_checkpoint_path]


def set_aside_unparsable_index(directory: str) -> None:
    """Moves a TF `checkpoint` index file that cannot be parsed to `checkpoint.unreadable`, with one warning line.

    `tf.train.CheckpointManager` cannot start over such a file; the checkpoint files stay.
    """
    state = os.path.join(directory, CHECKPOINT_STATE_FILENAME)
    if not os.path.isfile(state) or indexed_prefixes(directory):
        return
    import tensorflow as tf

    try:
        tf.train.get_checkpoint_state(directory)
    except _tf_errors() as err:
        os.replace(state, f"{state}.unreadable")
        print(f"warning: {state} cannot be parsed ({one_line(err, 200)}); moved to {state}.unreadable")


def list_checkpoints(directory: str) -> dict[int, str]:
    """`{step: path}` of the checkpoints in `directory`: TF prefixes (files or index entries) and state files."""
    found = {}
    names = os.listdir(directory) if os.path.isdir(directory) else []
    for name in names:
        match = _TF_CHECKPOINT_FILE.fullmatch(name)
        if match:
            found[int(match.group(2))] = os.path.join(directory, match.group(1))
    for path in indexed_prefixes(directory):
        match = re.fullmatch(r"ckpt-(\d+)", os.path.basename(path))
        if match and os.path.dirname(os.path.abspath(path)) == os.path.abspath(directory):
            found.setdefault(int(match.group(1)), os.path.join(directory, match.group(0)))
    for path in state_checkpoints(directory):
        found.setdefault(state_step(path), path)
    return found


def unreadable_reason(path: str) -> str | None:
    """Why the checkpoint at `path` cannot be read (a missing file, truncated, corrupt), or None.

    Every tensor (TF: each checked against its CRC) or array is read, so damage is found here
    rather than halfway through a restore.
    """
    if state_step(path) is not None:
        try:
            read_state(path)
        except RunDirectoryError as err:
            return str(err).split(": ", 1)[-1][:200]
        return None
    if not os.path.isfile(f"{path}.index"):
        return f"{os.path.basename(path)}.index is missing"
    if not backend.tensorflow_available():
        return "a TensorFlow checkpoint, and TensorFlow is not installed"
    import tensorflow as tf
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except _tf_errors() as err:
        return one_line(err, limit=200)
    return None


def nonfinite_variables(variables) -> list[str]:
    """The paths (names) of the floating-point variables holding a NaN or an infinity."""
    bad = []
    for variable in variables:
        if "float" not in str(getattr(variable, "dtype", "")):
            continue
        if not np.all(np.isfinite(np.asarray(variable.numpy(), dtype=np.float64))):
            bad.append(getattr(variable, "path", None) or getattr(variable, "name", "?"))
    return bad


def checkpoint_step(path: str) -> int | None:
    """The step in a checkpoint's name (`.../ckpt-<step>` or `.../ckpt-<step>.state.npz`), or None."""
    name = os.path.basename(path)
    digits = name[len("ckpt-") :] if name.startswith("ckpt-") else ""
    return int(digits) if digits.isdigit() else state_step(path)
