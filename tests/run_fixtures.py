"""Training-run directories for the export/CLI tests, written with the training loop's own checkpoint."""

import json
import os

import tensorflow as tf

import keras_sagan
from keras_sagan.training.loop import make_checkpoint


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
    with open(os.path.join(model_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": gan.generator.get_config(), "discriminator": gan.discriminator.get_config()}, f)
    manager = tf.train.CheckpointManager(make_checkpoint(gan), os.path.join(model_dir, "checkpoints"), 2)
    manager.save(checkpoint_number=checkpoint_number)
