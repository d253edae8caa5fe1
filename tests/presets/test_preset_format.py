"""Presets with weights (`keras_sagan.preset_format`, the registry in `models/presets.py`): round trips, safety, errors.

Backend-neutral: no TensorFlow-only module is imported, and it passes on JAX too (2 min there, against 30 s
on TensorFlow, so CI runs it on TensorFlow only). The expected images are the networks' own outputs before
saving: a reload must reproduce them exactly.
"""

import json
import os
import shutil

import numpy as np
import pytest

import keras_sagan
from keras_sagan import preset_format
from keras_sagan.models import presets
from keras_sagan.preset_format import PresetError
from keras_sagan.training.sagan import SAGAN

Z = np.random.RandomState(7).randn(3, 128).astype("float32")
IMAGES = np.random.RandomState(8).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
CERTIFICATE = {"scores": {"fid": 12.5, "kid": 0.01}, "protocol": "hand-written for the test"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny EMA SAGAN (EMA weights made to differ), saved as a preset; with its outputs before saving."""
    gan = keras_sagan.build_sagan("celeba64", image_size=32, conv_dim=8, seed=0)
    gan.compile(ema_decay=0.5)
    gan.ema_generator.to_rgb.kernel.assign(gan.ema_generator.to_rgb.kernel * 3.0)
    folder = gan.save_to_preset(
        tmp_path_factory.mktemp("presets") / "tiny",
        metadata={"dataset": "hand-made", "certificate": CERTIFICATE, "sampling": {"truncation": 0.0}, "step": 7},
    )
    return {
        "folder": folder,
        "ema": np.asarray(gan.ema_generator(Z, training=False)),
        "generator": np.asarray(gan.generator(Z, training=False)),
        "logits": np.asarray(gan.discriminator(IMAGES, training=False)),
        "config": gan.generator.get_config(),
    }


@pytest.fixture
def registered(saved, monkeypatch):
    """`tiny_test` registered with the saved preset's folder (a test-only registry entry)."""
    entry = {"description": "A tiny test preset.", "weights": saved["folder"]}
    monkeypatch.setitem(presets.PRESETS, "tiny_test", entry)
    return "tiny_test"


def _copy(saved, tmp_path):
    return shutil.copytree(saved["folder"], tmp_path / "copy")


def test_folder_has_keras_hub_files_and_metadata(saved):
    folder = saved["folder"]
    assert sorted(os.listdir(folder)) == [
        "README.md",
        "config.json",
        "discriminator.json",
        "discriminator.weights.h5",
        "metadata.json",
        "model.weights.h5",
        "training_generator.weights.h5",
    ]
    metadata = json.load(open(os.path.join(folder, "metadata.json")))
    assert metadata["preset_format"] == 1 and metadata["ema"] is True
    assert metadata["networks"] == ["generator", "training_generator", "discriminator"]
    assert metadata["certificate"] == CERTIFICATE and metadata["dataset"] == "hand-made"
    config = json.load(open(os.path.join(folder, "config.json")))
    assert config["registered_name"] == "keras_sagan>Generator"
    assert config["config"] == json.loads(json.dumps(saved["config"]))  # The config round-trips whole.
    card = open(os.path.join(folder, "README.md")).read()
    assert card.startswith("---\nlibrary_name: keras\n")
    assert '"fid": 12.5' in card and "hand-made" in card and '"truncation": 0.0' in card


def test_generator_from_folder_is_the_ema_generator(saved):
    generator = keras_sagan.Generator.from_preset(saved["folder"])
    np.testing.assert_array_equal(np.asarray(generator(Z, training=False)), saved["ema"])
    assert not np.allclose(saved["ema"], saved["generator"])  # The two differ, so the check above can fail.


def test_sagan_from_preset_restores_all_three_networks(saved):
    gan = SAGAN.from_preset(saved["folder"], seed=1)
    assert gan.seed == 1
    np.testing.assert_array_equal(np.asarray(gan.generator(Z, training=False)), saved["generator"])
    np.testing.assert_array_equal(np.asarray(gan.sampling_generator()(Z, training=False)), saved["ema"])
    np.testing.assert_array_equal(np.asarray(gan.discriminator(IMAGES, training=False)), saved["logits"])
    gan.compile(ema_decay=0.9)  # Fine-tuning keeps the loaded EMA generator.
    np.testing.assert_array_equal(np.asarray(gan.ema_generator(Z, training=False)), saved["ema"])
    discriminator = keras_sagan.Discriminator.from_preset(saved["folder"])
    np.testing.assert_array_equal(np.asarray(discriminator(IMAGES, training=False)), saved["logits"])


def test_load_weights_false_gives_the_architecture_with_fresh_weights(saved):
    generator = keras_sagan.Generator.from_preset(saved["folder"], load_weights=False)
    assert preset_format.comparable_config(generator.get_config()) == preset_format.comparable_config(saved["config"])
    assert not np.allclose(np.asarray(generator(Z, training=False)), saved["ema"])


def test_generator_only_preset(tmp_path):
    generator = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8)
    generator.trainable = False  # As an EMA copy is: the preset still loads a trainable network.
    folder = generator.save_to_preset(tmp_path / "g")
    assert "discriminator.json" not in os.listdir(folder)
    loaded = keras_sagan.Generator.from_preset(folder)
    assert loaded.trainable and loaded.trainable_weights and not generator.trainable_weights
    np.testing.assert_array_equal(np.asarray(loaded(Z, training=False)), np.asarray(generator(Z, training=False)))
    with pytest.raises(PresetError, match=r"holds no discriminator \(it holds: generator\)"):
        keras_sagan.Discriminator.from_preset(folder)
    with pytest.raises(PresetError, match="holds no discriminator"):
        SAGAN.from_preset(folder)


