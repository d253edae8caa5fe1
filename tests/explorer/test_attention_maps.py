"""`keras_sagan.attention_maps`: one query's maps per layer, attention switched off, overlays and the figure."""

import keras
import numpy as np
import pytest

from keras_sagan import attention_maps
from keras_sagan.errors import UsageError
from keras_sagan.models.generator import Generator


def test_query_maps_pick_the_querys_cell_in_each_layer(unconditional):
    generator, _ = unconditional
    z = np.random.default_rng(0).normal(size=(1, 16)).astype("float32")
    image, maps = attention_maps.query_maps(generator, z, None, row=10, col=21)
    images, full = generator(z, training=False, return_attention=True)
    np.testing.assert_allclose(image, keras.ops.convert_to_numpy(images)[0], atol=1e-6)
    # Pixel (10, 21) of a 32x32 image: cell (2, 5) of the 8x8 layer, (5, 10) of the 16x16 one (unpooled keys).
    expected_cells = {8: (2, 5), 16: (5, 10)}
    assert [m.resolution for m in maps] == [8, 16]
    for layer_map, layer, weights in zip(maps, generator.attention_layers, full):
        qy, qx = expected_cells[layer_map.resolution]
        assert layer_map.query == (qy, qx)
        row = keras.ops.convert_to_numpy(weights)[0, qy * layer_map.resolution + qx]
        np.testing.assert_allclose(layer_map.values.reshape(-1), row, rtol=1e-6)
        assert layer_map.values.shape == (layer_map.resolution,) * 2
        assert layer_map.gamma == pytest.approx(float(keras.ops.convert_to_numpy(layer.gamma)))
        assert layer_map.values.sum() == pytest.approx(1.0, abs=1e-5)
        assert layer_map.values.max() > 3 * layer_map.values.mean()  # peaked, so the cell choice matters


def test_pooled_keys_give_a_half_size_grid(conditional):
    generator, _ = conditional
    z = np.zeros((1, 16), "float32")
    _, maps = attention_maps.query_maps(generator, z, np.array([1]), row=31, col=0)
    assert [(m.resolution, m.query, m.values.shape) for m in maps] == [(16, (15, 0), (8, 8))]


def test_without_attention_equals_the_network_with_no_attention_layer(unconditional):
    generator, _ = unconditional
    off = attention_maps.without_attention(generator)
    # Independent: the same architecture built without attention, given the same non-attention weights.
    plain = Generator.from_config({**generator.get_config(), "attention_resolutions": ()})
    plain.build()
    for name, block in plain.named_blocks().items():
        block.set_weights(generator.named_blocks()[name].get_weights())
    z = np.random.default_rng(1).normal(size=(2, 16)).astype("float32")
    expected = keras.ops.convert_to_numpy(plain(z, training=False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(off(z, training=False)), expected, atol=1e-6)
    assert np.abs(keras.ops.convert_to_numpy(generator(z, training=False)) - expected).max() > 1e-3
    assert [float(keras.ops.convert_to_numpy(layer.gamma)) for layer in generator.attention_layers] == [0.5, 1.5]


def test_overlay_of_a_grey_image_and_its_query_cell():
    layer_map = attention_maps.LayerMap("attention_8", 8, 0.1, (2, 5), np.full((4, 4), 1 / 16, "float32"))
    grey = np.full((32, 32, 1), 100, np.uint8)
    out = attention_maps.overlay(grey, layer_map, row=10, col=21)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert (out[8:12, 20:24] == 255).all()  # cell (2, 5) of 8x8 is pixels 8-11 x 20-23
    assert not (out[0:4, 0:4] == 255).all()


def test_figure_has_the_sample_the_off_twin_and_one_panel_per_layer(unconditional):
    generator, _ = unconditional
    z = np.zeros((1, 16), "float32")
    image, maps = attention_maps.query_maps(generator, z, None, 0, 0)
    figure = attention_maps.attention_figure(image, image, maps, 0, 0, min_side=64)
    assert figure.size == (4 * 64 + 3 * 4, 64 + 14)


@pytest.mark.parametrize("text", ["32,0", "0,-1", "a,b", "1", "1,2,3"])
def test_bad_queries_are_one_line(text):
    with pytest.raises(UsageError, match="query") as info:
        attention_maps.parse_query(text, 32)
    assert "\n" not in str(info.value)


def test_a_generator_without_attention_is_refused():
    generator = Generator(image_size=32, z_dim=8, conv_dim=8, attention_resolutions=())
    generator.build()
    with pytest.raises(UsageError, match="no attention layer"):
        attention_maps.query_maps(generator, np.zeros((1, 8), "float32"), None, 0, 0)


def test_the_savedmodel_attention_signature_gives_the_same_maps(unconditional, saved_model):
    import tensorflow as tf

    generator, _ = unconditional
    loaded = tf.saved_model.load(saved_model)
    assert set(loaded.signatures["serving_default"].structured_outputs) == {"images", "images_uint8"}
    z = np.random.default_rng(4).normal(size=(2, 16)).astype("float32")
    outputs = loaded.signatures["attention"](z=tf.constant(z), row=tf.constant(10), col=tf.constant(21))
    for index in range(2):
        image, maps = attention_maps.query_maps(generator, z[index : index + 1], None, 10, 21)
        np.testing.assert_allclose(outputs["images"].numpy()[index], image, atol=1e-5)
        for layer_map in maps:
            np.testing.assert_allclose(outputs[layer_map.name].numpy()[index], layer_map.values, rtol=1e-4, atol=1e-6)
            assert outputs[f"{layer_map.name}_gamma"].numpy()[index] == pytest.approx(layer_map.gamma)
    with pytest.raises(tf.errors.InvalidArgumentError, match="row and col must be pixels of the 32x32 image"):
        loaded.signatures["attention"](z=tf.constant(z), row=tf.constant(32), col=tf.constant(0))
