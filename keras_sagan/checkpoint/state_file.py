"""The checkpoint format: `ckpt-<step>.state.npz`, every variable of a run's state plus a JSON record.

An uncompressed NumPy `.npz` (a zip of `.npy` arrays, read with `allow_pickle=False`):

- `format`: `STATE_FORMAT`;
- `<object>/<index>`: the variables of each object of `names.checkpoint_objects` (`generator/0000`,
  `g_optimizer/0012`, `step/0000`, ...), in `names.object_variables` order;
- `record` (absent in files written before it existed): a JSON string, `{"generator": config,
  "discriminator": config, "train": TrainConfig.to_dict()}`, so that the resume rules do not depend
  on `config.json` being there and intact.

The file is written to a temporary beside it and renamed into place (`atomic_file.atomic_write`), so a
reader sees a whole checkpoint or none.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile

import numpy as np

from keras_sagan.atomic_file import atomic_write
from keras_sagan.errors import one_line
from keras_sagan.run_directory import RunDirectoryError

STATE_SUFFIX = ".state.npz"
STATE_FORMAT = "keras_sagan.state/1"
_FORMAT_KEY = "format"
_RECORD_KEY = "record"


class UnreadableCheckpoint(RunDirectoryError):
    """A checkpoint that is missing (rotated away, say), truncated or corrupt: readers fall back to an older one."""


@dataclasses.dataclass
class StateFile:
    """The content of one state file.

    Attributes:
        groups: `{object name: [arrays]}` in stored order.
        record: the JSON record (a dict), or None for a file written before records.
    """

    groups: dict[str, list[np.ndarray]]
    record: dict | None


def write_state(path: str, groups: dict[str, list], record: dict | None) -> str:
    """Writes `{object name: [arrays]}` and `record` to `path` atomically; returns `path`."""
    arrays = {_FORMAT_KEY: np.array(STATE_FORMAT)}
    if record is not None:
        arrays[_RECORD_KEY] = np.array(json.dumps(record, sort_keys=True, default=str))
    for name, values in groups.items():
        for index, value in enumerate(values):
            arrays[f"{name}/{index:04d}"] = np.asarray(value)
    with atomic_write(path) as f:  # A file object: NumPy adds no `.npz` suffix.
        np.savez(f, **arrays)
    return path


def read_state(path: str) -> StateFile:
    """Every array of the state file `path` (so damage shows here); else a one-line `UnreadableCheckpoint`."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UnreadableCheckpoint(f"cannot read checkpoint {path}: {one_line(err)}") from None
    if str(arrays.pop(_FORMAT_KEY, "")) != STATE_FORMAT:
        raise UnreadableCheckpoint(f"cannot read checkpoint {path}: not a {STATE_FORMAT} file")
    record = None
    if _RECORD_KEY in arrays:
        try:
            record = json.loads(str(arrays.pop(_RECORD_KEY)))
        except ValueError as err:
            raise UnreadableCheckpoint(f"cannot read checkpoint {path}: its record is not JSON ({err})") from None
    groups: dict[str, list] = {}
    for key in sorted(arrays):
        groups.setdefault(key.split("/")[0], []).append(arrays[key])
    return StateFile(groups, record if isinstance(record, dict) else None)


def state_step(path: str) -> int | None:
    """The step in a state file's name (`ckpt-<step>.state.npz`), or None for another name."""
    name = os.path.basename(path)
    if not (name.startswith("ckpt-") and name.endswith(STATE_SUFFIX)):
        return None
    digits = name[len("ckpt-") : -len(STATE_SUFFIX)]
    return int(digits) if digits.isdigit() else None
