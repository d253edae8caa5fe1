"""The training run directory: its layout and its config file.

This module is the one place that spells a path inside a run. A run directory holds:

- `config.json`: `{"generator": ..., "discriminator": ..., "train": ...}`, the networks'
  `get_config()` and the `TrainConfig` the run used;
- `checkpoints/`: the checkpoints (`ckpt-<step>.state.npz`; older runs: `tf.train.Checkpoint` files),
  owned by `keras_sagan.checkpoint`;
- `logs/` (TensorBoard; `logs/eval` for evaluation), `samples/` (sample grids), `export/` (the
  TF Serving base path) and `real_stats.npz` (the cache of the real-image statistics).

`RunDirectory(path)` names those paths and writes and reads the config. It also owns `run.lock`,
the lock that keeps a second process off a run (`RunDirectory.lock`, `keras_sagan.run_lock`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from keras_sagan.atomic_file import atomic_write
from keras_sagan.errors import UsageError, one_line, os_error_line
from keras_sagan.run_lock import RunLock

CONFIG_FILENAME = "config.json"
CHECKPOINTS_DIRNAME = "checkpoints"
LOGS_DIRNAME = "logs"
EVAL_LOGS_DIRNAME = "eval"
SAMPLES_DIRNAME = "samples"
EXPORT_DIRNAME = "export"
REAL_STATS_FILENAME = "real_stats.npz"
LOCK_FILENAME = "run.lock"


class RunDirectoryError(UsageError):
    """A run directory, its config or a checkpoint that cannot be used (one line)."""


def write_json_atomically(path: str, content: Any) -> None:
    """Writes `content` as indented JSON through a temporary file and a rename."""
    with atomic_write(path, "w") as f:
        json.dump(content, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


def missing_path_reason(path: str) -> str:
    """Why `path` cannot be opened: `"no such file or directory"`, or `"permission denied"` naming the folder.

    `os.path.exists` says False both for a path that is not there and for one inside a folder this user
    may not search; only the first is "no such" path.
    """
    path = os.path.abspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    while folder and not os.path.isdir(folder):
        folder = os.path.dirname(folder) if os.path.dirname(folder) != folder else ""
    if folder and (not os.access(folder, os.R_OK | os.X_OK)):
        return f"permission denied: {folder} cannot be read by this user"
    return "no such file or directory"


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
    >>> run.checkpoints_dir
    'runs/celeba64_demo/checkpoints'
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def __repr__(self) -> str:
        return f"RunDirectory({self.path!r})"

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
        try:
            return RunLock(self.lock_path, error=RunDirectoryError, warn=warn).acquire()
        except OSError as err:
            raise RunDirectoryError(f"cannot lock model_dir {self.path}: {os_error_line(err)}") from None

    def make(self) -> None:
        """Creates the run directory; a path that exists and is not a directory is a one-line error."""
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunDirectoryError(
                f"`model_dir` must be a directory (or a path that does not exist yet); received: "
                f"model_dir={self.path!r}, which is a file"
            )
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as err:  # A name too long, a parent that is a file, no permission, a full disk.
            raise RunDirectoryError(f"cannot create model_dir {self.path}: {os_error_line(err)}") from None

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
