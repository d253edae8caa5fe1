"""The training run directory: its layout, its checkpoints and its config file.

This module is the one place that spells a path inside a run. A run directory holds:

- `config.json`: `{"generator": ..., "discriminator": ..., "train": ...}`, the networks'
  `get_config()` and the `TrainConfig` the run used;
- `checkpoints/ckpt-<step>`: `tf.train.Checkpoint`s whose top-level objects are named by the
  `CHECKPOINT_*` constants below (`generator`, `discriminator`, `ema_generator` when EMA is on,
  both optimizers, the noise seed state and the step);
- `logs/` (TensorBoard; `logs/eval` for evaluation), `samples/` (sample grids), `export/` (the
  TF Serving base path) and `real_stats.npz` (the cache of the real-image statistics).

`RunDirectory(path)` names those paths, writes and reads the config, builds the checkpoint of a
`SAGAN` and its `CheckpointManager`, and finds and restores the newest *readable* checkpoint.
It also owns `run.lock`, the lock that keeps a second process off a run (`RunDirectory.lock`,
`keras_sagan.run_lock`).

Unreadable against another configuration: a checkpoint whose files are missing, truncated or
corrupt is *unreadable*; `readable_checkpoints` skips it with one warning line and the run
resumes from the newest readable one. A readable checkpoint whose objects do not fit the
networks is *another configuration*: `restore_newest_readable` refuses it in one line (falling
back past it would silently resume an older model of another shape). The probe of one
checkpoint format is `_unreadable_reason`; a second format (a backend-neutral one) adds its
own probe there and its prefixes in `checkpoint_prefixes`.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import trackable_object_graph_pb2

from keras_sagan.errors import UsageError, one_line
from keras_sagan.run_lock import RunLock

CONFIG_FILENAME = "config.json"
CHECKPOINTS_DIRNAME = "checkpoints"
LOGS_DIRNAME = "logs"
EVAL_LOGS_DIRNAME = "eval"
SAMPLES_DIRNAME = "samples"
EXPORT_DIRNAME = "export"
REAL_STATS_FILENAME = "real_stats.npz"
LOCK_FILENAME = "run.lock"
CHECKPOINT_STATE_FILENAME = "checkpoint"  # tf.train.CheckpointManager's index of its checkpoints.
_CHECKPOINT_FILE = re.compile(r"(ckpt-(\d+))\.(index|data-\d+-of-\d+)")

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


def make_checkpoint(gan) -> tf.train.Checkpoint:
    """A `tf.train.Checkpoint` of every piece of training state of `gan` (`checkpoint_objects`)."""
    return tf.train.Checkpoint(**checkpoint_objects(gan))


def checkpoint_children(prefix: str) -> dict[str, int]:
    """`{name: number of variables reachable from it}` for a checkpoint's top-level objects."""
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

    @property
    def lock_path(self) -> str:
        return os.path.join(self.path, LOCK_FILENAME)

    def lock(self, warn: Callable[[str], None] | None = None) -> RunLock:
        """Takes the run's lock (`keras_sagan.run_lock.RunLock`), creating the run directory.

        Use as a context manager. A run locked by a live process raises a one-line
        `RunDirectoryError` naming its PID and host; a stale lock is taken over with one `warn` line.
        """
        self.make()
        return RunLock(self.lock_path, error=RunDirectoryError, warn=warn).acquire()

    def make(self) -> None:
        """Creates the run directory; a path that exists and is not a directory is a one-line error."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirectoryError(
                f"`model_dir` must be a directory (or a path that does not exist yet); received: "
                f"model_dir={self.path!r}, which is a file"
            )
        os.makedirs(self.path, exist_ok=True)

    # -- the config ---------------------------------------------------------------------------

    def write_config(self, generator_config: dict, discriminator_config: dict, train_config: dict) -> None:
        """Writes `config.json` atomically, creating the run directory."""
        self.make()
        content = {"generator": generator_config, "discriminator": discriminator_config, "train": train_config}
        write_json_atomically(self.config_path, content)

    def read_config(self) -> dict:
        """The content of `config.json`: a dict with at least a `"generator"` config."""
        config = read_json(self.config_path)
        if not isinstance(config, dict) or not isinstance(config.get("generator"), dict):
            raise RunDirectoryError(f'{self.config_path} has no "generator" config')
        return config

    # -- checkpoints --------------------------------------------------------------------------

    def make_manager(self, checkpoint: tf.train.Checkpoint, keep: int) -> tf.train.CheckpointManager:
        """The `CheckpointManager` of `checkpoints/`, keeping the `keep` newest.

        A `checkpoint` index file that cannot be parsed is moved aside (`checkpoint.unreadable`)
        with one warning line: the manager starts a new index, and the checkpoint files stay.
        """
        state = os.path.join(self.checkpoints_dir, CHECKPOINT_STATE_FILENAME)
        if os.path.isfile(state) and not _indexed_prefixes(self.checkpoints_dir):
            try:
                tf.train.get_checkpoint_state(self.checkpoints_dir)
            except (tf.errors.OpError, ValueError, UnicodeDecodeError, DecodeError) as err:
                os.replace(state, f"{state}.unreadable")
                print(f"warning: {state} cannot be parsed ({one_line(err, 200)}); moved to {state}.unreadable")
        return tf.train.CheckpointManager(checkpoint, self.checkpoints_dir, max_to_keep=keep)

    def checkpoint_path(self, step: int) -> str:
        """The path prefix of the checkpoint of `step` (`checkpoints/ckpt-<step>`)."""
        return os.path.join(self.checkpoints_dir, f"ckpt-{step}")

    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint's path prefix (by step; readable or not), or None."""
        prefixes = self.checkpoint_prefixes()
        return prefixes[0] if prefixes else None

    def checkpoint_prefixes(self) -> list[str]:
        """Every checkpoint prefix on disk or in the `checkpoint` index, newest (highest step) first.

        A prefix named by the index whose files are all gone is listed too: it is unreadable, and
        `readable_checkpoints` says so. Old runs kept their checkpoints in the run directory itself.
        """
        for directory in (self.checkpoints_dir, self.path):
            found = {}
            names = os.listdir(directory) if os.path.isdir(directory) else []
            for name in names:
                match = _CHECKPOINT_FILE.fullmatch(name)
                if match:
                    found[int(match.group(2))] = os.path.join(directory, match.group(1))
            for path in _indexed_prefixes(directory):
                match = re.fullmatch(r"ckpt-(\d+)", os.path.basename(path))
                if match and os.path.dirname(os.path.abspath(path)) == os.path.abspath(directory):
                    found.setdefault(int(match.group(1)), os.path.join(directory, match.group(0)))
            if found:
                return [found[step] for step in sorted(found, reverse=True)]
        return []

    def readable_checkpoints(self, warn: Callable[[str], None] | None = None) -> Iterator[str]:
        """The readable checkpoint prefixes, newest first; each unreadable one skipped is told to `warn` in one line."""
        for prefix in self.checkpoint_prefixes():
            reason = _unreadable_reason(prefix)
            if reason is None:
                yield prefix
            elif warn is not None:
                warn(f"warning: checkpoint {prefix} is unreadable ({reason}); falling back to an older one")

    def newest_readable_checkpoint(self, warn: Callable[[str], None] | None = None) -> str | None:
        """The newest readable checkpoint prefix; None when there is none at all.

        Raises a one-line `RunDirectoryError` when there are checkpoints and none is readable.
        """
        prefixes = self.checkpoint_prefixes()
        found = next(self.readable_checkpoints(warn), None)
        if prefixes and found is None:
            raise RunDirectoryError(
                f"no readable checkpoint in {os.path.dirname(prefixes[0])}: {len(prefixes)} found, all missing "
                "files, truncated or corrupt; restore them from a backup or use another model_dir"
            )
        return found


