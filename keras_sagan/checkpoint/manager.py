"""`CheckpointManager`: saves a run's state files (the chief writes), keeps the newest few, clears leftovers.

Every process of a distributed run calls `save` at the same steps: reading a variable can be a collective
op (TensorFlow's sync-on-read variables under `MultiWorkerMirroredStrategy`), so all of them read, and
only the chief (`chief=True`) writes the file. Whether a process is the chief is decided by the caller
once (`training/loop.py`, from the strategy), so this is the one place a checkpoint is written.
"""

from __future__ import annotations

import os
import shutil

import numpy as np

from keras_sagan import backend
from keras_sagan.atomic_file import is_temporary
from keras_sagan.checkpoint import legacy
from keras_sagan.checkpoint.names import checkpoint_objects, object_variables
from keras_sagan.checkpoint.reading import list_checkpoints
from keras_sagan.checkpoint.state_file import STATE_SUFFIX, state_step, write_state


class CheckpointManager:
    """Saves `gan`'s training state as `directory/ckpt-<step>.state.npz`, keeping the `max_to_keep` newest.

    A save first removes what killed saves left in `directory` (`*.tmp-*` temporaries, TensorFlow's
    `ckpt-<step>_temp/`), then writes the new file atomically, then deletes the checkpoints beyond the
    `max_to_keep` newest by step, of either format, whether or not an index names them. A crash at any
    point leaves the previous checkpoints readable.

    Args:
        gan: the `SAGAN` (or any object with the attributes `names.checkpoint_objects` reads).
        directory: str. The run's `checkpoints/` folder.
        max_to_keep: int. Checkpoints kept; 0 or None keeps all.
        chief: bool. Whether this process writes; others only take part in the reads. Defaults to `True`.
        record: dict or None. The JSON record saved in each file (`state_file`); settable later.
        objects: `{name: object}` to save, or None for all of `names.checkpoint_objects(gan)`.

    Example:

    >>> manager = CheckpointManager(gan, run.checkpoints_dir, max_to_keep=5, record=record)
    >>> manager.save(100)
    'runs/try/checkpoints/ckpt-100.state.npz'
    """

    def __init__(self, gan, directory: str, max_to_keep: int | None, chief: bool = True, record=None, objects=None):
        self.gan = gan
        self.directory = os.fspath(directory)
        self.max_to_keep = max_to_keep
        self.chief = chief
        self.record = record
        self.objects = objects

    @property
    def checkpoints(self) -> list[str]:
        """The checkpoint paths in `directory`, oldest step first."""
        found = list_checkpoints(self.directory)
        return [found[step] for step in sorted(found)]

    @property
    def latest_checkpoint(self) -> str | None:
        found = self.checkpoints
        return found[-1] if found else None

    def save(self, checkpoint_number: int) -> str:
        """Saves the state numbered `checkpoint_number`; returns the file's path (written by the chief only)."""
        if hasattr(self.gan, "sampling_generator"):
            self.gan.sampling_generator()  # The EMA generator is saved with the statistics it samples with.
        objects = self.objects if self.objects is not None else checkpoint_objects(self.gan)
        groups = {name: [np.asarray(v) for v in object_variables(name, obj)] for name, obj in objects.items()}
        path = os.path.join(self.directory, f"ckpt-{int(checkpoint_number)}{STATE_SUFFIX}")
        try:
            if self.chief:
                os.makedirs(self.directory, exist_ok=True)
                self.remove_leftovers()
                write_state(path, groups, self.record)
                self.rotate()
        finally:
            # A multi-process JAX run: every process waits until the chief has written and rotated, so none
            # reads a half-rotated folder (a no-op in one process and on the other backends).
            backend.wait_for_processes(f"keras_sagan checkpoint {int(checkpoint_number)}")
        return path

    def remove_leftovers(self) -> None:
        """Removes the temporaries of killed saves (ours and TensorFlow's) from `directory`."""
        for name in os.listdir(self.directory):
            if is_temporary(name):
                path = os.path.join(self.directory, name)
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
        legacy.remove_killed_saves(self.directory)

    def rotate(self) -> None:
        """Deletes every checkpoint but the `max_to_keep` newest by step, of either format."""
        if not self.max_to_keep:
            return
        for path in self.checkpoints[: -self.max_to_keep]:
            if state_step(path) is not None:
                os.remove(path)
            else:
                legacy.delete(path)
