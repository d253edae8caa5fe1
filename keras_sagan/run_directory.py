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

A checkpoint with missing, truncated or corrupt files is *unreadable*: `readable_checkpoints`
skips it in one warning line (probes of both formats: `keras_sagan.checkpoint_files`). One that
reads but does not fit is *another configuration*: `restore_checkpoint` refuses it in one line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from keras_sagan import backend, checkpoint_files
from keras_sagan.atomic_file import atomic_write
from keras_sagan.checkpoint_files import (  # noqa: F401  (re-exported: the run directory's readers)
    CHECKPOINT_STATE_FILENAME,
    STATE_FORMAT,
    STATE_SUFFIX,
    RunDirectoryError,
    StateCheckpointManager,
    checkpoint_children,
    checkpoint_step,
    read_state,
    state_checkpoints,
    state_step,
)
from keras_sagan.errors import one_line
from keras_sagan.run_lock import RunLock

CONFIG_FILENAME = "config.json"
CHECKPOINTS_DIRNAME = "checkpoints"
LOGS_DIRNAME = "logs"
EVAL_LOGS_DIRNAME = "eval"
SAMPLES_DIRNAME = "samples"
EXPORT_DIRNAME = "export"
REAL_STATS_FILENAME = "real_stats.npz"
LOCK_FILENAME = "run.lock"

# Names of the top-level objects of a run's checkpoint. Changing one breaks every old run's resume.
CHECKPOINT_STEP = "step"
CHECKPOINT_GENERATOR = "generator"
CHECKPOINT_DISCRIMINATOR = "discriminator"
CHECKPOINT_EMA_GENERATOR = "ema_generator"
CHECKPOINT_G_OPTIMIZER = "g_optimizer"
CHECKPOINT_D_OPTIMIZER = "d_optimizer"
CHECKPOINT_SEED_STATE = "seed_state"


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
        return StateCheckpoint(gan)
    import tensorflow as tf

    return tf.train.Checkpoint(**checkpoint_objects(gan))