def checkpoint_step(prefix: str) -> int | None:
    """The step in a checkpoint prefix's name (`.../ckpt-<step>`), or None."""
    match = re.fullmatch(r"ckpt-(\d+)", os.path.basename(prefix))
    return int(match.group(1)) if match else None


def _indexed_prefixes(directory: str) -> list[str]:
    """The prefixes the `checkpoint` index file names; [] when it is missing or cannot be parsed."""
    if not os.path.isfile(os.path.join(directory, CHECKPOINT_STATE_FILENAME)):
        return []
    try:
        state = tf.train.get_checkpoint_state(directory)
    except (tf.errors.OpError, ValueError, UnicodeDecodeError, DecodeError):
        return []  # A garbage index: the checkpoint files themselves are listed instead.
    if state is None:
        return []
    return [*state.all_model_checkpoint_paths, state.model_checkpoint_path]


def _unreadable_reason(prefix: str) -> str | None:
    """Why the `tf.train.Checkpoint` at `prefix` cannot be read (missing file, truncated, corrupt), or None.

    Every tensor is read, so a truncated or corrupt data file (TF checks each tensor's CRC) is
    found here rather than halfway through a restore.
    """
    if not os.path.isfile(f"{prefix}.index"):
        return f"{os.path.basename(prefix)}.index is missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except (tf.errors.OpError, ValueError, DecodeError, IndexError, UnicodeDecodeError) as err:
        return one_line(err, limit=200)
    return None


def restore_newest_readable(
    checkpoint: tf.train.Checkpoint, run: RunDirectory, warn: Callable[[str], None] | None = None
) -> str | None:
    """Restores `run`'s newest readable checkpoint into `checkpoint`; returns its path (None: none yet).

    Unreadable newer checkpoints are skipped with one `warn` line each. Every object of
    `checkpoint` must be in the file (a checkpoint may hold more, such as an EMA generator the
    run no longer uses); a readable checkpoint that does not fit is refused in one line.
    """
    path = run.newest_readable_checkpoint(warn)
    if path is None:
        return None
    restore_checkpoint(checkpoint, path)
    return path


def restore_checkpoint(checkpoint: tf.train.Checkpoint, path: str) -> None:
    """Restores the readable checkpoint `path` into `checkpoint`; another configuration is a one-line refusal."""
    try:
        status = checkpoint.restore(path)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as err:
        raise RunDirectoryError(
            f"cannot resume from {path}: it does not match this configuration ({one_line(err)}); "
            "use another model_dir or the settings the checkpoint was written with"
        ) from None


def restore_latest(checkpoint: tf.train.Checkpoint, manager: tf.train.CheckpointManager) -> str | None:
    """Restores the newest readable checkpoint of `manager.directory`'s run (`restore_newest_readable`)."""
    directory = os.path.abspath(manager.directory)
    run = RunDirectory(os.path.dirname(directory) if os.path.basename(directory) == CHECKPOINTS_DIRNAME else directory)
    return restore_newest_readable(checkpoint, run, warn=lambda line: print(line, flush=True))
