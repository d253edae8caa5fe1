"""`keras-sagan import-reference`: the PyTorch reference's state dicts as a run directory, with its outputs.

The reference is stood in for by `benchmarks/reference_model.py`, the project's PyTorch model with the reference's
module names and state-dict keys. The network is the reference's 64x64 one, with a smaller
`conv_dim` and `z_dim` to keep the test fast (the key names and the mapping do not depend on them;
the full-size state dict is checked separately).
"""

import os
import pathlib
import pickle
import sys
import zipfile

import numpy as np
import pytest
import tensorflow as tf

torch = pytest.importorskip("torch")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import reference_model  # noqa: E402  (benchmarks/, after torch)
from cli_checks import cli_error  # noqa: E402

from keras_sagan import cli  # noqa: E402
from keras_sagan.checkpoint import reading  # noqa: E402
from keras_sagan.export import loading, saved_model  # noqa: E402
from keras_sagan.models.generator import Generator  # noqa: E402
from keras_sagan.models.presets import build_discriminator  # noqa: E402
from keras_sagan.reference import import_reference  # noqa: E402
from keras_sagan.run_directory import RunDirectory  # noqa: E402
from keras_sagan.training.sagan import SAGAN  # noqa: E402

Z_DIM, CONV_DIM, BATCH = 32, 16, 2
SIZES = {"image_size": 64, "z_dim": Z_DIM, "conv_dim": CONV_DIM}
SIZE_FLAGS = ["--z_dim", str(Z_DIM), "--conv_dim", str(CONV_DIM)]
# Each power iteration step moved u by at most 2.7e-5 after 1000 steps (1.3e-6 after 3000) on these
# random weights; sigma's error is of the order of the square of that.
CONVERGENCE_ITERATIONS = 1000


def _randomise(model):
    """Moves BatchNorm statistics and the attention gammas off their initial values (so they count)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
            if isinstance(module, reference_model.SelfAttention):
                module.gamma.fill_(0.6)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """`(G, D, G.pth, D.pth)` with random weights, saved with torch.save before any forward."""
    torch.manual_seed(0)
    g = reference_model.Generator(Z_DIM, CONV_DIM)
    d = reference_model.Discriminator(CONV_DIM)
    _randomise(g)
    _randomise(d)
    directory = tmp_path_factory.mktemp("reference")
    torch.save(g.state_dict(), directory / "10_G.pth")
    torch.save(d.state_dict(), directory / "10_D.pth")
    return g, d, str(directory / "10_G.pth"), str(directory / "10_D.pth")


def _restore(run_dir, conv_dim=CONV_DIM):
    """The imported run's generator and discriminator, read back from its checkpoint."""
    run = RunDirectory(run_dir)
    config = run.read_config()
    generator = Generator.from_config(config["generator"])
    generator.build()
    discriminator = build_discriminator("celeba64", image_size=64, conv_dim=conv_dim)
    checkpoint = reading.open_checkpoint(reading.latest_checkpoint(run))
    checkpoint.restore({"generator": generator, "discriminator": discriminator}, "the imported run does not match")
    return generator, discriminator


def _inputs():
    rng = np.random.RandomState(0)
    return rng.randn(BATCH, Z_DIM).astype("float32"), rng.uniform(-1, 1, (BATCH, 64, 64, 3)).astype("float32")


def test_reference_model_has_the_references_keys_and_parameter_counts():
    g, d = reference_model.Generator(), reference_model.Discriminator()
    keys = list(g.state_dict())
    for key in ("l1.0.module.weight_bar", "l1.0.module.weight_u", "l1.0.module.bias", "l1.1.running_var",
                "attn1.query_conv.weight", "attn1.gamma", "last.0.weight"):  # fmt: skip
        assert key in keys
    assert sum(p.numel() for p in g.parameters() if p.requires_grad) == 3_832_885
    assert sum(p.numel() for p in d.parameters() if p.requires_grad) == 3_175_299


def test_full_size_state_dicts_import_and_match_in_training_mode(tmp_path):
    """The reference's own sizes (z_dim 128, conv_dim 64) at batch 1: images and logits."""
    torch.manual_seed(0)
    g, d = reference_model.Generator(), reference_model.Discriminator()
    _randomise(g)
    _randomise(d)
    torch.save(g.state_dict(), tmp_path / "G.pth")
    torch.save(d.state_dict(), tmp_path / "D.pth")
    out = import_reference(tmp_path / "G.pth", tmp_path / "run", discriminator_path=tmp_path / "D.pth")
    config = RunDirectory(out).read_config()
    assert (config["generator"]["z_dim"], config["generator"]["conv_dim"], config["train"]["model_dir"]) == (
        128, 64, out,
    )  # fmt: skip
    generator, discriminator = _restore(out, conv_dim=64)
    z = np.random.RandomState(0).randn(1, 128).astype("float32")
    with torch.no_grad():
        fake = g.train()(torch.from_numpy(z))[0]
        logits = d.train()(fake)[0]
    images = generator(z, training=True)
    np.testing.assert_allclose(np.asarray(images), fake.permute(0, 2, 3, 1).numpy(), atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(discriminator(images, training=True)), logits.reshape(-1).numpy(), atol=1e-4, rtol=1e-5
    )


