"""The FID Inception network against pytorch-fid, our resizes against torch and clean-fid, its weights and errors.

The PyTorch side runs in a subprocess (`torch_reference.py`) that writes `.npz` files: clean-fid
imported beside TensorFlow can segfault. It builds pytorch-fid's `InceptionV3([3])` with random
weights (its download patched out) and BatchNorm statistics calibrated on other images, so that
features differ between images and a wrong topology or mapping shows.
"""

import http.server
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

from keras_sagan.errors import UsageError
from keras_sagan.metrics import networks
from keras_sagan.metrics.fid_network import (
    build_fid_inception_model,
    fid_inception,
    load_fid_weights,
    resize_bilinear,
    resize_clean,
)
from keras_sagan.torch_files import load_state_dict

HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """`(inputs, torch outputs, weights path)` from one torch subprocess."""
    tmp = tmp_path_factory.mktemp("fid_reference")
    rng = np.random.default_rng(1)
    low = rng.uniform(-0.8, 0.8, (3, 10, 10, 3))
    images = np.clip(np.kron(low, np.ones((1, 5, 5, 1))) + rng.normal(0, 0.1, (3, 50, 50, 3)), -1, 1)
    inputs = {"images": images.astype(np.float32), "pixels": rng.integers(0, 256, (2, 40, 33, 3), dtype=np.uint8)}
    np.savez(tmp / "in.npz", **inputs)
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "torch_reference.py"),
            str(tmp / "in.npz"),
            str(tmp / "out.npz"),
            str(tmp / "w.pth"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(tmp / "out.npz") as out:
        outputs = dict(out)
    return inputs, outputs, str(tmp / "w.pth")


@pytest.fixture(scope="module")
def extractor(reference):
    return fid_inception(reference[2])


def _assert_close(ours, theirs, rtol):
    scale = np.abs(theirs).max()
    assert np.abs(ours - theirs).max() <= rtol * scale, (np.abs(ours - theirs).max(), scale)


def test_pool3_and_logits_equal_pytorch_fid(reference, extractor):
    inputs, outputs, _ = reference
    # The calibrated random network tells the images apart: a test that can fail.
    assert outputs["pool3"].std(axis=0).mean() > 0.05 * np.abs(outputs["pool3"]).mean()
    pool3, logits = extractor(inputs["images"])
    assert pool3.shape == (3, 2048) and logits.shape == (3, 1008)
    _assert_close(pool3, outputs["pool3"], 1e-4)
    _assert_close(logits, outputs["logits"], 1e-4)


_JAX_SIDE = """
import sys, numpy as np
from keras_sagan.metrics.fid_network import fid_inception
pool3, logits = fid_inception(sys.argv[2])(np.load(sys.argv[1])["images"])
np.savez(sys.argv[3], pool3=pool3, logits=logits)
"""


@pytest.mark.slow
def test_the_jax_backend_gives_the_same_network(reference, tmp_path):
    """Layers and resize are keras.ops only: on JAX (under jax.jit) the numbers are pytorch-fid's too."""
    inputs, outputs, weights = reference
    np.savez(tmp_path / "in.npz", **inputs)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(HERE.parents[1])}
    argv = [sys.executable, "-c", _JAX_SIDE, str(tmp_path / "in.npz"), weights, str(tmp_path / "jax.npz")]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(tmp_path / "jax.npz") as jax_out:
        _assert_close(jax_out["pool3"], outputs["pool3"], 1e-4)
        _assert_close(jax_out["logits"], outputs["logits"], 1e-4)


def test_uint8_and_grey_images(reference, extractor):
    inputs, _, _ = reference
    pixels = inputs["pixels"][:1]
    pool_uint8, _ = extractor(pixels)
    pool_float, _ = extractor(pixels.astype(np.float32) / 127.5 - 1.0)
    np.testing.assert_allclose(pool_uint8, pool_float, rtol=1e-5, atol=1e-5)
    grey = inputs["images"][:1, :, :, :1]
    np.testing.assert_allclose(extractor(grey)[0], extractor(np.repeat(grey, 3, -1))[0], rtol=1e-5, atol=1e-5)


def test_default_resize_is_torch_bilinear(reference):
    inputs, outputs, _ = reference
    resized = np.asarray(resize_bilinear(inputs["images"]))
    assert np.abs(resized - outputs["interpolated"]).max() <= 1e-5


def test_bilinear_resize_shrinks_like_torch():
    # Shrinking: no antialiasing; by hand, 4 -> 2 samples at 0.5 and 2.5, the means of neighbours.
    row = np.array([[0.0, 1.0, 2.0, 4.0]], np.float32).reshape(1, 1, 4, 1)
    out = np.asarray(resize_bilinear(np.repeat(row, 4, axis=1), size=2))
    np.testing.assert_allclose(out[0, 0, :, 0], [0.5, 3.0])


