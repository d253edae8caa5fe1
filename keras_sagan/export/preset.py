"""Writing a preset from a training run (either checkpoint format), a `.keras` file or a model in memory.

`export_preset` is what `keras-sagan export --format preset` runs: it restores every network a run's
newest readable checkpoint holds (`load_run_networks`: the generator, the EMA generator and the
discriminator) and writes them with `preset_format.save_preset`.
"""

from __future__ import annotations

import os
import sys

from keras_sagan.checkpoint.names import CHECKPOINT_DISCRIMINATOR, CHECKPOINT_EMA_GENERATOR, CHECKPOINT_GENERATOR
from keras_sagan.checkpoint.reading import OpenedCheckpoint, checkpoint_step, locate_run, open_newest
from keras_sagan.export.formats import ExportError
from keras_sagan.export.loading import (
    ModelLoadError,
    build_network,
    check_finite_generator,
    load_generator,
    resolve,
    restore_network,
)
from keras_sagan.models.discriminator import Discriminator
from keras_sagan.models.generator import Generator
from keras_sagan.preset_format import save_preset
from keras_sagan.run_directory import CONFIG_FILENAME


def load_run_networks(directory: str) -> tuple[dict, str]:
    """`({object name: network}, checkpoint_prefix)`: every network of a run's newest readable checkpoint.

    The names are the checkpoint's (`generator`, and `ema_generator` and `discriminator` when the
    checkpoint holds them); each network is built from `config.json` and restored, in both
    checkpoint formats.
    """
    run = locate_run(directory)
    config = run.read_config()

    def restore(checkpoint: OpenedCheckpoint) -> dict:
        children = checkpoint.children
        if CHECKPOINT_GENERATOR not in children:
            raise ModelLoadError(f"checkpoint {checkpoint.path} holds no generator (objects: {sorted(children)})")
        networks = {}
        for key, cls, section in (
            (CHECKPOINT_GENERATOR, Generator, "generator"),
            (CHECKPOINT_EMA_GENERATOR, Generator, "generator"),
            (CHECKPOINT_DISCRIMINATOR, Discriminator, "discriminator"),
        ):
            if key not in children or not isinstance(config.get(section), dict):
                continue
            network = build_network(cls, config[section], run.config_path)
            mismatch = f"checkpoint {checkpoint.path} does not match the {section} described by {CONFIG_FILENAME}"
            restore_network(checkpoint, key, network, mismatch)
            networks[key] = network
        return networks

    checkpoint, networks = open_newest(run, warn=lambda line: print(line, file=sys.stderr, flush=True), use=restore)
    if checkpoint is None:  # Every one rotated away while we looked.
        raise ModelLoadError(f"no checkpoint found in {run.checkpoints_dir}")
    prefix = checkpoint.path
    for key in (CHECKPOINT_GENERATOR, CHECKPOINT_EMA_GENERATOR):
        if key in networks:
            check_finite_generator(networks[key], f"checkpoint {prefix} ({key})")
    return networks, prefix


def export_preset(generator_or_checkpoint, preset_dir: str | os.PathLike, metadata: dict | None = None) -> str:
    """Writes a preset folder (keras-hub's layout, `keras_sagan.preset_format`) from a run or a model.

    From a run directory (either checkpoint format): the generator, the EMA generator and the
    discriminator its newest readable checkpoint holds, with `step` (the checkpoint's) and `dataset`
    (the run's `--dataset`) in the metadata unless `metadata` gives them. From a `SAGAN`: its three
    networks; from a `Generator` or a `.keras` file: the generator alone.

    Args:
        generator_or_checkpoint: a run directory, a `.keras` file, a `Generator` or a `SAGAN`.
        preset_dir: str. The folder to create (never overwritten).
        metadata: dict or None. Added to `metadata.json` (see `preset_format.save_preset`).

    Returns:
        The preset folder's absolute path.

    Example:

    >>> keras_sagan.export.preset.export_preset("runs/celeba64_demo", "presets/celeba64_demo")
    """
    source, metadata = generator_or_checkpoint, dict(metadata or {})
    if isinstance(source, (str, os.PathLike)):
        kind, path = resolve(source)
        if kind == "run":
            networks, prefix = load_run_networks(path)
            train = locate_run(path).read_config().get("train") or {}
            if train.get("dataset") is not None:
                metadata.setdefault("dataset", train["dataset"])
            if checkpoint_step(prefix) is not None:
                metadata.setdefault("step", checkpoint_step(prefix))
            return save_preset(
                preset_dir,
                networks[CHECKPOINT_GENERATOR],
                networks.get(CHECKPOINT_EMA_GENERATOR),
                networks.get(CHECKPOINT_DISCRIMINATOR),
                metadata=metadata,
            )
        if kind != "keras":
            raise ExportError(
                f"a preset is written from a run directory, a .keras file, a Generator or a SAGAN; {source} is a {kind}"
            )
        source = load_generator(path).keras_generator
    if isinstance(source, Generator):
        return save_preset(preset_dir, source, metadata=metadata)
    if hasattr(source, "sampling_generator") and hasattr(source, "discriminator"):
        return save_preset(preset_dir, source.generator, source.ema_generator, source.discriminator, metadata=metadata)
    raise ExportError(
        "`generator_or_checkpoint` must be a run directory, a .keras file, a Generator or a SAGAN; "
        f"received: generator_or_checkpoint of type {type(source).__name__}"
    )
