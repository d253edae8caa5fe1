"""The quality benchmark: keras_sagan and the reference trained side by side on Fashion-MNIST, scored on the
domain network at intervals.

    python benchmarks/quality/run.py --bf16               # CPU mode: 2 seeds x 250 steps, 64x64, conv_dim 32, batch 16
    python benchmarks/quality/run.py --steps 200 --seeds 0 --eval_every 100   # a quick look
    python benchmarks/quality/run.py --mode gpu           # JAX + CUDA torch on a GPU machine (BUILD.md)

Both sides get the same images (the Fashion-MNIST train split mapped to 64x64 by
`keras_sagan.data.mnist`: pad 28->32, resize to 64; one array both read), the same batch, steps,
seeds and learning rates, and are scored on the same noise by the same network
(`keras_sagan.metrics.certificate`'s protocol, against the 10,000 test images). The reference is
our PyTorch model of heykeetae/Self-Attention-GAN (`benchmarks/reference_model.py`) trained with the
reference's iteration as it is (`reference_side.py`); its architecture is `celeba64`'s, so the
comparison runs at 64x64, the only size the reference builds.

Each side runs in a process of its own, one after the other (never side by side on 2 cores).
Writes `results_<mode>.json` (every evaluation, the real-data floor, the settings, the machine),
`curves_<mode>.png` (FID, KID, recall and the rarest class's share against steps) and prints a
Markdown table. The sides write their samples (uint8, on the protocol's noise) into `--work`;
scoring happens once both are done. `--skip-train` rescores what the work folder holds.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODES = {
    "cpu": {"steps": 250, "eval_every": 125, "seeds": [0, 1], "batch_size": 16, "conv_dim": 32, "num_fakes": 3000},
    "gpu": {"steps": 4000, "eval_every": 500, "seeds": [0, 1, 2], "batch_size": 64, "conv_dim": 64, "num_fakes": 10000},
}
IMAGE_SIZE = 64
TAGS = {"float32": "float32", "mixed_bfloat16": "bf16"}  # file-name tags: no underscore (names split on it)


def prepare_data(work, num_fakes, data_dir):
    """Writes what both sides train and sample on: train images (uint8) and the protocol's noise."""
    from keras_sagan.data.mnist import load_mnist_arrays, mnist_to_model
    from keras_sagan.metrics import certificate

    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, f"train_{IMAGE_SIZE}.npy")
    if not os.path.exists(path):
        images, _ = load_mnist_arrays("fashion_mnist", "train", data_dir)
        mapped = np.concatenate(
            [mnist_to_model(images[i : i + 2000], IMAGE_SIZE).numpy() for i in range(0, len(images), 2000)]
        )
        np.save(path, np.round((mapped + 1) * 127.5).astype(np.uint8))
    np.save(os.path.join(work, "z.npy"), certificate.noise(num_fakes, 128, 1234))


def prepare_scoring(work, data_dir):
    """Real test features and the real-data floor (the same network's numbers, 10k train vs 10k test)."""
    from keras_sagan.metrics import certificate
    from keras_sagan.metrics.domain import DomainClassifierExtractor

    extractor = DomainClassifierExtractor()
    real = certificate.real_features(extractor, IMAGE_SIZE, 10000, data_dir)
    train = np.load(os.path.join(work, f"train_{IMAGE_SIZE}.npy"), mmap_mode="r")[:10000]
    fake, logits = certificate.fake_features(
        lambda index: train[index].astype(np.float32) / 127.5 - 1.0, extractor, np.arange(10000)
    )
    floor = certificate.score(real, fake, logits, 0)
    floor["what"] = "first 10,000 train images (as fakes) vs the 10,000 test images"
    return extractor, real, floor


def run(command, env=None):
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, env={**os.environ, **(env or {})})


def score_samples(work, extractor, real):
    """Scores every sample file the two sides wrote: one record per (side, seed, step, generator, sampling)."""
    from keras_sagan.metrics import certificate

    records = []
    for name in sorted(os.listdir(work)):
        if not (name.endswith(".npy") and name.startswith(("keras_", "reference_", "refmain_"))):
            continue
        parts = name[:-4].split("_")
        if parts[0] in ("reference", "refmain"):  # reference_seed<s>_step<n>; refmain: its own main.py
            side = "reference" if parts[0] == "reference" else "reference main.py"
            record = {"side": side, "tag": parts[0], "generator": "live", "sampling": "batch"}
            seed, step = parts[1], parts[2]
        else:  # keras_<tag>_seed<s>_step<n>_<generator>_<sampling>
            record = {"side": "keras_sagan", "tag": parts[1], "generator": parts[4], "sampling": parts[5]}
            seed, step = parts[2], parts[3]
        record.update(seed=int(seed[4:]), step=int(step[4:]))
        images = np.load(os.path.join(work, name))
        fake, logits = certificate.fake_features(
            lambda index, images=images: images[index].astype(np.float32) / 127.5 - 1.0,
            extractor,
            np.arange(len(images)),
        )
        meta = json.load(open(os.path.join(work, name[:-4] + ".json")))
        record.update(train_seconds=meta["train_seconds"], **certificate.score(real, fake, logits, record["seed"]))
        records.append(record)
    return records