def write_json_atomically(path: str, content: Any) -> None:
    """Writes `content` as indented JSON through a temporary file and a rename."""
    with atomic_write(path, "w") as f:
        json.dump(content, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


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
        """Takes the run's lock (`run_lock.RunLock`; a context manager), creating the run directory.

        A live holder is a one-line `RunDirectoryError` naming its PID and host; a stale lock is taken over.
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

    def make_manager(self, checkpoint, keep: int):
        """The checkpoint manager of `checkpoints/`, keeping the `keep` newest (by `make_checkpoint`'s kind)."""
        if isinstance(checkpoint, StateCheckpoint):
            return StateCheckpointManager(checkpoint, self.checkpoints_dir, max_to_keep=keep)
        import tensorflow as tf

        checkpoint_files.set_aside_unparsable_index(self.checkpoints_dir)  # Else the manager cannot start.

        return tf.train.CheckpointManager(checkpoint, self.checkpoints_dir, max_to_keep=keep)

    def checkpoint_path(self, step: int) -> str:
        """The path prefix of the checkpoint of `step` (`checkpoints/ckpt-<step>`)."""
        return os.path.join(self.checkpoints_dir, f"ckpt-{step}")

    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint's path (by step, of either format; readable or not), or None."""
        prefixes = self.checkpoint_prefixes()
        return prefixes[0] if prefixes else None

    def checkpoint_prefixes(self) -> list[str]:
        """Every checkpoint path on disk or in TF's `checkpoint` index, newest (highest step) first.

        TensorFlow prefixes (`ckpt-<step>`) and state files (`ckpt-<step>.state.npz`) alike. A prefix
        the index names whose files are all gone is listed too: it is unreadable, and
        `readable_checkpoints` says so. Old runs kept their checkpoints in the run directory itself.
        """
        for directory in (self.checkpoints_dir, self.path):
            found = checkpoint_files.list_checkpoints(directory)
            if found:
                return [found[step] for step in sorted(found, reverse=True)]
        return []

    def readable_checkpoints(self, warn: Callable[[str], None] | None = None) -> Iterator[str]:
        """The readable checkpoint paths, newest first; each unreadable one skipped is told to `warn` in one line."""
        for path in self.checkpoint_prefixes():
            reason = checkpoint_files.unreadable_reason(path)
            if reason is None:
                yield path
            elif warn is not None:
                warn(f"warning: checkpoint {path} is unreadable ({reason}); falling back to an older one")

    def newest_readable_checkpoint(self, warn: Callable[[str], None] | None = None) -> str | None:
        """The newest readable checkpoint path; None when there is none at all.

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


def restore_newest_readable(checkpoint, run: RunDirectory, warn: Callable[[str], None] | None = None) -> str | None:
    """Restores `run`'s newest readable checkpoint into `checkpoint`; returns its path (None: none yet).

    Unreadable newer checkpoints are skipped with one `warn` line each; a readable checkpoint that
    does not fit is refused in one line (`restore_checkpoint`).
    """
    path = run.newest_readable_checkpoint(warn)
    if path is not None:
        restore_checkpoint(checkpoint, path)
    return path


def restore_latest(checkpoint, manager) -> str | None:
    """Restores the newest readable checkpoint of `manager.directory`'s run (`restore_newest_readable`)."""
    directory = os.path.abspath(manager.directory)
    run = RunDirectory(os.path.dirname(directory) if os.path.basename(directory) == CHECKPOINTS_DIRNAME else directory)
    return restore_newest_readable(checkpoint, run, warn=lambda line: print(line, flush=True))


def restore_checkpoint(checkpoint, path: str) -> str:
    """Restores the readable checkpoint `path` into `checkpoint`; returns `path`.

    Every object of `checkpoint` must be in the file (a checkpoint may hold more, such as an EMA
    generator the run no longer uses). A mismatch raises a one-line `RunDirectoryError`; so does
    a checkpoint with no discriminator (a generator-only import), named as such.
    """
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


# -- the backend-neutral checkpoint format (JAX) ------------------------------------------------


def state_variables(gan) -> dict[str, list]:
    """`{name: [variables]}` of every piece of a `SAGAN`'s state, keyed as `checkpoint_objects`.

    Networks give `weights` (their order is fixed by construction, the same on every backend),
    optimizers `variables`; `step` and `seed_state` are one variable each.
    """
    groups = {}
    for name, obj in checkpoint_objects(gan).items():
        if name in (CHECKPOINT_STEP, CHECKPOINT_SEED_STATE):
            groups[name] = [obj]
        elif name in (CHECKPOINT_G_OPTIMIZER, CHECKPOINT_D_OPTIMIZER):
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

    def __init__(self, gan):
        self.gan = gan

    def save(self, path: str) -> str:
        arrays = {"format": np.array(STATE_FORMAT)}
        for name, variables in state_variables(self.gan).items():
            for index, variable in enumerate(variables):
                arrays[f"{name}/{index:04d}"] = np.asarray(variable)
        with atomic_write(path) as f:  # A file object: NumPy adds no `.npz` suffix.
            np.savez(f, **arrays)
        return path

    def restore(self, path: str) -> str:
        stored = read_state(path)
        pairs = []
        for name, variables in state_variables(self.gan).items():
            keys = sorted(key for key in stored if key.startswith(f"{name}/"))
            if len(keys) != len(variables):
                raise RunDirectoryError(
                    f"cannot resume from {path}: it does not match this configuration ({name} has {len(keys)} "
                    f"variables there, {len(variables)} here); use another model_dir or the settings it was saved with"
                )
            for key, variable in zip(keys, variables):
                if tuple(stored[key].shape) != tuple(variable.shape):
                    raise RunDirectoryError(
                        f"cannot resume from {path}: it does not match this configuration ({key} has shape "
                        f"{tuple(stored[key].shape)}, {tuple(variable.shape)} here); use another model_dir"
                    )
                pairs.append((variable, stored[key]))
        for variable, value in pairs:
            variable.assign(value)
        return path