def test_registered_name_loads_and_is_listed(saved, registered):
    generator = keras_sagan.Generator.from_preset(registered)
    np.testing.assert_array_equal(np.asarray(generator(Z, training=False)), saved["ema"])
    listed = keras_sagan.list_presets()
    assert listed[registered] == {
        "description": "A tiny test preset.",
        "architecture": "dcgan 32x32, conv_dim 8, z_dim 128, 3 channel(s), reference attention, unconditional",
        "weights": saved["folder"],
        "dataset": "hand-made",
        "scores": CERTIFICATE["scores"],
    }
    # The architecture of a preset registered by its weights alone comes from its config.json.
    random = keras_sagan.build_generator(registered)
    assert preset_format.comparable_config(random.get_config()) == preset_format.comparable_config(saved["config"])
    assert not np.allclose(np.asarray(random(Z, training=False)), saved["ema"])


def test_architectures_stay_without_weights():
    listed = keras_sagan.list_presets()
    for name in ("celeba64", "cifar10_32", "imagenet128"):
        assert listed[name]["weights"] is None and listed[name]["scores"] is None
    assert (
        listed["imagenet128"]["architecture"] == "resnet 128x128, conv_dim 64, z_dim 128, sagan attention, 1000 classes"
    )
    with pytest.raises(PresetError, match=r"^preset 'celeba64' is an architecture without weights: .*build_generator"):
        keras_sagan.Generator.from_preset("celeba64")
    built = keras_sagan.Generator.from_preset("celeba64", load_weights=False)
    expected = keras_sagan.build_generator("celeba64").get_config()
    assert preset_format.comparable_config(built.get_config()) == preset_format.comparable_config(expected)


def test_shipped_preset_folder_name_resolves_inside_the_package(monkeypatch):
    monkeypatch.setitem(presets.PRESETS, "shipped_test", {"description": "x", "weights": "shipped_test"})
    assert presets.weights_location("shipped_test") == os.path.join(presets.SHIPPED_PRESETS_DIR, "shipped_test")
    assert presets.SHIPPED_PRESETS_DIR == os.path.join(os.path.dirname(keras_sagan.__file__), "shipped_presets")


# -- bad input: one line each -----------------------------------------------------------------------


