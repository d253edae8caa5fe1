"""The explorer's requests (`session.Explorer`) and its server (`server.make_server`), in-process."""

import base64
import io
import json
import threading
import urllib.error
import urllib.request

import keras
import numpy as np
import pytest
from PIL import Image

from keras_sagan.errors import UsageError
from keras_sagan.explorer.server import make_server
from keras_sagan.explorer.session import MAX_GRID, Explorer, png_data_url
from keras_sagan.export.loading import load_generator_variants
from keras_sagan.export.saved_model import sample_labels, sample_z
from keras_sagan.images import to_uint8


def decode(url):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


@pytest.fixture(scope="module")
def conditional_explorer(conditional):
    return Explorer(load_generator_variants(conditional[1]))


def test_samples_are_the_sample_signatures_draws(conditional, conditional_explorer):
    generator, _ = conditional
    result = conditional_explorer.samples({"seed": ["5"], "num": ["3"], "truncation": ["0.7"]})
    z = sample_z(3, 16, 5, 0.7).numpy()
    labels = sample_labels(3, 3, 5).numpy()
    assert result["labels"] == labels.tolist()
    expected = keras.ops.convert_to_numpy(to_uint8(generator(z, labels, training=False)))
    np.testing.assert_array_equal(np.stack([decode(url) for url in result["images"]]), expected)
    fixed = conditional_explorer.samples({"seed": ["5"], "num": ["2"], "label": ["2"]})
    assert fixed["labels"] == [2, 2]


def test_png_data_urls_of_grey_and_colour_pixels():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (5, 7, 1), dtype=np.uint8)
    colour = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode(png_data_url(grey)), grey[..., 0])
    np.testing.assert_array_equal(decode(png_data_url(colour)), colour)


def test_attention_of_a_grid_sample(conditional, conditional_explorer):
    generator, _ = conditional
    query = {"seed": ["5"], "num": ["3"], "index": ["2"], "row": ["7"], "col": ["30"], "label": ["1"]}
    result = conditional_explorer.attention(query)
    z = sample_z(3, 16, 5, 0.0).numpy()[2:3]
    images, maps = generator(z, np.array([1]), training=False, return_attention=True)
    (layer,) = result["layers"]
    assert layer["query"] == [3, 15] and layer["key_side"] == 8 and layer["gamma"] == pytest.approx(0.5)
    row = keras.ops.convert_to_numpy(maps[0])[0, 3 * 16 + 15]
    np.testing.assert_allclose(np.array(layer["values"]).reshape(-1), row, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(decode(result["image"]), keras.ops.convert_to_numpy(to_uint8(images))[0])
    assert not np.array_equal(decode(result["image_off"]), decode(result["image"]))
    assert decode(layer["overlay"]).shape == (32, 32, 3)


@pytest.mark.parametrize(
    "query, message",
    [
        ({"row": ["32"], "col": ["0"]}, "row"),
        ({"row": ["0"], "col": ["x"]}, "col"),
        ({"row": ["0"], "col": ["0"], "num": ["65"]}, "num"),
        ({"row": ["0"], "col": ["0"], "num": ["2"], "index": ["2"]}, "index"),
        ({"row": ["0"], "col": ["0"], "label": ["3"]}, "label"),
        ({"row": ["0"], "col": ["0"], "variant": ["live"]}, "variant"),
        ({"row": ["0"], "col": ["0"], "truncation": ["inf"]}, "truncation"),
    ],
)
def test_bad_parameters_are_one_line(conditional_explorer, query, message):
    with pytest.raises(UsageError, match=message) as info:
        conditional_explorer.attention(query)
    assert "\n" not in str(info.value)


def test_interpolation_between_classes(conditional_explorer):
    result = conditional_explorer.interpolate({"frames": ["4"], "label_a": ["0"], "label_b": ["2"], "seed_b": ["1"]})
    gif = Image.open(io.BytesIO(base64.b64decode(result["gif"].split(",", 1)[1])))
    assert len(result["frames"]) == 4 and gif.n_frames == 4


def test_a_saved_model_samples_but_has_no_maps(saved_model, unconditional):
    explorer = Explorer(load_generator_variants(saved_model))
    assert explorer.info()["attention_unavailable"].startswith("a SavedModel")
    result = explorer.samples({"seed": ["1"], "num": ["2"]})
    expected = keras.ops.convert_to_numpy(to_uint8(unconditional[0](sample_z(2, 16, 1, 0.0), training=False)))
    np.testing.assert_array_equal(np.stack([decode(url) for url in result["images"]]), expected)
    with pytest.raises(UsageError, match="SavedModel, for sampling only"):
        explorer.attention({"row": ["0"], "col": ["0"]})


def test_a_run_with_ema_offers_both_generators(ema_run):
    variants = load_generator_variants(ema_run)
    assert list(variants) == ["ema", "live"]
    assert [v.weights for v in variants.values()] == ["ema_generator", "generator"]
    explorer = Explorer(variants)
    ema = explorer.samples({"seed": ["0"], "num": ["1"]})["images"]
    live = explorer.samples({"seed": ["0"], "num": ["1"], "variant": ["live"]})["images"]
    z = sample_z(1, variants["live"].z_dim, 0, 0.0).numpy()
    for urls, generator in ((ema, variants["ema"]), (live, variants["live"])):
        expected = keras.ops.convert_to_numpy(to_uint8(generator.keras_generator(z, training=False)))
        np.testing.assert_array_equal(decode(urls[0]), expected[0])
    assert ema != live


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_server_answers_bad_requests_and_keeps_serving(conditional_explorer, monkeypatch):
    server = make_server(conditional_explorer, port=0)
    assert server.server_address[0] == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        status, payload = _get(base + "/api/interpolate?frames=500")
        assert status == 400 and "frames" in payload["error"]
        assert _get(base + f"/api/samples?num={MAX_GRID + 1}")[0] == 400
        assert _get(base + "/api/samples?path=/etc/passwd&num=1")[0] == 200  # unknown parameters are ignored
        assert _get(base + "/../../etc/passwd")[0] == 404
        assert _get(base + "/api/info?" + "x" * 3000)[0] == 400
        monkeypatch.setattr(conditional_explorer, "samples", lambda query: 1 / 0)
        status, payload = _get(base + "/api/samples")
        assert status == 500 and payload["error"] == "division by zero"
        status, payload = _get(base + "/api/info")
        assert status == 200 and payload["num_classes"] == 3
        with urllib.request.urlopen(base + "/", timeout=60) as response:
            assert b"keras_sagan explorer" in response.read()
    finally:
        server.shutdown()
        server.server_close()
