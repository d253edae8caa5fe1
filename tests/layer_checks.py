"""Shared checks run on every layer and model: config round trip and .keras save/load."""

import json

import keras
import numpy as np


def assert_config_round_trip(obj):
    """get_config -> JSON -> from_config gives an object with the same config."""
    config = obj.get_config()
    restored = obj.__class__.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    return restored


def assert_keras_save_load(model, inputs, tmp_path, call_kwargs=None):
    """Saving to .keras and loading gives identical inference outputs."""
    call_kwargs = call_kwargs or {}
    expected = model(*inputs, training=False, **call_kwargs)
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    actual = loaded(*inputs, training=False, **call_kwargs)
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(loaded.weights, model.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    return loaded
