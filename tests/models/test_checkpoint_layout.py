"""Today's runs keep resuming: checkpoints of main 3d4666c restore into the list-based networks.

A `tf.train.Checkpoint` finds an object by its object-graph names (`generator/up0/...`) and the
optimizer's slots by the order of the trainable variables. `legacy_layout.json` holds both, as
`layout()` below wrote them on main 3d4666c, before the blocks moved from `setattr` names into
lists; `main_3d4666c_checkpoint/` is a tiny training checkpoint written by that code.
"""

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from layer_checks import assert_keras_save_load

import keras_sagan

pytestmark = pytest.mark.tensorflow  # tf.train.Checkpoint layouts: TensorFlow only

HERE = pathlib.Path(__file__).parent
CASES = {
    "celeba64": ("celeba64", {"conv_dim": 8}),
    "cifar10_32_conditional": ("cifar10_32", {"conv_dim": 8, "num_classes": 3}),
}


def _checkpoint(gan):
    return tf.train.Checkpoint(
        generator=gan.generator,
        discriminator=gan.discriminator,
        ema_generator=gan.ema_generator,
        g_optimizer=gan.g_optimizer,
        d_optimizer=gan.d_optimizer,
    )


def _compiled(preset, **overrides):
    gan = keras_sagan.build_sagan(preset, seed=0, **overrides)
    gan.compile(ema_decay=0.5, jit_compile=False)
    return gan


def layout(case, directory):
    """Checkpoint keys with shapes, and each network's weight order, as JSON-ready lists."""
    preset, overrides = CASES[case]
    gan = _compiled(preset, **overrides)
    prefix = _checkpoint(gan).save(str(pathlib.Path(directory) / "ckpt"))
    result = {"checkpoint": sorted([name, list(shape)] for name, shape in tf.train.list_variables(prefix))}
    for key, network in (("generator", gan.generator), ("discriminator", gan.discriminator)):
        # Paths hold auto-generated layer names (`sequential_3`), so only the order of shapes counts.
        result[f"{key}_weights"] = [[list(w.shape), bool(w.trainable)] for w in network.weights]
    return result


@pytest.mark.parametrize("case", sorted(CASES))
def test_checkpoint_keys_and_weight_order_are_those_of_main(case, tmp_path):
    legacy = json.loads((HERE / "legacy_layout.json").read_text())[case]
    current = layout(case, tmp_path)
    for key in ("checkpoint", "generator_weights", "discriminator_weights"):
        assert current[key] == legacy[key], key


def test_a_checkpoint_written_by_main_restores_every_variable(tmp_path):
    old = str(HERE / "main_3d4666c_checkpoint" / "ckpt")
    gan = _compiled("celeba64", image_size=32, conv_dim=4, z_dim=8, attention_resolutions=(4, 8))
    checkpoint = _checkpoint(gan)
    checkpoint.read(old).assert_consumed()  # every value in the file found its variable, and back
    # Write what was restored and compare it, key by key, with the file written by main.
    new = checkpoint.write(str(tmp_path / "ckpt"))
    old_reader, new_reader = tf.train.load_checkpoint(old), tf.train.load_checkpoint(new)
    keys = sorted(name for name, _ in tf.train.list_variables(old) if name != "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert keys == sorted(name for name, _ in tf.train.list_variables(new) if name != "_CHECKPOINTABLE_OBJECT_GRAPH")
    assert len(keys) > 150
    for key in keys:
        np.testing.assert_array_equal(new_reader.get_tensor(key), old_reader.get_tensor(key), err_msg=key)
    # The restored trained weights differ from a fresh build's: the restore did something.
    fresh = _compiled("celeba64", image_size=32, conv_dim=4, z_dim=8, attention_resolutions=(4, 8))
    moved = [not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(gan.generator.weights, fresh.generator.weights)]
    assert sum(moved) > len(moved) // 2


@pytest.mark.parametrize("preset, overrides", [("celeba64", {"image_size": 32}), ("cifar10_32", {"num_classes": 3})])
def test_checkpoint_and_keras_file_bring_every_block_variable_back(preset, overrides, tmp_path):
    # Keras leaves layers held in plain lists out of tf.train.Checkpoint (shared/NOTES.md): the blocks
    # are lists now, so check that every variable of every block is saved and restored.
    generator = keras_sagan.build_generator(preset, conv_dim=8, z_dim=8, **overrides)
    discriminator = keras_sagan.build_discriminator(preset, conv_dim=8, **overrides)
    labels = None if generator.num_classes is None else np.array([0, 2])
    images = generator(np.ones((2, 8), "float32"), labels, training=True)  # moves u and BN statistics
    discriminator(images, labels, training=True)
    networks = {"generator": generator, "discriminator": discriminator}
    saved = {name: [w.numpy() for w in net.weights] for name, net in networks.items()}
    path = tf.train.Checkpoint(**networks).save(str(tmp_path / "ckpt"))
    for net in networks.values():
        for w in net.weights:
            w.assign(np.full(w.shape, 7, w.dtype))
    tf.train.Checkpoint(**networks).restore(path).assert_consumed()
    for name, net in networks.items():
        assert all(block.weights for block in net.stages + net.attention), name
        for before, w in zip(saved[name], net.weights):
            np.testing.assert_array_equal(w.numpy(), before, err_msg=w.path)
    inputs = (np.ones((2, 8), "float32"),) if labels is None else (np.ones((2, 8), "float32"), labels)
    assert_keras_save_load(generator, inputs, tmp_path)
    assert_keras_save_load(discriminator, (images,) if labels is None else (images, labels), tmp_path)