@pytest.fixture(scope="module")
def imported(reference, tmp_path_factory):
    _, _, g_path, d_path = reference
    out = str(tmp_path_factory.mktemp("runs") / "ref")
    assert (
        cli.main(["import-reference", "--generator", g_path, "--discriminator", d_path, "--out", out, *SIZE_FLAGS]) == 0
    )
    return out


def test_training_mode_outputs_and_attention_maps_match(reference, imported):
    g, d, g_path, d_path = reference
    generator, discriminator = _restore(imported)
    z, images = _inputs()
    g.load_state_dict(torch.load(g_path))  # Fresh u: the fixture's state, before any forward.
    d.load_state_dict(torch.load(d_path))
    g.train()
    d.train()
    with torch.no_grad():
        fake, g_p1, g_p2 = g(torch.from_numpy(z))
        logits, d_p1, d_p2 = d(torch.from_numpy(images).permute(0, 3, 1, 2))
    ours, g_maps = generator(z, training=True, return_attention=True)
    our_logits, d_maps = discriminator(images, training=True, return_attention=True)
    np.testing.assert_allclose(np.asarray(ours), fake.permute(0, 2, 3, 1).numpy(), atol=1e-4)
    np.testing.assert_allclose(np.asarray(our_logits), logits.numpy(), atol=1e-4, rtol=1e-5)
    for ours_map, theirs in zip([*g_maps, *d_maps], [g_p1, g_p2, d_p1, d_p2]):
        np.testing.assert_allclose(np.asarray(ours_map), theirs.numpy(), atol=1e-4)
    assert [tuple(m.shape) for m in g_maps] == [(BATCH, 256, 256), (BATCH, 1024, 1024)]
    # One power iteration from the same u in both: the updated u's agree too.
    np.testing.assert_allclose(
        np.asarray(generator.initial.layers[0].u)[0], g.l1[0].module.weight_u.detach().numpy(), atol=1e-5
    )


def test_inference_mode_after_convergence_and_served_images(reference, tmp_path):
    g, d, g_path, _ = reference
    g.load_state_dict(torch.load(g_path))
    change = reference_model.converge_power_iterations(g, CONVERGENCE_ITERATIONS)
    assert change < 1e-4
    torch.save(g.state_dict(), tmp_path / "converged_G.pth")
    out = import_reference(tmp_path / "converged_G.pth", tmp_path / "run", **SIZES)
    z, _ = _inputs()
    g.eval()
    with torch.no_grad():
        expected = g(torch.from_numpy(z))[0].permute(0, 2, 3, 1).numpy()  # eval: one more power iteration
    generator = loading.load_generator(out).keras_generator
    np.testing.assert_allclose(np.asarray(generator(z, training=False)), expected, atol=1e-4)
    version = saved_model.export_generator(out, tmp_path / "served")
    served = tf.saved_model.load(version).signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(served, expected, atol=1e-4)


