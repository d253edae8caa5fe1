"""saved_models/: models.config parses as TF Serving's ModelServerConfig and names servable SavedModels."""

import os

import numpy as np
import pytest
import tensorflow as tf

from keras_sagan.export import loading, saved_model

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "saved_models")
CONTAINER_ROOT = "/models/"  # where README.md's docker command mounts saved_models/


def _configs():
    text_format = pytest.importorskip("google.protobuf.text_format")
    config_pb2 = pytest.importorskip("tensorflow_serving.config.model_server_config_pb2")
    with open(os.path.join(ROOT, "models.config"), encoding="utf-8") as f:
        config = text_format.Parse(f.read(), config_pb2.ModelServerConfig())
    return list(config.model_config_list.config)


def test_models_config_parses_and_readme_names_each_model():
    configs = _configs()
    assert configs
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert "--model_config_file=/models/models.config" in readme and "--rest_api_port=8501" in readme
    for config in configs:
        assert config.model_platform == "tensorflow"
        assert config.base_path.startswith(CONTAINER_ROOT)
        assert f"/v1/models/{config.name}:predict" in readme


def test_shipped_models_serve():
    for config in _configs():
        base = os.path.join(ROOT, config.base_path[len(CONTAINER_ROOT) :])
        versions = saved_model.list_versions(base)
        if not versions:
            pytest.skip(f"{base} has no exported version yet")
        path = os.path.join(base, str(versions[-1]))
        signatures = loading.read_signatures(path)
        assert {"serving_default", "sample"} <= set(signatures)
        outputs = tf.saved_model.load(path).signatures["sample"](
            num_images=tf.constant(2), seed=tf.constant(0, tf.int64), truncation=tf.constant(0.0)
        )
        images = outputs["images"].numpy()
        assert images.shape[0] == 2 and np.all(np.abs(images) <= 1.0)
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(base) for f in files)
        assert total < 20 * 2**20, f"{base} is {total / 2**20:.1f} MiB"