def test_clean_resize_is_clean_fid(reference):
    inputs, outputs, _ = reference
    assert np.abs(resize_clean(inputs["pixels"]) - outputs["clean"]).max() <= 1.0


def test_clean_extractor_normalises_as_the_tf_graph(reference, extractor, monkeypatch):
    """`resize="clean"` feeds `(clean_resize(uint8) - 128) / 128` to the same network."""
    inputs, _, path = reference
    clean = fid_inception(path, resize="clean")
    clean.model = extractor.model  # Same weights; compare the inputs the network receives.
    fed = clean.preprocess(inputs["images"][:1])
    pixels = np.clip(np.round((inputs["images"][:1] + 1) * 127.5), 0, 255).astype(np.uint8)
    np.testing.assert_allclose(fed, (resize_clean(pixels) - 128) / 128, atol=1e-6)
    assert clean.resize_method == "clean" and extractor.resize_method == "bilinear"


def test_weights_are_mapped_tensor_by_tensor(reference):
    _, _, path = reference
    state = load_state_dict(path)
    model, units = build_fid_inception_model()
    load_fid_weights(model, units, state, path)
    kernel = model.get_layer("Mixed_6b.branch7x7_2.conv").kernel.numpy()  # A (1, 7) conv.
    np.testing.assert_array_equal(kernel, state["Mixed_6b.branch7x7_2.conv.weight"].transpose(2, 3, 1, 0))
    gamma, beta, mean, var = model.get_layer("Mixed_7c.branch_pool.bn").get_weights()
    np.testing.assert_array_equal(var, state["Mixed_7c.branch_pool.bn.running_var"])
    np.testing.assert_array_equal(beta, state["Mixed_7c.branch_pool.bn.bias"])
    np.testing.assert_array_equal(model.get_layer("fc").kernel.numpy(), state["fc.weight"].T)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("Mixed_5b.branch1x1.conv.weight"), "tensors missing, e.g. 'Mixed_5b.branch1x1.conv.weight'"),
        (lambda s: s.update({"AuxLogits.fc.weight": np.zeros(1)}), "unexpected tensor 'AuxLogits.fc.weight'"),
        (lambda s: s.update({"fc.weight": np.zeros((1000, 2048))}), r"'fc.weight' has shape \(1000, 2048\)"),
    ],
)
def test_foreign_weights_are_one_line(reference, edit, message):
    state = load_state_dict(reference[2])
    edit(state)
    model, units = build_fid_inception_model()
    with pytest.raises(UsageError, match=message) as info:
        load_fid_weights(model, units, state, "w.pth")
    assert "\n" not in str(info.value)


def test_published_file_name_with_another_hash_is_refused(tmp_path):
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    path.write_bytes(b"not the weights")
    with pytest.raises(UsageError, match="is not pytorch-fid's 6726825d0af5f729") as info:
        fid_inception(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.full((1, 8, 8, 3), 1.5, np.float32), r"must be in \[-1, 1\]; received: min=1.5"),
        (np.full((1, 8, 8, 3), np.nan, np.float32), "must be finite; received 192 NaN"),
        (np.zeros((1, 8, 8, 2), np.float32), r"shape \(batch, height, width, 1 or 3\)"),
    ],
)
def test_bad_images_are_one_line(extractor, images, message):
    with pytest.raises(UsageError, match=message):
        extractor(images)


def test_bad_resize():
    with pytest.raises(
        UsageError, match=r"`resize` must be one of \('bilinear', 'clean'\); received: resize='bicubic'"
    ):
        fid_inception("random", resize="bicubic")


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_missing_weights_are_downloaded_into_the_keras_cache(tmp_path, monkeypatch):
    """A loopback server stands in for GitHub: the file is fetched, hash-checked and cached."""
    import hashlib

    _Handler.body = b"stand-in weights"
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(networks, "FID_WEIGHTS_SHA256", hashlib.sha256(_Handler.body).hexdigest())
    try:
        url = f"http://127.0.0.1:{server.server_port}/pt_inception-2015-12-05-6726825d.pth"
        path = networks.fid_weights_path(url)
    finally:
        server.shutdown()
    assert path == str(tmp_path / "keras" / "models" / "pt_inception-2015-12-05-6726825d.pth")
    assert pathlib.Path(path).read_bytes() == _Handler.body
    # Cached: no server now, and the file is found.
    assert networks.fid_weights_path(url) == path


def test_offline_download_is_one_line_with_the_url_and_the_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    url = "http://127.0.0.1:9/pt_inception-2015-12-05-6726825d.pth"  # The discard port: refused.
    with pytest.raises(UsageError) as info:
        networks.fid_weights_path(url)
    message = str(info.value)
    assert "\n" not in message and url in message and "--inception_weights FILE" in message
    assert not os.path.exists(tmp_path / "keras" / "models" / "pt_inception-2015-12-05-6726825d.pth")