def test_generator_only_run_exports_and_samples_but_refuses_training(reference, tmp_path, capsys):
    _, _, g_path, _ = reference
    out = str(tmp_path / "ref")
    assert cli.main(["import-reference", "--generator", g_path, "--out", out, *SIZE_FLAGS]) == 0
    assert cli.main(["sample", "--model", out, "--num", "2", "--out", str(tmp_path / "grid.png")]) == 0
    assert cli.main(["export", "--checkpoint", out, "--out", str(tmp_path / "g.onnx"), "--format", "onnx"]) == 0
    capsys.readouterr()
    status = cli.main(["train", "--config", os.path.join(out, "config.json"), "--steps", "1", "--batch_size", "2"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "holds no discriminator" in err and "--discriminator" in err, err


def test_run_with_discriminator_continues_training(imported, tmp_path, capsys):
    import shutil

    run_dir = str(tmp_path / "run")
    shutil.copytree(imported, run_dir)
    config = os.path.join(run_dir, "config.json")
    argv = ["train", "--config", config, "--model_dir", run_dir, "--steps", "1", "--batch_size", "2",
            "--sample_every", "100", "--export_dir", ""]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert reading.latest_checkpoint(RunDirectory(run_dir)).endswith("ckpt-1.state.npz")


# -- bad inputs: one line, exit status 2 ----------------------------------------------------------------


def _error(capsys, argv):
    return cli_error(capsys, argv).strip()


def _import(*args):
    return ["import-reference", *args]


def _import_small(*args):
    return ["import-reference", *args, *SIZE_FLAGS]


def test_discriminator_given_as_generator(reference, tmp_path, capsys):
    _, _, g_path, d_path = reference
    err = _error(capsys, _import("--generator", d_path, "--out", str(tmp_path / "r"), *SIZE_FLAGS))
    assert err.endswith(
        "holds the reference's discriminator state dict, not its generator's; give it as --discriminator"
    )
    err = _error(capsys, _import_small("--generator", g_path, "--discriminator", g_path, "--out", str(tmp_path / "r")))
    assert "holds the reference's generator state dict, not its discriminator's" in err
    assert not os.path.exists(tmp_path / "r")


def test_sizes_that_do_not_match_name_the_key_and_the_sizes_that_fit(reference, tmp_path, capsys):
    _, _, g_path, _ = reference
    err = _error(capsys, _import("--generator", g_path, "--out", str(tmp_path / "r")))  # the defaults: 128, 64
    assert "'l1.0.module.bias' has shape (128,), the reference's generator at image_size=64, z_dim=128, " in err
    assert "conv_dim=64 has (512,)" in err
    assert err.endswith(f"its tensors fit --image_size 64 --z_dim {Z_DIM} --conv_dim {CONV_DIM}")
    err = _error(capsys, _import("--generator", g_path, "--out", str(tmp_path / "r"), "--image_size", "32",
                                 *SIZE_FLAGS))  # fmt: skip
    assert "unexpected key 'l4." in err and err.endswith(f"--image_size 64 --z_dim {Z_DIM} --conv_dim {CONV_DIM}")


def test_missing_extra_and_misshapen_tensors(reference, tmp_path, capsys):
    g = reference[0]
    state = dict(g.state_dict())
    del state["attn1.gamma"]
    torch.save(state, tmp_path / "missing.pth")
    err = _error(
        capsys, _import("--generator", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "r"), *SIZE_FLAGS)
    )
    assert "missing key 'attn1.gamma'" in err
    state = {**g.state_dict(), "extra.weight": torch.zeros(3)}
    torch.save(state, tmp_path / "extra.pth")
    err = _error(capsys, _import_small("--generator", str(tmp_path / "extra.pth"), "--out", str(tmp_path / "r")))
    assert "unexpected key 'extra.weight'" in err
    state = {**g.state_dict(), "last.0.bias": torch.zeros(4)}
    torch.save(state, tmp_path / "shape.pth")
    err = _error(capsys, _import_small("--generator", str(tmp_path / "shape.pth"), "--out", str(tmp_path / "r")))
    assert "'last.0.bias' has shape (4,), the reference's generator at image_size=64" in err and "has (3,)" in err
    assert not os.path.exists(tmp_path / "r")


def test_not_a_state_dict_malicious_pickle_and_existing_out(reference, imported, tmp_path, capsys):
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    err = _error(capsys, _import("--generator", str(tmp_path / "list.pth"), "--out", str(tmp_path / "r")))
    assert "is not a state dict" in err

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as archive:
        archive.writestr("evil/data.pkl", pickle.dumps({"l1.0.module.bias": Payload()}, protocol=2))
        archive.writestr("evil/byteorder", "little")
    err = _error(capsys, _import("--generator", str(tmp_path / "evil.pth"), "--out", str(tmp_path / "r")))
    assert "system" in err
    assert not os.path.exists(tmp_path / "pwned")

    _, _, g_path, _ = reference
    err = _error(capsys, _import("--generator", g_path, "--out", imported, *SIZE_FLAGS))
    assert err == f"error: --out {imported} already exists; refusing to overwrite it"


def test_imported_reference_saves_as_a_preset(imported, tmp_path, capsys):
    preset = str(tmp_path / "reference_preset")
    assert cli.main(["export", "--checkpoint", imported, "--format", "preset", "--out", preset]) == 0
    generator, discriminator = _restore(imported)
    gan = SAGAN.from_preset(preset)
    z, images = _inputs()
    expected = np.asarray(generator(z, training=False))
    np.testing.assert_array_equal(np.asarray(gan.generator(z, training=False)), expected)
    expected = np.asarray(discriminator(images, training=False))
    np.testing.assert_array_equal(np.asarray(gan.discriminator(images, training=False)), expected)
