"""Finding, opening and restoring a run's checkpoints, with the fallback to the newest readable one.

Both formats are listed (`state_file`, and `legacy` for older runs); a checkpoint is *opened* by reading
all of it, so a missing, truncated or corrupt one (*unreadable*) is found before anything is assigned,
and a reader falls back to the next older one (`open_newest`). A checkpoint rotated away by a run that
is training right now, between listing and reading, is such a case too. One that reads but does not
fit the networks (*another configuration*) is refused in one line, never skipped.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from keras_sagan.checkpoint import legacy
from keras_sagan.checkpoint.names import CHECKPOINT_DISCRIMINATOR, checkpoint_objects, object_variables
from keras_sagan.checkpoint.state_file import STATE_SUFFIX, StateFile, UnreadableCheckpoint, read_state, state_step
from keras_sagan.run_directory import (
    CHECKPOINTS_DIRNAME,
    CONFIG_FILENAME,
    RunDirectory,
    RunDirectoryError,
    missing_path_reason,
)

_OTHER_SETTINGS = "; use another model_dir or the settings the checkpoint was written with"


def checkpoint_step(path: str) -> int | None:
    """The step in a checkpoint's name (`.../ckpt-<step>.state.npz` or a legacy `.../ckpt-<step>`), or None."""
    step = state_step(path)
    return step if step is not None else legacy.legacy_step(path)


def list_checkpoints(directory: str) -> dict[int, str]:
    """`{step: path}` of the checkpoints in `directory`, both formats (a state file wins at the same step)."""
    found = legacy.list_legacy(directory)
    try:
        names = os.listdir(directory)
    except OSError:
        names = []
    for name in names:
        step = state_step(name)
        if step is not None:
            found[step] = os.path.join(directory, name)
    return found


def checkpoint_paths(run: RunDirectory) -> list[str]:
    """Every checkpoint path of `run`, newest (highest step) first; readable or not.

    Old runs kept their checkpoints in the run directory itself.
    """
    for directory in (run.checkpoints_dir, run.path):
        found = list_checkpoints(directory)
        if found:
            return [found[step] for step in sorted(found, reverse=True)]
    return []


def latest_checkpoint(run: RunDirectory) -> str | None:
    """The newest checkpoint path of `run` (readable or not), or None."""
    paths = checkpoint_paths(run)
    return paths[0] if paths else None


def checkpoint_path(run: RunDirectory, step: int) -> str:
    """The path of the checkpoint a save at `step` writes (`checkpoints/ckpt-<step>.state.npz`)."""
    return os.path.join(run.checkpoints_dir, f"ckpt-{int(step)}{STATE_SUFFIX}")


def _on_disk(path: str) -> bool:
    return os.path.isfile(path if state_step(path) is not None else f"{path}.index")


@dataclasses.dataclass
class OpenedCheckpoint:
    """A checkpoint read whole: its objects, its record, and `restore` into networks and optimizers.

    Attributes:
        path: str. The file (or legacy prefix).
        children: `{object name: number of variables}`.
        record: the configuration the run saved with it (`state_file`), or None (a legacy or older file).
    """

    path: str
    children: dict[str, int]
    record: dict | None
    _state: StateFile | None = None
    _shapes: dict | None = None

    @property
    def step(self) -> int | None:
        return checkpoint_step(self.path)

    def restore(self, objects: dict[str, Any], mismatch: str, advice: str = "", error=RunDirectoryError) -> None:
        """Assigns the stored values to `objects` (`{name: network, optimizer or variable}`).

        Every object must be stored with the same number of variables of the same shapes (the file may
        hold more objects); else nothing is assigned and `error` is raised: `"{mismatch} (detail){advice}"`.
        """
        if self._state is None:
            legacy.restore_legacy(self.path, objects, self._shapes or {}, mismatch, advice, error)
            return
        pairs = []
        for name, obj in objects.items():
            variables = object_variables(name, obj)
            stored = self._state.groups.get(name)
            if stored is None:
                raise error(f"{mismatch} (it holds no {name}){advice}")
            if len(stored) != len(variables):
                raise error(f"{mismatch} ({name} has {len(stored)} variables there, {len(variables)} here){advice}")
            for index, (value, variable) in enumerate(zip(stored, variables)):
                if tuple(value.shape) != tuple(variable.shape):
                    raise error(
                        f"{mismatch} ({name}/{index:04d} has shape {tuple(value.shape)} there, "
                        f"{tuple(variable.shape)} here){advice}"
                    )
                pairs.append((variable, value))
        for variable, value in pairs:
            variable.assign(value)


