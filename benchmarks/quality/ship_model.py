"""Turns a Fashion-MNIST training run into the shipped `fashion_mnist32` preset, its certificate, its TF Serving
export and its sample grid. This is how the files in the repository were made:

    python -m keras_sagan train --dataset=fashion_mnist --image_size=32 --conv_dim=64 --batch_size=64 \\
        --ema_decay=0.999 --seed=0 --steps=30000 --model_dir=runs/fm32_main       # stopped and resumed at will
    python benchmarks/quality/ship_model.py --run runs/fm32_main

Steps: load the run's newest readable checkpoint (EMA generator, discriminator); give the EMA
generator standing BatchNorm statistics (`--sampling standing`, the measured default, BUILD.md
"Sampling defaults"; `moving` keeps the copied ones); measure its certificate under the protocol
(`keras_sagan.metrics.certificate`, 10,000 fakes against the 10,000 test images); write the preset
(`keras_sagan/shipped_presets/fashion_mnist32/`: the EMA generator as the generator to sample, and
the discriminator, about 8 MB), the SavedModel (`saved_models/fashion_mnist32/1`) and the README's
grid (`docs/fashion_mnist32_samples.png`). Existing outputs are never overwritten.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--sampling", choices=("standing", "moving"), default="standing")
    parser.add_argument("--name", default="fashion_mnist32")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--hardware", default=None, help="what trained it, for the certificate")
    args = parser.parse_args(argv)

    from keras_sagan import images as images_lib
    from keras_sagan.checkpoint.reading import checkpoint_step, locate_run
    from keras_sagan.export.preset import load_run_networks
    from keras_sagan.export.saved_model import export_generator
    from keras_sagan.metrics import certificate
    from keras_sagan.models import batch_norm_statistics
    from keras_sagan.preset_format import save_preset

    networks, prefix = load_run_networks(args.run)
    step = checkpoint_step(prefix)
    config = locate_run(args.run).read_config()
    train = config.get("train") or {}
    generator = networks["ema_generator"]
    batch_size = int(train.get("batch_size", 64))
    sampling = {"batch_norm_statistics": "moving (the live generator's, copied by the EMA update)"}
    if args.sampling == "standing":
        start = time.time()
        batch_norm_statistics.recalibrate(generator, num_batches=100, batch_size=batch_size, seed=0)
        sampling = {
            "batch_norm_statistics": f"standing: re-estimated on the EMA weights, 100 batches of {batch_size}, seed 0",
            "seconds": round(time.time() - start, 1),
        }
    measured = certificate.certify(generator, num_fakes=10000, num_real=10000, seed=0, data_dir=args.data_dir)
    measured["training"] = {
        "steps": step,
        "checkpoint": os.path.basename(prefix),
        "batch_size": batch_size,
        "run_config": config,
        "hardware": args.hardware or f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
    }
    print(json.dumps(measured["scores"]))
    metadata = {
        "description": "celeba64's architecture at 32x32, 1 channel, trained on Fashion-MNIST (EMA generator).",
        "dataset": "fashion_mnist",
        "step": step,
        "sampling": sampling,
        "certificate": measured,
    }
    preset_dir = os.path.join(ROOT, "keras_sagan", "shipped_presets", args.name)
    save_preset(preset_dir, generator, discriminator=networks["discriminator"], metadata=metadata)
    export_generator(generator, os.path.join(ROOT, "saved_models", args.name), version=1, step=step)
    z = certificate.noise(64, generator.z_dim, 0)
    grid = images_lib.to_uint8(np.asarray(generator(z, training=False)))
    images_lib.save_grid(images_lib.upscale(grid, 64), os.path.join(ROOT, "docs", f"{args.name}_samples.png"))
    print(f"wrote {preset_dir}, saved_models/{args.name}/1 and docs/{args.name}_samples.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
