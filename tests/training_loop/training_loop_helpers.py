"""Shared helpers of the training-loop tests: tiny configs, variable snapshots, the example."""

import os
import pathlib
import types

import numpy as np

from keras_sagan.training import loop
from keras_sagan.training.config import TrainConfig

REPO = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "train_celeba.py"

# The smallest model the celeba64 preset builds at 32x32 (8 channels reach the attention blocks).
TINY = {"conv_dim": 8, "z_dim": 16, "batch_size": 4, "num_samples": 4}
TINY_FLAGS = ["--conv_dim=8", "--z_dim=16", "--batch_size=4"]


def tiny_config(model_dir, **overrides):
    settings = {**TINY, "steps": 4, "log_every": 2, "sample_every": 2, "checkpoint_every": 2}
    settings.update(overrides)
    return TrainConfig(model_dir=os.fspath(model_dir), **settings)


def training_variables(gan):
    """Every piece of state a checkpoint must hold, by a readable name."""
    groups = {
        "generator": gan.generator.weights,
        "discriminator": gan.discriminator.weights,
        "g_optimizer": gan.g_optimizer.variables,
        "d_optimizer": gan.d_optimizer.variables,
        "seed": [gan.seed_generator.state],
    }
    if gan.ema_generator is not None:
        groups["ema_generator"] = gan.ema_generator.weights
    # Names by position: Keras' variable paths carry per-process counters (generator_1/...).
    return {f"{group}/{i}": v for group, variables in groups.items() for i, v in enumerate(variables)}


def snapshot(gan):
    return {name: np.array(v.numpy()) for name, v in training_variables(gan).items()}


# `loop.make_manager` reads only the networks' configs (for the record in each checkpoint).
NO_GAN = types.SimpleNamespace(
    generator=types.SimpleNamespace(get_config=dict), discriminator=types.SimpleNamespace(get_config=dict)
)


def evaluation_callback(config):
    """The `EvaluationCallback` that `loop.make_callbacks` builds from `config` (`eval_every` > 0)."""
    callbacks = loop.make_callbacks(config, loop.make_manager(config, NO_GAN))
    (callback,) = [c for c in callbacks if type(c).__name__ == "EvaluationCallback"]
    return callback
