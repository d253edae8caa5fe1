"""Runs one side of the cross-backend checks in a process of its own (the backend is fixed per process).

`python backend_worker.py [--make DIR] [--step DIR] [READ_DIR ...]`, with `KERAS_BACKEND` set:

- `--make DIR`: builds the two test networks (dcgan with reference attention; resnet, conditional,
  with SAGAN attention) from seeded random weights, gammas set non-zero so attention matters, and
  writes `<name>_{g,d}.weights.h5`, `<name>_{g,d}.keras`, their configs and the shared inputs
  (noise, labels, images, the noise each train step draws) into DIR, and reads them.
- for every directory given: loads those files into fresh networks on this backend, and writes to
  `DIR/read_on_<backend>.npz` their inference and training-mode outputs, attention maps and the
  `.keras` files' outputs; for the `--step` directory also the weights after one SAGAN train step
  from that state with the recorded noise fed in (the slow part, so run on one writer's files).
"""

import argparse
import json
import os

import keras
import numpy as np

import keras_sagan
from keras_sagan.models import Discriminator, Generator

NETWORKS = {
    "dcgan": {"preset": "celeba64", "image_size": 32, "conv_dim": 8, "z_dim": 16},
    "resnet": {
        "preset": "cifar10_32",
        "conv_dim": 8,
        "z_dim": 16,
        "num_classes": 3,
        "attention_variant": "sagan",
    },
}
BATCH = 4


def _make(source):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    inputs = {}
    for name, spec in NETWORKS.items():
        spec = dict(spec)
        preset = spec.pop("preset")
        generator = keras_sagan.build_generator(preset, **spec)
        spec.pop("z_dim")
        discriminator = keras_sagan.build_discriminator(preset, **spec)
        for network in (generator, discriminator):
            for layer in network.attention_layers:
                layer.gamma.assign(0.7)
            network.save_weights(os.path.join(source, f"{name}_{network.name[0]}.weights.h5"))
            network.save(os.path.join(source, f"{name}_{network.name[0]}.keras"))
        with open(os.path.join(source, f"{name}.json"), "w") as f:
            json.dump({"g": generator.get_config(), "d": discriminator.get_config()}, f)
        labels = rng.integers(0, 3, BATCH) if "num_classes" in spec else None
        inputs[f"{name}_z"] = rng.normal(size=(BATCH, 16)).astype("float32")
        inputs[f"{name}_images"] = rng.uniform(-1, 1, (BATCH, 32, 32, 3)).astype("float32")
        if labels is not None:
            inputs[f"{name}_labels"] = labels.astype("int32")
        for i in range(3):  # the noise of 2 D updates and 1 G update
            inputs[f"{name}_step_z{i}"] = rng.normal(size=(BATCH, 16)).astype("float32")
            if labels is not None:
                inputs[f"{name}_step_labels{i}"] = rng.integers(0, 3, BATCH).astype("int32")
            inputs[f"{name}_step_alpha{i}"] = rng.uniform(size=(BATCH, 1, 1, 1)).astype("float32")
    np.savez(os.path.join(source, "inputs.npz"), **inputs)


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)  # torch outputs carry autograd; numpy() needs them detached


def _load(source, name):
    with open(os.path.join(source, f"{name}.json")) as f:
        configs = json.load(f)
    generator, discriminator = Generator.from_config(configs["g"]), Discriminator.from_config(configs["d"])
    generator.build()
    discriminator.build()
    generator.load_weights(os.path.join(source, f"{name}_g.weights.h5"))
    discriminator.load_weights(os.path.join(source, f"{name}_d.weights.h5"))
    return generator, discriminator


def _feed_recorded_noise(gan, inputs, name):
    """Replaces the seeded draws with the recorded noise (the backends' generators differ)."""
    calls = {"noise": 0, "alpha": 0}

    def sample_noise(local_batch):
        i = calls["noise"] % 3
        calls["noise"] += 1
        labels = inputs.get(f"{name}_step_labels{i}")
        return keras.ops.convert_to_tensor(inputs[f"{name}_step_z{i}"]), (
            None if labels is None else keras.ops.convert_to_tensor(labels)
        )

    def interpolation_weights(local_batch):
        i = calls["alpha"] % 2
        calls["alpha"] += 1
        return keras.ops.convert_to_tensor(inputs[f"{name}_step_alpha{i}"]) if gan.gp_weight else None

    gan._sample_noise = sample_noise
    gan._interpolation_weights = interpolation_weights


def _run(source, step):
    inputs = dict(np.load(os.path.join(source, "inputs.npz")))
    out = {}
    for name in NETWORKS:
        z, images, labels = inputs[f"{name}_z"], inputs[f"{name}_images"], inputs.get(f"{name}_labels")
        extra = () if labels is None else (labels,)
        for mode, training in (("inference", False), ("training", True)):
            generator, discriminator = _load(source, name)
            fake, maps = generator(z, *extra, training=training, return_attention=True)
            logits, d_maps = discriminator(images, *extra, training=training, return_attention=True)
            out[f"{name}_{mode}_g"], out[f"{name}_{mode}_d"] = _numpy(fake), _numpy(logits)
            for i, m in enumerate(maps + d_maps):
                out[f"{name}_{mode}_map{i}"] = _numpy(m)
        for part in ("g", "d"):
            model = keras.saving.load_model(os.path.join(source, f"{name}_{part}.keras"))
            args = (z, *extra) if part == "g" else (images, *extra)
            out[f"{name}_keras_{part}"] = _numpy(model(*args, training=False))
        # lr 0.02, not larger: torch's fakes differ from TF's by ~4e-6, enough to cross a ReLU kink
        # in D now and then (measured: 100 of D's input-gradient entries moved by up to 1e-3), and
        # the step scales that difference by lr.
        steps = (("hinge", 0.02, {"ema_decay": 0.9}), ("wgan-gp", 1e-3, {"d_steps": 2})) if step else ()
        for loss, lr, kwargs in steps:
            generator, discriminator = _load(source, name)
            gan = keras_sagan.SAGAN(generator, discriminator, seed=0)
            # SGD: an update proportional to the gradient. Adam's first step is lr * sign(g), which
            # turns float32 round-off on a gradient near 0 into a full +-lr difference.
            gan.compile(
                g_optimizer=keras.optimizers.SGD(lr, momentum=0.5),
                d_optimizer=keras.optimizers.SGD(4 * lr, momentum=0.5),
                loss=loss,
                **kwargs,
            )
            _feed_recorded_noise(gan, inputs, name)
            data = images if labels is None else (images, labels)
            gan.fit(*((data,) if labels is None else data), batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
            weights = gan.generator.weights + gan.discriminator.weights
            if gan.ema_generator is not None:
                weights += gan.ema_generator.weights
            for i, w in enumerate(weights):
                out[f"{name}_{loss}_step_w{i}"] = np.asarray(w)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--make")
    parser.add_argument("--step")
    parser.add_argument("read", nargs="*")
    args = parser.parse_args()
    if args.make:
        _make(args.make)
    backend = keras.backend.backend()
    for source_dir in dict.fromkeys([d for d in (args.make, args.step) if d] + args.read):
        out = _run(source_dir, step=source_dir == args.step)
        np.savez(os.path.join(source_dir, f"read_on_{backend}.npz"), backend=backend, **out)