def open_checkpoint(path: str) -> OpenedCheckpoint:
    """Reads the checkpoint `path` whole; a missing, truncated or corrupt one is an `UnreadableCheckpoint`."""
    if state_step(path) is not None:
        state = read_state(path)
        children = {name: len(values) for name, values in state.groups.items()}
        return OpenedCheckpoint(path, children, state.record, _state=state)
    children, shapes = legacy.open_legacy(path)
    return OpenedCheckpoint(path, children, None, _shapes=shapes)


def unreadable_reason(path: str) -> str | None:
    """Why the checkpoint `path` cannot be read (a missing file, truncation, corruption), or None."""
    try:
        open_checkpoint(path)
    except UnreadableCheckpoint as err:
        return str(err).split(": ", 1)[-1][:200]
    return None


def checkpoint_children(path: str) -> dict[str, int]:
    """`{top-level object: number of variables}` of the checkpoint `path` (read whole)."""
    return open_checkpoint(path).children


def open_newest(
    run: RunDirectory,
    warn: Callable[[str], None] | None = None,
    use: Callable[[OpenedCheckpoint], Any] | None = None,
) -> tuple[OpenedCheckpoint | None, Any]:
    """`(checkpoint, use(checkpoint))` for the newest readable checkpoint of `run`; `(None, None)` when it has none.

    Each unreadable checkpoint is told to `warn` in one line and the next older one is tried, also when
    `use` finds it gone (a legacy checkpoint is read again by its restore). When every listed checkpoint
    vanished meanwhile (a training run rotated them), the run is listed again. Raises a one-line
    `RunDirectoryError` when there are checkpoints and none is readable; other errors of `use` (another
    configuration) propagate.
    """
    paths = []
    for _ in range(3):
        paths = checkpoint_paths(run)
        if not paths:
            return None, None
        vanished = False
        for path in paths:
            listed = _on_disk(path)
            try:
                opened = open_checkpoint(path)
                return opened, (use(opened) if use is not None else None)
            except UnreadableCheckpoint as err:
                if listed and not _on_disk(path):
                    vanished = True  # Rotated away meanwhile: not damage, say nothing.
                elif warn is not None:
                    reason = str(err).split(": ", 1)[-1][:200]
                    warn(f"warning: checkpoint {path} is unreadable ({reason}); falling back to an older one")
        if not vanished:
            break
    raise RunDirectoryError(
        f"no readable checkpoint in {os.path.dirname(paths[0])}: {len(paths)} found, all missing files, truncated "
        "or corrupt; restore them from a backup or use another model_dir"
    )


def restore_gan(gan, checkpoint: OpenedCheckpoint) -> str:
    """Restores every piece of `gan`'s training state from `checkpoint`; returns its path.

    A checkpoint without a discriminator (a generator-only import) or of another configuration is
    refused in one `RunDirectoryError` line.
    """
    if CHECKPOINT_DISCRIMINATOR not in checkpoint.children:
        # A generator-only run (`keras-sagan import-reference` without --discriminator).
        raise RunDirectoryError(
            f"cannot train from {checkpoint.path}: it holds no discriminator (a generator-only import); it can be "
            "exported, sampled and evaluated; import the reference's checkpoint again with --discriminator "
            "STEP_D.pth to train"
        )
    mismatch = f"cannot resume from {checkpoint.path}: it does not match this configuration"
    checkpoint.restore(checkpoint_objects(gan), mismatch, _OTHER_SETTINGS)
    return checkpoint.path


def restore_path(gan, path: str) -> str:
    """Restores the checkpoint `path` into `gan` (`restore_gan`); an unreadable one is a one-line error."""
    return restore_gan(gan, open_checkpoint(path))


def locate_run(path: str | os.PathLike) -> RunDirectory:
    """The run directory of `path` (the run directory itself or its `checkpoints/` folder), checked for use.

    Raises a one-line `RunDirectoryError` when `path` is not a directory (or cannot be read), holds no
    checkpoint, or has no `config.json`.
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path) or not os.access(path, os.R_OK | os.X_OK):
        reason = missing_path_reason(path)
        raise RunDirectoryError(f"no such run directory: {path}" if reason.startswith("no such") else reason)
    if os.path.basename(path) == CHECKPOINTS_DIRNAME and not os.path.isdir(os.path.join(path, CHECKPOINTS_DIRNAME)):
        path = os.path.dirname(path)
    run = RunDirectory(path)
    if latest_checkpoint(run) is None:
        raise RunDirectoryError(f"no checkpoint found in {run.checkpoints_dir}")
    if not os.path.isfile(run.config_path):
        raise RunDirectoryError(
            f"no {CONFIG_FILENAME} in {run.path}: not a keras_sagan run directory (the training run writes it)"
        )
    return run