def plot(records, floor, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for r in records:
        if (r["side"], r["generator"], r["sampling"]) in (
            ("keras_sagan", "ema", "moving"),
            ("reference", "live", "batch"),
            ("reference main.py", "live", "batch"),
        ) or (r["side"] == "keras_sagan" and r["generator"] == "live" and r["sampling"] == "batch"):
            label = {
                "reference": "reference (torch, its trainer; train-mode samples)",
                "reference main.py": "reference's own main.py (unmodified; train-mode samples)",
                "keras_sagan": f"keras_sagan {r['tag']} ({r['generator']}, {r['sampling']} BN stats)",
            }[r["side"]]
            curves.setdefault(label, {}).setdefault(r["seed"], []).append(r)
    keys = [
        ("fid", "FID (domain network)"),
        ("kid", "KID"),
        ("recall", "recall"),
        ("min_class_fraction", "rarest class share"),
    ]
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4))
    for ax, (key, name) in zip(axes, keys):
        for index, (label, seeds) in enumerate(sorted(curves.items())):
            color = f"C{index}"
            for seed_index, (_, rows) in enumerate(sorted(seeds.items())):
                rows = sorted(rows, key=lambda r: r["step"])
                ax.plot(
                    [r["step"] for r in rows],
                    [r[key] for r in rows],
                    color=color,
                    marker="o",
                    linestyle="-" if seed_index == 0 else "--",
                    label=label if seed_index == 0 else None,
                )
        if key in floor:
            ax.axhline(
                floor[key], color="grey", linewidth=1, linestyle=":", label="real-data floor" if key == "fid" else None
            )
        ax.set_xlabel("step")
        ax.set_title(name)
        if key == "fid":
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def table(records):
    last = max(r["step"] for r in records)
    rows = [r for r in records if r["step"] == last]
    lines = [
        "| side | generator | BN statistics | seed | FID | KID | precision | recall | rarest class |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["side"], r["tag"], r["generator"], r["sampling"], r["seed"])):
        lines.append(
            f"| {r['side']} {r['tag'] if r['side'] == 'keras_sagan' else ''} | {r['generator']} | {r['sampling']} "
            f"| {r['seed']} | {r['fid']:.2f} | {r['kid']:.4f} | {r['precision']:.3f} | {r['recall']:.3f} "
            f"| {r['min_class_fraction']:.3f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=sorted(MODES), default="cpu")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--eval_every", type=int)
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--batch_size", type=int)
    parser.add_argument("--conv_dim", type=int)
    parser.add_argument("--num_fakes", type=int)
    parser.add_argument("--bf16", action="store_true", help="also train keras_sagan in mixed_bfloat16 (first seed)")
    parser.add_argument("--no-reference", dest="reference", action="store_false", help="skip the reference side")
    parser.add_argument(
        "--reference-dir",
        default=None,
        help="a clone of heykeetae/Self-Attention-GAN: also train its own main.py, unmodified (needs CUDA; "
        "reference_main.py)",
    )
    parser.add_argument("--data_dir", default=None, help="folder of the Fashion-MNIST IDX files")
    parser.add_argument("--work", default=os.path.join(ROOT, "runs", "quality"))
    parser.add_argument("--out", default=HERE)
    parser.add_argument("--skip-train", dest="train", action="store_false", help="rescore what --work holds")
    args = parser.parse_args(argv)
    settings = dict(MODES[args.mode])
    for key in settings:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if settings["steps"] < 1 or settings["eval_every"] < 1:
        parser.error(
            f"--steps and --eval_every must be >= 1; received {settings['steps']} and {settings['eval_every']}"
        )

    start = time.time()
    prepare_data(args.work, settings["num_fakes"], args.data_dir)
    common = [
        "--work",
        args.work,
        "--steps",
        str(settings["steps"]),
        "--eval_every",
        str(settings["eval_every"]),
        "--batch_size",
        str(settings["batch_size"]),
        "--conv_dim",
        str(settings["conv_dim"]),
    ]
    keras_env = {"KERAS_BACKEND": "jax"} if args.mode == "gpu" else {}
    runs = [(seed, "float32") for seed in settings["seeds"]] + (
        [(settings["seeds"][0], "mixed_bfloat16")] if args.bf16 else []
    )
    if args.train:
        for seed, precision in runs:
            run(
                [
                    sys.executable,
                    os.path.join(HERE, "keras_side.py"),
                    *common,
                    "--seed",
                    str(seed),
                    "--mixed_precision",
                    precision,
                    "--tag",
                    TAGS[precision],
                ],
                keras_env,
            )
            if args.reference and precision == "float32":
                device = ["--device", "cuda"] if args.mode == "gpu" else []
                run([sys.executable, os.path.join(HERE, "reference_side.py"), *common, "--seed", str(seed), *device])
    if args.train and args.reference_dir:
        sys.path.insert(0, HERE)
        from reference_main import run_reference_main

        for seed in settings["seeds"]:
            run_reference_main(
                args.reference_dir,
                args.work,
                seed,
                settings["steps"],
                settings["eval_every"],
                settings["batch_size"],
                settings["conv_dim"],
            )
    extractor, real, floor = prepare_scoring(args.work, args.data_dir)
    records = score_samples(args.work, extractor, real)
    result = {
        "settings": {
            **settings,
            "mode": args.mode,
            "image_size": IMAGE_SIZE,
            "preset": "celeba64",
            "channels": 1,
            "loss": "hinge",
            "lr": "G 1e-4, D 4e-4, Adam(0, 0.9)",
            "ema_decay (keras_sagan)": 0.999,
            "reference_dir": args.reference_dir,
        },
        "floor": floor,
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "wall_seconds": round(time.time() - start, 1),
        "records": records,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"results_{args.mode}.json"), "w") as f:
        json.dump(result, f, indent=1)
    title = (
        f"Fashion-MNIST at 64x64, celeba64 architecture, conv_dim {settings['conv_dim']}, "
        f"batch {settings['batch_size']}, "
        f"seeds {settings['seeds']} (solid: first seed); domain-network FID vs 10k test images"
    )
    plot(records, floor, os.path.join(args.out, f"curves_{args.mode}.png"), title)
    print(f"floor FID {floor['fid']:.3f}")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
