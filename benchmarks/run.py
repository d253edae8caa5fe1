"""Benchmarks keras_sagan on this machine and prints img/s and peak RSS; writes JSON.

    python benchmarks/run.py                         # everything, JSON to benchmarks/results.json
    python benchmarks/run.py --only train_b64_xla0   # one workload
    python benchmarks/run.py --quick                 # fewer timed iterations
    python benchmarks/run.py --reference-python /tmp/torchvenv/bin/python
                                                     # also time the PyTorch reference, beside each workload
    python benchmarks/run.py --backend both --only train_b64_xla0
                                                     # TensorFlow and JAX side by side, in one run

Each workload runs in its own subprocess, so the peak RSS (ru_maxrss) is that
workload's alone. `speedup_vs_reference` divides the issue's figures for the
PyTorch reference (heykeetae/Self-Attention-GAN; 2 cores, PyTorch 2.13 CPU,
2 threads) by ours. Shared cloud CPUs drift by tens of percent within an hour,
so with `--reference-python` (a Python with torch; see
benchmarks/reference_torch.py) the reference's workload is also timed right
after ours, and `speedup_vs_live_reference` is the ratio of those two.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from timing import peak_rss_mb, time_calls

# name -> (kind, settings)
WORKLOADS = {
    "train_b64_xla0": ("train", {"batch": 64, "jit": False, "policy": "float32"}),
    "train_b64_xla1": ("train", {"batch": 64, "jit": True, "policy": "float32"}),
    "train_b16_xla0": ("train", {"batch": 16, "jit": False, "policy": "float32"}),
    "train_b16_xla1": ("train", {"batch": 16, "jit": True, "policy": "float32"}),
    "train_b64_bf16": ("train", {"batch": 64, "jit": False, "policy": "mixed_bfloat16"}),
    "train_b16_bf16": ("train", {"batch": 16, "jit": False, "policy": "mixed_bfloat16"}),
    "generate_b64": ("generate", {"batch": 64, "policy": "float32"}),
    "generate_b64_bf16": ("generate", {"batch": 64, "policy": "mixed_bfloat16"}),
    "attention_32": ("attention", {"size": 32, "channels": 64, "batch": 64}),
    "attention_64": ("attention", {"size": 64, "channels": 32, "batch": 16}),
    "attention_128": ("attention", {"size": 128, "channels": 32, "batch": 16}),
    "attention_64_full_map": ("attention", {"size": 64, "channels": 32, "batch": 16, "chunk": None}),
}

# Seconds per call of the PyTorch reference on this machine kind.
REFERENCE_SECONDS = {
    "train_b64": 2.26,
    "train_b16": 0.64,
    "generate_b64": 0.34,
    "attention_32": 0.73,
    "attention_64": 2.9,
}
REFERENCE_PEAK_MB = {"train_b64": 2300, "train_b16": 970}


def _reference_name(name):
    """The reference workload that `name` compares with: train_b64_bf16 -> train_b64."""
    if name.startswith("train"):
        return "_".join(name.split("_")[:2])
    if name.startswith("generate"):
        return "generate_b64"
    return {"attention_64_full_map": "attention_64"}.get(name, name)


def _jax_step(kind, settings, rng):
    """`(step, images_per_call, warmup)` of a workload on JAX: jitted calls, blocked until done."""
    import jax
    import keras

    import keras_sagan
    from keras_sagan.layers import SelfAttention

    if kind == "train":
        keras.config.set_dtype_policy(settings["policy"])
        gan = keras_sagan.build_sagan("celeba64", seed=0)
        gan.compile()  # jitted on JAX whatever jit_compile says
        images = rng.uniform(-1, 1, (settings["batch"], 64, 64, 3)).astype("float32")
        return (lambda: gan.train_on_batch(images)), settings["batch"], 2
    if kind == "generate":
        keras.config.set_dtype_policy(settings["policy"])
        generator = keras_sagan.build_generator("celeba64")
        z = rng.normal(size=(settings["batch"], 128)).astype("float32")
        groups = (generator.trainable_variables, generator.non_trainable_variables)
        values = [[v.value for v in group] for group in groups]
        run = jax.jit(lambda t, n, z: generator.stateless_call(t, n, z, training=False)[0])
        return (lambda: run(*values, z).block_until_ready()), settings["batch"], 2
    size, channels, batch = settings["size"], settings["channels"], settings["batch"]
    layer = SelfAttention(variant="reference", query_chunk_size=settings.get("chunk", "auto"))
    x = rng.normal(size=(batch, size, size, channels)).astype("float32")
    layer.build(x.shape)
    layer.gamma.assign(1.0)
    non_trainable = [v.value for v in layer.non_trainable_variables]

    def loss(x, trainable):
        return jax.numpy.sum(layer.stateless_call(trainable, non_trainable, x, training=True)[0])

    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    trainable = [v.value for v in layer.trainable_variables]
    return (lambda: grad(x, trainable)[0].block_until_ready()), batch, 1


def _run_workload(name, iterations):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np

    kind, settings = WORKLOADS[name]
    rng = np.random.default_rng(0)
    result = {"workload": name, "backend": keras.backend.backend(), **settings}
    if keras.backend.backend() == "jax":
        step, images_per_call, warmup = _jax_step(kind, settings, rng)
        return _measure(result, name, step, images_per_call, warmup, iterations)
    import tensorflow as tf

    import keras_sagan
    from keras_sagan.layers import SelfAttention

    if kind == "train":
        keras.config.set_dtype_policy(settings["policy"])
        gan = keras_sagan.build_sagan("celeba64", seed=0)
        gan.compile(jit_compile=settings["jit"])
        images = rng.uniform(-1, 1, (settings["batch"], 64, 64, 3)).astype("float32")
        batch = tf.constant(images)

        def step():
            gan.train_on_batch(batch)

        images_per_call = settings["batch"]
        warmup = 2
    elif kind == "generate":
        keras.config.set_dtype_policy(settings["policy"])
        generator = keras_sagan.build_generator("celeba64")
        z = tf.constant(rng.normal(size=(settings["batch"], 128)).astype("float32"))
        run = tf.function(lambda: generator(z, training=False))

        def step():
            run().numpy()

        images_per_call = settings["batch"]
        warmup = 2
    else:
        size, channels, batch = settings["size"], settings["channels"], settings["batch"]
        layer = SelfAttention(variant="reference", query_chunk_size=settings.get("chunk", "auto"))
        x = tf.constant(rng.normal(size=(batch, size, size, channels)).astype("float32"))
        layer.build(x.shape)
        layer.gamma.assign(1.0)

        @tf.function
        def fwd_bwd():
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x, training=True))
            return tape.gradient(loss, [x] + layer.trainable_weights)

        def step():
            fwd_bwd()[0].numpy()

        images_per_call = batch
        warmup = 1
    return _measure(result, name, step, images_per_call, warmup, iterations)


def _measure(result, name, step, images_per_call, warmup, iterations):
    rss_before = peak_rss_mb()  # after building, before the first call
    median, times = time_calls(step, warmup, iterations)
    result.update(
        {
            "seconds_per_call": round(median, 4),
            "min_seconds_per_call": round(min(times), 4),
            "images_per_second": round(images_per_call / median, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "rss_increase_mb": round(peak_rss_mb() - rss_before, 1),
            "times": [round(t, 4) for t in times],
        }
    )
    base = _reference_name(name)
    if base in REFERENCE_SECONDS:
        result["speedup_vs_reference"] = round(REFERENCE_SECONDS[base] / median, 2)
    if base in REFERENCE_PEAK_MB:
        result["rss_vs_reference"] = round(result["peak_rss_mb"] / REFERENCE_PEAK_MB[base], 2)
    return result


def _machine():
    import platform

    import jax
    import keras
    import tensorflow as tf

    model = ""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "jax": jax.__version__,
        "keras": keras.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=sorted(WORKLOADS), help="run only these workloads")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per workload")
    parser.add_argument("--quick", action="store_true", help="3 timed iterations per workload")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results.json"))
    parser.add_argument(
        "--reference-python",
        help="a Python with torch installed: also time the PyTorch reference beside each workload",
    )
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax", "both"),
        default="tensorflow",
        help="Keras backend of the workloads; both: each workload on TensorFlow, then right after on JAX",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    iterations = 3 if args.quick else args.iterations
    if args.iterations < 1:
        parser.error(f"--iterations must be >= 1; received {args.iterations}")
    if args.reference_python and not (
        os.path.isfile(args.reference_python) and os.access(args.reference_python, os.X_OK)
    ):
        parser.error(f"--reference-python must be an executable Python with torch; received {args.reference_python!r}")
    if args.child:
        print(json.dumps(_run_workload(args.child, iterations)))
        return
    results = []
    machine = _machine()

    def write():
        # After every workload, so an interrupted run keeps what it measured.
        with open(args.out, "w") as f:
            json.dump({"machine": machine, "results": results}, f, indent=2)

    reference_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_torch.py")
    backends = ("tensorflow", "jax") if args.backend == "both" else (args.backend,)
    runs = [(name, b) for name in args.only or list(WORKLOADS) for b in backends]
    for name, backend_name in runs:
        print(f"running {name} on {backend_name} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, "--iterations", str(iterations)],
            capture_output=True,
            text=True,
            env={**os.environ, "KERAS_BACKEND": backend_name},
        )
        if proc.returncode != 0:
            results.append({"workload": name, "backend": backend_name, "error": proc.stderr.strip().splitlines()[-1:]})
            print(f"  {name}: FAILED {results[-1]['error']}", flush=True)
            write()
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        reference = _reference_name(name)
        if args.reference_python and reference in REFERENCE_SECONDS:
            ref = subprocess.run(
                [args.reference_python, reference_script, "--child", reference, "--iterations", str(iterations)],
                capture_output=True,
                text=True,
            )
            if ref.returncode == 0 and ref.stdout.strip():
                live = json.loads(ref.stdout.strip().splitlines()[-1])
                result["live_reference"] = live
                result["speedup_vs_live_reference"] = round(live["seconds_per_call"] / result["seconds_per_call"], 2)
                if reference in REFERENCE_PEAK_MB:
                    result["rss_vs_live_reference"] = round(result["peak_rss_mb"] / live["peak_rss_mb"], 2)
            else:
                result["live_reference"] = {"error": ref.stderr.strip().splitlines()[-1:] or ["no output"]}
        results.append(result)
        write()
        extra = f", {result['speedup_vs_reference']}x reference" if "speedup_vs_reference" in result else ""
        if "speedup_vs_live_reference" in result:
            live = result["live_reference"]
            extra += f", {result['speedup_vs_live_reference']}x live reference ({live['seconds_per_call']} s/call)"
        print(
            f"  {name} [{backend_name}]: {result['seconds_per_call']} s/call (min {result['min_seconds_per_call']}), "
            f"{result['images_per_second']} img/s, peak RSS {result['peak_rss_mb']} MB "
            f"(+{result['rss_increase_mb']} MB in the calls){extra}",
            flush=True,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted: the workloads finished so far are in the JSON file")