def test_unknown_name_lists_the_registered_ones(registered):
    with pytest.raises(PresetError) as info:
        keras_sagan.Generator.from_preset("no_such_preset")
    message = str(info.value)
    assert "\n" not in message and "received: preset='no_such_preset'" in message
    assert "with weights: ['fashion_mnist32', 'tiny_test']" in message and "'celeba64'" in message


def test_missing_file(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    os.remove(folder / "model.weights.h5")
    with pytest.raises(PresetError, match=r"^preset .*copy has no model.weights.h5 \(it holds: README.md, config.json"):
        keras_sagan.Generator.from_preset(folder)
    os.remove(folder / "metadata.json")
    with pytest.raises(PresetError, match="has no metadata.json"):
        keras_sagan.Generator.from_preset(folder)


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda c: c.update(registered_name="evil>Thing", module="evil", class_name="Thing"), "'evil>Thing'"),
        (lambda c: c.update(registered_name=None, module="keras.layers", class_name="Lambda"), "'Lambda'"),
        (lambda c: c.update(registered_name="keras_sagan>Discriminator"), "'keras_sagan>Discriminator'"),
        (
            lambda c: c["config"].update(dtype={"module": "os", "class_name": "system", "config": {}}),
            "'os.system' inside its config",
        ),
    ],
)
def test_foreign_class_in_config_is_refused(saved, tmp_path, change, named):
    folder = _copy(saved, tmp_path)
    config = json.load(open(folder / "config.json"))
    change(config)
    json.dump(config, open(folder / "config.json", "w"))
    with pytest.raises(PresetError, match=f"names the class {named}.*refusing to deserialize it$"):
        keras_sagan.Generator.from_preset(folder)


def test_weights_of_another_architecture_name_the_first_layer(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    other = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=16)
    other.save_weights(str(tmp_path / "other.weights.h5"))
    shutil.copy(tmp_path / "other.weights.h5", folder / "model.weights.h5")
    with pytest.raises(PresetError) as info:
        keras_sagan.Generator.from_preset(folder)
    message = str(info.value)
    assert "\n" not in message
    # conv_dim 8 vs 16: the first variable in the file's order is the 16x16 attention's key conv (16 vs 32 inputs).
    assert "first mismatch at layer 'attention/self_attention/key'" in message
    assert "attention/self_attention/key/vars/0 has shape (1, 1, 32, 4) in the file, (1, 1, 16, 2) in the network" in (
        message
    )


def test_weights_are_checked_before_anything_is_assigned(saved, tmp_path):
    generator = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8)
    before = [np.asarray(w).copy() for w in generator.weights]
    other = keras_sagan.build_discriminator("celeba64", image_size=32, conv_dim=8)
    other.save_weights(str(tmp_path / "d.weights.h5"))
    with pytest.raises(PresetError, match="first mismatch at layer"):
        preset_format.check_weights(generator, str(tmp_path / "d.weights.h5"), "config.json")
    assert all(np.array_equal(b, np.asarray(w)) for b, w in zip(before, generator.weights))


def test_newer_format_is_refused_naming_both_versions(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    metadata = json.load(open(folder / "metadata.json"))
    metadata.update(preset_format=2, keras_sagan_version="9.0.0")
    json.dump(metadata, open(folder / "metadata.json", "w"))
    pattern = (
        r"was written by keras_sagan 9\.0\.0 \(preset format 2\); "
        rf"this keras_sagan {keras_sagan.__version__} reads format 1 and older"
    )
    with pytest.raises(PresetError, match=pattern):
        keras_sagan.Generator.from_preset(folder)


def test_save_refuses_to_overwrite_and_reserved_metadata(saved, tmp_path):
    generator = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8)
    with pytest.raises(PresetError, match="already exists and is not an empty folder; refusing to overwrite it$"):
        generator.save_to_preset(saved["folder"])
    with pytest.raises(PresetError, match=r"^`metadata` must be without the keys save_preset writes"):
        generator.save_to_preset(tmp_path / "x", metadata={"preset_format": 9})
    with pytest.raises(PresetError, match="must be JSON-serialisable"):
        generator.save_to_preset(tmp_path / "y", metadata={"certificate": object()})
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "y")
