"""Reading the `tf.train.Checkpoint` files that runs wrote before the state-file format (`state_file`).

Such a run's `checkpoints/` holds `ckpt-<step>.index` + `ckpt-<step>.data-*` and TensorFlow's
`checkpoint` index file (runs older still kept them in the run directory itself). They are read here,
and only here: listed, probed (every tensor read against its CRC), their top-level objects counted, and
restored into a `SAGAN` or one network. Restoring needs the TensorFlow backend (`tf.train.Checkpoint`
matches TensorFlow variables); a run resumed once on TensorFlow continues in the new format, which every
backend reads. Nothing writes this format any more: `manager` rotates these files out like its own.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter

from keras_sagan import backend
from keras_sagan.checkpoint.names import NETWORKS
from keras_sagan.checkpoint.state_file import UnreadableCheckpoint
from keras_sagan.errors import one_line
from keras_sagan.run_directory import RunDirectoryError

INDEX_FILENAME = "checkpoint"  # tf.train.CheckpointManager's index of its checkpoints.
_FILE = re.compile(r"(ckpt-(\d+))\.(index|data-\d+-of-\d+)")
_INDEX_ENTRY = re.compile(r'^\s*(?:all_)?model_checkpoint_paths?\s*:\s*"([^"]*)"\s*$', re.MULTILINE)
_KILLED_SAVE = re.compile(r"ckpt-\d+_temp")  # tf.train.Checkpoint's folder while it saves.
_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def legacy_step(path: str) -> int | None:
    """The step of a legacy checkpoint prefix (`.../ckpt-<step>`), or None for another name."""
    match = re.fullmatch(r"ckpt-(\d+)", os.path.basename(path))
    return int(match.group(1)) if match else None


def indexed_prefixes(directory: str) -> list[str]:
    """The prefixes TensorFlow's `checkpoint` index file names ([] when missing or garbage); read without TF."""
    try:
        with open(os.path.join(directory, INDEX_FILENAME), encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError):
        return []
    return _INDEX_ENTRY.findall(text)


def list_legacy(directory: str) -> dict[int, str]:
    """`{step: prefix}` of the legacy checkpoints in `directory`: from their files and from the index file.

    A prefix the index names whose files are gone is listed too: probing it says it is unreadable.
    """
    found = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return {}
    for name in names:
        match = _FILE.fullmatch(name)
        if match:
            found[int(match.group(2))] = os.path.join(directory, match.group(1))
    here = os.path.abspath(directory)
    for path in indexed_prefixes(directory):
        step = legacy_step(path)
        # Entries are relative to the folder, or absolute (older TensorFlow): only this folder's count.
        if step is not None and os.path.dirname(os.path.abspath(os.path.join(directory, path))) == here:
            found.setdefault(step, os.path.join(directory, os.path.basename(path)))
    return found


def delete(prefix: str) -> None:
    """Removes a legacy checkpoint's files; the index file goes too, since it would name them."""
    directory, base = os.path.split(prefix)
    for name in os.listdir(directory):
        match = _FILE.fullmatch(name)
        if match and match.group(1) == base:
            os.remove(os.path.join(directory, name))
    index = os.path.join(directory, INDEX_FILENAME)
    if os.path.isfile(index):
        os.remove(index)  # Listing reads the files themselves; a stale index would name deleted checkpoints.


def remove_killed_saves(directory: str) -> list[str]:
    """Removes the `ckpt-<step>_temp/` folders TensorFlow left when a save was killed; returns their names."""
    removed = [name for name in os.listdir(directory) if _KILLED_SAVE.fullmatch(name)]
    for name in removed:
        shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    return removed


def _tf_errors(tf):
    from google.protobuf.message import DecodeError

    return (tf.errors.OpError, ValueError, DecodeError, IndexError, UnicodeDecodeError)


def _reader(prefix: str):
    """`(tf, reader, object graph)` of a legacy checkpoint, every tensor read; else `UnreadableCheckpoint`."""
    if not os.path.isfile(f"{prefix}.index"):
        raise UnreadableCheckpoint(f"cannot read checkpoint {prefix}: {os.path.basename(prefix)}.index is missing")
    if not backend.tensorflow_available():
        raise UnreadableCheckpoint(
            f"cannot read checkpoint {prefix}: a TensorFlow checkpoint, and TensorFlow is not installed"
        )
    import tensorflow as tf
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except _tf_errors(tf) as err:
        raise UnreadableCheckpoint(f"cannot read checkpoint {prefix}: {one_line(err, limit=200)}") from None
    return tf, reader, graph


def open_legacy(prefix: str) -> tuple[dict[str, int], dict[str, list[tuple]]]:
    """`(children, network shapes)` of a legacy checkpoint, after reading every tensor.

    `children` is `{top-level object: number of variables reachable from it}`; `network shapes` is
    `{network name: sorted variable shapes stored under its path}`.
    """
    _, reader, graph = _reader(prefix)

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

    children = {child.local_name: count_variables(child.node_id) for child in graph.nodes[0].children}
    shapes = {name: [] for name in NETWORKS}
    for key, shape in reader.get_variable_to_shape_map().items():
        name = key.split("/")[0]
        if name in shapes and key.endswith(_VALUE) and ".OPTIMIZER_SLOT" not in key:
            shapes[name].append(tuple(shape))
    return children, {name: sorted(found) for name, found in shapes.items() if found}


def restore_legacy(
    prefix: str, objects: dict, shapes: dict[str, list[tuple]], mismatch: str, advice: str = "", error=RunDirectoryError
) -> None:
    """Restores the legacy checkpoint `prefix` into `objects` (`{name: trackable}`), on the TensorFlow backend.

    Every object must be in the file (it may hold more). The networks' shapes are compared first, so a
    network of another size is one `error` line rather than TensorFlow's warning per unmatched value.
    A file that vanished meanwhile is an `UnreadableCheckpoint` (the caller falls back).
    """
    if not backend.restores_tensorflow_checkpoints():
        raise error(
            f"{prefix} is a TensorFlow checkpoint of an older keras_sagan, which the {backend.name()} backend cannot "
            "restore; load or resume it once with KERAS_BACKEND=tensorflow (a resumed run then saves the format every "
            "backend reads)"
        )
    for name, obj in objects.items():
        weights = getattr(obj, "weights", None)
        # What is stored under the network's own path must be among its shapes (a variable reachable
        # from two objects, an optimizer's too, is stored under one path only, so some may be elsewhere).
        if weights is not None and Counter(shapes.get(name, [])) - Counter(tuple(w.shape) for w in weights):
            raise error(f"{mismatch} ({name}'s variable shapes differ){advice}")
    import tensorflow as tf

    try:
        status = tf.train.Checkpoint(**objects).read(prefix)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except tf.errors.NotFoundError as err:
        raise UnreadableCheckpoint(f"cannot read checkpoint {prefix}: {one_line(err, limit=200)}") from None
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise error(f"{mismatch} ({one_line(err)}){advice}") from None
