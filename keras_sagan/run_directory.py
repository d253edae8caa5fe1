"""The training run directory: its layout, its checkpoints and its config file.

This module is the one place that spells a path inside a run. A run directory holds:

- `config.json`: `{"generator": ..., "discriminator": ..., "train": ...}`, the networks'
  `get_config()` and the `TrainConfig` the run used;
- `checkpoints/ckpt-<step>`: `tf.train.Checkpoint`s on TensorFlow, `ckpt-<step>.state.npz` files
  (`keras_sagan.state_checkpoint`) on other backends, whose top-level objects are named by the
  `CHECKPOINT_*` constants below (`generator`, `discriminator`, `ema_generator` when EMA is on,
  both optimizers, the noise seed state and the step);
- `logs/` (TensorBoard; `logs/eval` for evaluation), `samples/` (sample grids), `export/` (the
  TF Serving base path) and `real_stats.npz` (the cache of the real-image statistics).

`RunDirectory(path)` names those paths, writes and reads the config, builds the checkpoint of a
`SAGAN` and its `CheckpointManager`, and finds and restores the latest checkpoint.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from keras_sagan import backend
from keras_sagan.errors import UsageError, one_line
from keras_sagan.state_checkpoint import (
    STATE_SUFFIX,
    StateCheckpoint,
    StateCheckpointManager,
    read_state,
    state_checkpoints,
    state_step,
    state_variables,
)

CONFIG_FILENAME = "config.json"
CHECKPOINTS_DIRNAME = "checkpoints"
LOGS_DIRNAME = "logs"
EVAL_LOGS_DIRNAME = "eval"
SAMPLES_DIRNAME = "samples"
EXPORT_DIRNAME = "export"
REAL_STATS_FILENAME = "real_stats.npz"

# Names of the top-level objects of a run's checkpoint. Changing one breaks every old run's resume.
CHECKPOINT_STEP = "step"
CHECKPOINT_GENERATOR = "generator"
CHECKPOINT_DISCRIMINATOR = "discriminator"
CHECKPOINT_EMA_GENERATOR = "ema_generator"
CHECKPOINT_G_OPTIMIZER = "g_optimizer"
CHECKPOINT_D_OPTIMIZER = "d_optimizer"
CHECKPOINT_SEED_STATE = "seed_state"


class RunDirectoryError(UsageError):
    """A run directory, its config or a checkpoint that cannot be used (one line)."""


def checkpoint_objects(gan) -> dict[str, Any]:
    """`{name: trackable}` of every piece of a `SAGAN`'s training state, keyed as on disk.

    `step` is `g_optimizer.iterations` itself (saved once, reachable by two names). The
    `SeedGenerator` is not trackable, so its state variable is saved instead.
    """
    objects = {
        CHECKPOINT_STEP: gan.g_optimizer.iterations,
        CHECKPOINT_GENERATOR: gan.generator,
        CHECKPOINT_DISCRIMINATOR: gan.discriminator,
        CHECKPOINT_G_OPTIMIZER: gan.g_optimizer,
        CHECKPOINT_D_OPTIMIZER: gan.d_optimizer,
        CHECKPOINT_SEED_STATE: gan.seed_generator.state,
    }
    if gan.ema_generator is not None:
        objects[CHECKPOINT_EMA_GENERATOR] = gan.ema_generator
    return objects


def make_checkpoint(gan):
    """The checkpoint of every piece of training state of `gan` (`checkpoint_objects`).

    A `tf.train.Checkpoint` on TensorFlow; a `StateCheckpoint` (one `.npz` file) on other backends.
    """
    if not backend.is_tensorflow():
        return StateCheckpoint(checkpoint_objects(gan))
    import tensorflow as tf

    return tf.train.Checkpoint(**checkpoint_objects(gan))


def checkpoint_children(prefix: str) -> dict[str, int]:
    """`{name: number of variables reachable from it}` for a checkpoint's top-level objects."""
    if state_step(prefix) is not None:  # the backend-neutral format
        counts = {}
        for key in read_state(prefix):
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


