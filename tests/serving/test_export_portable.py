"""ONNX and LiteRT exports (`export_onnx`, `export_litert`, `keras-sagan export --format`): the files,
run by onnxruntime and the LiteRT interpreter in a process that cannot import keras_sagan, give the
Keras generator's inference output; the graph holds W / sigma and no `u`; writes are atomic."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from cli_checks import cli_error  # noqa: E402
from run_fixtures import ema_sagan, write_run

import keras_sagan
from keras_sagan import cli
from keras_sagan.export import formats, portable

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
RUNNER = os.path.join(os.path.dirname(__file__), "run_portable.py")
Z_DIM = 16
# Small variants of the presets: celeba64 (dcgan), cifar10_32 conditional (resnet, conditional
# BatchNorm), and an unconditional resnet at 64x64 (imagenet128's architecture, plain BatchNorm).
MODELS = {
    "celeba64": ("celeba64", {"image_size": 32, "conv_dim": 8}),
    "cifar10_32": ("cifar10_32", {"conv_dim": 8, "num_classes": 10}),
    "resnet64": ("imagenet128", {"image_size": 64, "conv_dim": 4, "num_classes": None}),
}


def _inputs(generator, batch=4):
    rng = np.random.RandomState(0)
    inputs = {"z": rng.randn(batch, Z_DIM).astype("float32")}
    if generator.num_classes is not None:
        inputs["labels"] = rng.randint(0, generator.num_classes, batch).astype("int32")
    return inputs


def _keras_images(generator, inputs):
    args = [inputs["z"]] + ([inputs["labels"]] if "labels" in inputs else [])
    return np.asarray(generator(*args, training=False))


def _run_isolated(tmp_path, inputs, *models):
    np.savez(tmp_path / "inputs.npz", **inputs)
    out = tmp_path / "out.npz"
    proc = subprocess.run(
        [sys.executable, RUNNER, str(tmp_path / "inputs.npz"), str(out), *map(str, models)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "blocked: keras_sagan" in proc.stdout
    return dict(np.load(out))


@pytest.fixture(scope="module", params=sorted(MODELS))
def exported(request, tmp_path_factory):
    """`(generator, onnx path, litert path)` for one model, with its BatchNorm statistics moved off 0/1."""
    preset, overrides = MODELS[request.param]
    generator = keras_sagan.build_generator(preset, z_dim=Z_DIM, **overrides)
    rng = np.random.RandomState(1)
    for variable in generator.non_trainable_variables:  # moving statistics and u: not their initial values
        value = rng.uniform(0.5, 1.5, variable.shape) if "variance" in variable.path else rng.randn(*variable.shape)
        variable.assign(value.astype("float32"))
    for layer in generator.attention_layers:
        layer.gamma.assign(0.7)  # Attention contributes.
    directory = tmp_path_factory.mktemp(request.param)
    onnx_path = portable.export_onnx(generator, directory / "g.onnx")
    # The resnet generators need a fixed batch for LiteRT (test_litert_dynamic_batch_...).
    batch = None if generator.architecture == "dcgan" else 4
    litert_path = portable.export_litert(generator, directory / "g.tflite", batch_size=batch)
    return generator, onnx_path, litert_path


def test_onnx_and_litert_equal_keras_in_a_process_without_keras_sagan(exported, tmp_path):
    generator, onnx_path, litert_path = exported
    inputs = _inputs(generator)
    expected = _keras_images(generator, inputs)
    results = _run_isolated(tmp_path, inputs, onnx_path, litert_path)
    assert ("1/images_b1" in results) == (generator.architecture == "dcgan")  # LiteRT's dynamic batch
    for index in ("0", "1"):  # ONNX Runtime, LiteRT
        np.testing.assert_allclose(results[f"{index}/images"], expected, atol=1e-4)
        if f"{index}/images_b1" in results:  # A batch of one through the dynamic batch dimension.
            np.testing.assert_allclose(results[f"{index}/images_b1"], expected[:1], atol=1e-4)
        uint8 = np.clip(np.round((results[f"{index}/images"] + 1.0) * 127.5), 0, 255).astype("uint8")
        np.testing.assert_array_equal(results[f"{index}/images_uint8"], uint8)
    assert expected.shape == (4, generator.image_size, generator.image_size, 3)


def test_onnx_graph_inputs_outputs_and_folded_weights(exported):
    generator, onnx_path, _ = exported
    model = onnx.load(onnx_path)
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    expected_inputs = {"z"} | ({"labels"} if generator.num_classes else set())
    assert set(inputs) == expected_inputs
    assert inputs["z"].elem_type == onnx.TensorProto.FLOAT
    assert inputs["z"].shape.dim[0].dim_param and inputs["z"].shape.dim[1].dim_value == Z_DIM  # dynamic batch
    assert [o.name for o in model.graph.output] == ["images", "images_uint8"]
    # Inference graph: no power iteration (it normalises u with a square root), no u constant left.
    ops = {node.op_type for node in model.graph.node}
    assert not ops & {"Sqrt", "ReduceL2", "ReduceSumSquare", "Loop"}, ops
    constants = [onnx.numpy_helper.to_array(t).ravel() for t in model.graph.initializer]
    u_values = [np.asarray(v).ravel() for v in generator.non_trainable_variables if v.path.endswith("/u")]
    assert u_values
    for u in u_values:
        assert not any(c.shape == u.shape and np.allclose(c, u) for c in constants)


def test_litert_dynamic_batch_refused_for_resnet_in_one_line(tmp_path):
    generator = keras_sagan.build_generator("cifar10_32", conv_dim=8, z_dim=Z_DIM)
    generator.save(tmp_path / "g.keras")
    proc = subprocess.run(
        [sys.executable, "-m", "keras_sagan", "export", "--checkpoint", str(tmp_path / "g.keras"),
         "--format", "litert", "--out", str(tmp_path / "g.tflite")],
        capture_output=True, text=True, env={**ENV, "PYTHONPATH": os.getcwd()}, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    # The converter's pages of MLIR diagnostics are held back: the error is the one line.
    assert "loc(" not in proc.stderr and "tf.Conv2D" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and lines[0].endswith("give a fixed batch: --batch N (batch_size=N)"), proc.stderr[-2000:]
    assert sorted(os.listdir(tmp_path)) == ["g.keras"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    gan = ema_sagan()
    model_dir = str(tmp_path_factory.mktemp("runs") / "celeba")
    write_run(model_dir, gan)
    return model_dir, gan


def test_cli_litert_fixed_batch_from_run_uses_ema(run_dir, tmp_path, capsys):
    model_dir, gan = run_dir
    out = str(tmp_path / "g.tflite")
    assert cli.main(["export", "--checkpoint", model_dir, "--out", out, "--format", "litert", "--batch", "2"]) == 0
    assert capsys.readouterr().out.strip() == out
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=out)
    details = interpreter.get_signature_runner().get_input_details()
    assert list(details["z"]["shape_signature"]) == [2, 128]
    z = np.random.RandomState(0).randn(2, 128).astype("float32")
    images = interpreter.get_signature_runner()(z=z)["images"]
    np.testing.assert_allclose(images, np.asarray(gan.ema_generator(z, training=False)), atol=1e-4)
    assert not np.allclose(images, np.asarray(gan.generator(z, training=False)), atol=1e-3)


def test_cli_onnx_from_run(run_dir, tmp_path, capsys):
    import onnxruntime

    model_dir, gan = run_dir
    out = str(tmp_path / "g.onnx")
    assert cli.main(["export", "--checkpoint", model_dir, "--out", out, "--format", "onnx"]) == 0
    z = np.random.RandomState(0).randn(3, 128).astype("float32")
    (images,) = onnxruntime.InferenceSession(out).run(["images"], {"z": z})
    np.testing.assert_allclose(images, np.asarray(gan.ema_generator(z, training=False)), atol=1e-4)


def test_cli_bad_inputs(run_dir, tmp_path, capsys):
    model_dir, _ = run_dir
    base = ["export", "--checkpoint", model_dir, "--out"]
    expected = "`format` must be one of ('saved_model', 'onnx', 'litert', 'preset'); received: format='tflite'"
    assert expected in cli_error(capsys, [*base, str(tmp_path / "g.tflite"), "--format", "tflite"])
    existing = tmp_path / "exists.onnx"
    existing.write_bytes(b"keep")
    assert f"{existing} already exists; refusing to overwrite it" in cli_error(
        capsys, [*base, str(existing), "--format", "onnx"]
    )
    assert existing.read_bytes() == b"keep"
    assert "must end with .tflite" in cli_error(capsys, [*base, str(tmp_path / "g.onnx"), "--format", "litert"])
    assert "`batch` applies to format 'litert' only" in cli_error(
        capsys, [*base, str(tmp_path / "g.onnx"), "--format", "onnx", "--batch", "2"]
    )
    assert "`version` applies to format 'saved_model' only" in cli_error(
        capsys, [*base, str(tmp_path / "g.onnx"), "--format", "onnx", "--version", "2"]
    )
    assert "`batch` must be None or an int >= 1; received: batch=0" in cli_error(
        capsys, [*base, str(tmp_path / "g.tflite"), "--format", "litert", "--batch", "0"]
    )
    assert sorted(os.listdir(tmp_path)) == ["exists.onnx"]  # Nothing written, no temp file left.


def test_failed_export_leaves_no_file(tmp_path, monkeypatch):
    generator = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8, z_dim=Z_DIM)

    def fail(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(type(portable.inference_model(generator)), "export", fail)
    with pytest.raises(RuntimeError, match="converter crashed"):
        portable.export_onnx(generator, tmp_path / "g.onnx")
    assert os.listdir(tmp_path) == []


def test_missing_exporter_names_the_package(tmp_path):
    generator = keras_sagan.build_generator("celeba64", image_size=32, conv_dim=8, z_dim=Z_DIM)
    generator.save(tmp_path / "g.keras")
    # tf2onnx made unimportable: the command must name it (one line, exit status 2).
    script = (
        "import importlib.abc, sys\n"
        "class Blocker(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'tf2onnx':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}')\n"
        "sys.meta_path.insert(0, Blocker())\n"
        "from keras_sagan import cli\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "export", "--checkpoint", str(tmp_path / "g.keras"), "--format", "onnx",
         "--out", str(tmp_path / "g.onnx")],
        capture_output=True, text=True, env={**ENV, "PYTHONPATH": os.getcwd()}, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert lines == [
        "error: format 'onnx' needs the tf2onnx package(s), which are not installed: pip install tf2onnx"
    ], proc.stderr[-2000:]
    assert not os.path.exists(tmp_path / "g.onnx")


def test_inference_model_reads_no_u_and_equals_the_generator():
    generator = keras_sagan.build_generator("cifar10_32", conv_dim=8, z_dim=Z_DIM, num_classes=10)
    inputs = _inputs(generator)
    model = portable.inference_model(generator)
    before = model(inputs)
    # Spectral norm is folded into the copy's kernels: scrambling every u it still holds changes nothing.
    scrambled = [v for v in model.variables if v.path.endswith("/u")]
    assert scrambled
    for variable in scrambled:
        variable.assign(np.random.RandomState(2).randn(*variable.shape).astype("float32"))
    after = model(inputs)
    np.testing.assert_array_equal(np.asarray(after["images"]), np.asarray(before["images"]))
    np.testing.assert_allclose(np.asarray(after["images"]), _keras_images(generator, inputs), atol=1e-5)
    assert after["images_uint8"].dtype == "uint8"


def test_cli_formats_are_the_exporters_and_the_package_exports_them():
    from keras_sagan.cli import export as export_command

    assert export_command.FORMATS == formats.FORMATS  # The command lists them without importing TensorFlow.
    assert keras_sagan.export_onnx is portable.export_onnx and keras_sagan.export_litert is portable.export_litert
