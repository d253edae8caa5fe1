"""Training-run directories for the export/CLI tests, written with the training loop's own checkpoint."""

import os

import keras_sagan
from keras_sagan.checkpoint.manager import CheckpointManager
from keras_sagan.run_directory import RunDirectory


def ema_sagan(seed=0):
    """A tiny celeba64 SAGAN whose EMA generator's weights differ from its generator's."""
    gan = keras_sagan.build_sagan("celeba64", image_size=32, conv_dim=8, seed=seed)
    gan.compile(ema_decay=0.5)
    kernel = gan.ema_generator.to_rgb.kernel
    kernel.assign(kernel * 3.0)
    return gan


def write_run(model_dir, gan, checkpoint_number=3):
    """A model directory as `train()` writes it: config.json + checkpoints/ (EMA included when `gan` has one)."""
    os.makedirs(model_dir)
    run = RunDirectory(model_dir)
    run.write_config(gan.generator.get_config(), gan.discriminator.get_config(), {})
    CheckpointManager(gan, run.checkpoints_dir, max_to_keep=2).save(checkpoint_number=checkpoint_number)