def write_json_atomically(path: str, content: Any) -> None:
    """Writes `content` as indented JSON through a temporary file and a rename."""
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"  # Unique: two writers never share a temp file.
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(content, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path: str) -> Any:
    """The JSON content of `path`; a missing or unparsable file is a one-line `RunDirectoryError`."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise RunDirectoryError(f"cannot read {path}: {one_line(err)}") from None


class RunDirectory:
    """The paths and files of one training run (see the module docstring).

    Args:
        path: str or PathLike. The run directory (`--model_dir`). It need not exist yet.

    Example:

    >>> run = RunDirectory("runs/celeba64_demo")
    >>> run.latest_checkpoint()   # "runs/celeba64_demo/checkpoints/ckpt-800", or None
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return f"RunDirectory({self.path!r})"

    @classmethod
    def locate(cls, path: str | os.PathLike) -> RunDirectory:
        """The run directory of `path`: the run directory itself or its `checkpoints/` folder.

        Raises `RunDirectoryError` when `path` is not a directory, holds no checkpoint, or has no
        `config.json`.
        """
        path = os.path.abspath(os.fspath(path))
        if not os.path.isdir(path):
            raise RunDirectoryError(f"no such run directory: {path}")
        if os.path.basename(path) == CHECKPOINTS_DIRNAME and not os.path.isdir(os.path.join(path, CHECKPOINTS_DIRNAME)):
            path = os.path.dirname(path)
        run = cls(path)
        if run.latest_checkpoint() is None:
            raise RunDirectoryError(f"no checkpoint found in {run.checkpoints_dir}")
        if not os.path.isfile(run.config_path):
            raise RunDirectoryError(
                f"no {CONFIG_FILENAME} in {run.path}: not a keras_sagan run directory (the training run writes it)"
            )
        return run

    # -- the layout ---------------------------------------------------------------------------

    @property
    def config_path(self) -> str:
        return os.path.join(self.path, CONFIG_FILENAME)

    @property
    def checkpoints_dir(self) -> str:
        return os.path.join(self.path, CHECKPOINTS_DIRNAME)

    @property
    def logs_dir(self) -> str:
        return os.path.join(self.path, LOGS_DIRNAME)

    @property
    def eval_logs_dir(self) -> str:
        """A TensorBoard run of its own: a second event file in `logs/` would stop TensorBoard following the first."""
        return os.path.join(self.path, LOGS_DIRNAME, EVAL_LOGS_DIRNAME)

    @property
    def samples_dir(self) -> str:
        return os.path.join(self.path, SAMPLES_DIRNAME)

    @property
    def export_dir(self) -> str:
        return os.path.join(self.path, EXPORT_DIRNAME)

    @property
    def real_stats_path(self) -> str:
        return os.path.join(self.path, REAL_STATS_FILENAME)

    # -- the config ---------------------------------------------------------------------------

    def write_config(self, generator_config: dict, discriminator_config: dict, train_config: dict) -> None:
        """Writes `config.json` atomically, creating the run directory."""
        os.makedirs(self.path, exist_ok=True)
        content = {"generator": generator_config, "discriminator": discriminator_config, "train": train_config}
        write_json_atomically(self.config_path, content)

    def read_config(self) -> dict:
        """The content of `config.json`: a dict with at least a `"generator"` config."""
        config = read_json(self.config_path)
        if not isinstance(config, dict) or not isinstance(config.get("generator"), dict):
            raise RunDirectoryError(f'{self.config_path} has no "generator" config')
        return config

    # -- checkpoints --------------------------------------------------------------------------

    def make_manager(self, checkpoint, keep: int):
        """The checkpoint manager of `checkpoints/`, keeping the `keep` newest (by `make_checkpoint`'s kind)."""
        if isinstance(checkpoint, StateCheckpoint):
            return StateCheckpointManager(checkpoint, self.checkpoints_dir, max_to_keep=keep)
        import tensorflow as tf

        return tf.train.CheckpointManager(checkpoint, self.checkpoints_dir, max_to_keep=keep)

    def checkpoint_path(self, step: int) -> str:
        """The path prefix of the checkpoint of `step` (`checkpoints/ckpt-<step>`)."""
        return os.path.join(self.checkpoints_dir, f"ckpt-{step}")

    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint's path (prefix), or None: TensorFlow's, else the backend-neutral kind.

        Old runs kept TensorFlow checkpoints in the run directory itself.
        """
        if backend.tensorflow_available():
            import tensorflow as tf

            found = tf.train.latest_checkpoint(self.checkpoints_dir) or tf.train.latest_checkpoint(self.path)
            if found:
                return found
        states = state_checkpoints(self.checkpoints_dir)
        return states[-1] if states else None


def restore_latest(checkpoint, manager) -> str | None:
    """Restores `manager.latest_checkpoint` into `checkpoint`; returns its path (None: none yet).

    Every object of `checkpoint` must be in the file (a checkpoint may hold more, such as an EMA
    generator the run no longer uses). A mismatch raises a one-line `ValueError`; so does a
    checkpoint with no discriminator (a generator-only import), named as such.
    """
    path = manager.latest_checkpoint
    if path is None:
        return None
    if CHECKPOINT_DISCRIMINATOR not in checkpoint_children(path):
        # A generator-only run (`keras-sagan import-reference` without --discriminator).
        raise RunDirectoryError(
            f"cannot train from {path}: it holds no discriminator (a generator-only import); it can be exported, "
            "sampled and evaluated; import the reference's checkpoint again with --discriminator STEP_D.pth to train"
        )
    if isinstance(checkpoint, StateCheckpoint):
        return checkpoint.restore(path)
    import tensorflow as tf

    try:
        status = checkpoint.restore(path)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise RunDirectoryError(
            f"cannot resume from {path}: it does not match this configuration ({one_line(err)}); "
            "use another model_dir or the settings the checkpoint was written with"
        ) from None
    return path


__all__ = [
    "STATE_SUFFIX",
    "RunDirectory",
    "RunDirectoryError",
    "StateCheckpoint",
    "StateCheckpointManager",
    "checkpoint_children",
    "checkpoint_objects",
    "make_checkpoint",
    "read_json",
    "read_state",
    "restore_latest",
    "state_checkpoints",
    "state_step",
    "state_variables",
    "write_json_atomically",
]
