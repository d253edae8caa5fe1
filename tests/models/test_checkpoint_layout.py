"""Today's runs keep resuming: the checkpoint, weight-order and `.weights.h5` layouts of main 3d4666c.

`legacy_layout.json` was written by `layout()` below on main 3d4666c, before the blocks moved
into lists. A checkpoint is matched by its object-graph names (`generator/up0/...`) and the
optimizer's slots by the order of the trainable variables, so both must stay as they were.
"""

import json
import pathlib

import h5py
import numpy as np
import pytest
import tensorflow as tf

import keras_sagan

LEGACY = pathlib.Path(__file__).with_name("legacy_layout.json")
CASES = {
    "celeba64": ("celeba64", {"conv_dim": 8}),
    "cifar10_32_conditional": ("cifar10_32", {"conv_dim": 8, "num_classes": 3}),
}


def _gan(case):
    preset, overrides = CASES[case]
    gan = keras_sagan.build_sagan(preset, seed=0, **overrides)
    gan.compile(ema_decay=0.9)
    return gan


def _checkpoint(gan):
    return tf.train.Checkpoint(
        generator=gan.generator,
        discriminator=gan.discriminator,
        ema_generator=gan.ema_generator,
        g_optimizer=gan.g_optimizer,
        d_optimizer=gan.d_optimizer,
    )


def _h5_datasets(path):
    found = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: found.append([name, list(obj.shape)]) if isinstance(obj, h5py.Dataset) else None)
    return sorted(found)


def layout(case, directory):
    """Checkpoint keys, weight order and `.weights.h5` datasets of one case, as JSON-ready lists."""
    gan = _gan(case)
    directory = pathlib.Path(directory)
    prefix = _checkpoint(gan).save(str(directory / "ckpt"))
    result = {"checkpoint": sorted([name, list(shape)] for name, shape in tf.train.list_variables(prefix))}
    for key, network in (("generator", gan.generator), ("discriminator", gan.discriminator)):
        # Paths hold auto-generated layer names (`sequential_3`), so only the order of shapes counts.
        result[f"{key}_weights"] = [[list(w.shape), bool(w.trainable)] for w in network.weights]
        network.save_weights(directory / f"{key}.weights.h5")
        result[f"{key}_h5"] = _h5_datasets(directory / f"{key}.weights.h5")
    return result


@pytest.fixture(scope="module")
def legacy():
    return json.loads(LEGACY.read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_layout_is_the_one_of_todays_runs(case, legacy, tmp_path):
    current = layout(case, tmp_path)
    for key, expected in legacy[case].items():
        assert current[key] == expected, key
