"""absl flags generated from `TrainConfig`'s fields: one flag per field, plus `--config FILE`.

Nothing here names a setting: each field's name, default, help text, type and choices make its
flag (`DEFINE_enum` where the field has choices, so `--jit_compile` takes `auto|true|false`),
grouped by the field's section for `--helpfull`. `keras-sagan train` and
`examples/train_celeba.py` both use these flags, so they take exactly the same ones.

`--config FILE` reads a run's `config.json` (its `"train"` section; a run directory works too)
or a JSON object of `TrainConfig` fields; flags given on the command line, directly or through
absl's `--flagfile`, override the file's values.

Example:

```python
fv = flags.FlagValues()
define_flags(fv)
fv(["train", "--steps=100", "--config=runs/celeba64_demo/config.json"])
config = config_from_flags(fv)
```
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from absl import flags

from keras_sagan.errors import UsageError, bad_value
from keras_sagan.run_directory import RunDirectory, read_json
from keras_sagan.training.config import FieldInfo, TrainConfig, fields_info

GROUP = "keras-sagan train"
"""Prefix of the flag groups in `--helpfull`: `keras-sagan train (data)`, ..."""
CONFIG_FLAG = "config"


def _flag_text(value: Any) -> str | None:
    """How a choice is spelled on the command line: `True` is `true`, `64` is `64`."""
    if value is None:
        return None
    return str(value).lower() if isinstance(value, bool) else str(value)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """Defines one flag per `TrainConfig` field, and `--config`, on `flag_values`."""
    for info in fields_info():
        kwargs = {"flag_values": flag_values, "module_name": f"{GROUP} ({info.section})"}
        # absl prints "(default: ...)" only for set defaults; say so for the others too.
        text = info.help if info.default is not None else f"{info.help} (default: unset)"
        if info.choices is not None:
            choices = [_flag_text(choice) for choice in info.choices]
            flags.DEFINE_enum(info.name, _flag_text(info.default), choices, text, **kwargs)
        elif info.types == (bool,):
            flags.DEFINE_boolean(info.name, info.default, text, **kwargs)
        elif info.types == (int,):
            flags.DEFINE_integer(info.name, info.default, text, **kwargs)
        elif info.types == (float,):
            flags.DEFINE_float(info.name, info.default, text, **kwargs)
        elif info.types == (str,):
            flags.DEFINE_string(info.name, info.default, text, **kwargs)
        else:  # A new field type needs a rule here, not a hand-written flag.
            raise TypeError(f"no flag type for TrainConfig.{info.name}: {info.types}")
    flags.DEFINE_string(
        CONFIG_FLAG,
        None,
        "Replay a run: its config.json (or run directory), or a JSON object of TrainConfig fields. "
        "Flags given on the command line override the file's values. (default: unset)",
        flag_values=flag_values,
        module_name=f"{GROUP} (replay)",
    )


def _from_flag(info: FieldInfo, value: Any) -> Any:
    if info.choices is None or value is None:
        return value
    return {_flag_text(choice): choice for choice in info.choices}[value]


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The `TrainConfig` fields of `path`: a run's `config.json` (or run directory), or a JSON of fields.

    Raises:
        UsageError: one line, when the file cannot be read or holds no object of fields.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = RunDirectory(path).config_path
    if not os.path.isfile(path):
        raise UsageError(bad_value(CONFIG_FLAG, path, "a run's config.json or run directory, or a JSON file"))
    content = read_json(path)
    if isinstance(content, dict) and isinstance(content.get("train"), dict):
        content = content["train"]  # A run's config.json: {"generator": ..., "discriminator": ..., "train": ...}.
    if not isinstance(content, dict):
        raise UsageError(bad_value(CONFIG_FLAG, path, "a JSON object of TrainConfig fields"))
    return content


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> TrainConfig:
    """The `TrainConfig` of parsed flags: `--config`'s values, overridden by the flags that were given."""
    values = read_config_file(flag_values[CONFIG_FLAG].value) if flag_values[CONFIG_FLAG].value else {}
    for info in fields_info():
        flag = flag_values[info.name]
        if flag.present or info.name not in values:
            values[info.name] = _from_flag(info, flag.value)
    return TrainConfig.from_dict(values)


def new_flag_values() -> flags.FlagValues:
    """A fresh `FlagValues` holding only the training flags (no global state)."""
    flag_values = flags.FlagValues()
    define_flags(flag_values)
    return flag_values


def parse(argv: Sequence[str], flag_values: flags.FlagValues | None = None) -> TrainConfig:
    """Parses `argv` (program name first, absl's convention) into a `TrainConfig`.

    Raises:
        absl.flags.Error: an unknown flag or a value its flag cannot parse (one line).
        UsageError: a positional argument, or a bad setting (`TrainConfig`'s checks).
    """
    flag_values = new_flag_values() if flag_values is None else flag_values
    remaining = flag_values(list(argv))
    if len(remaining) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(remaining[1:])} (every setting is a --flag=value)")
    return config_from_flags(flag_values)
