"""File sizes and latency per image of a generator exported as SavedModel, ONNX and LiteRT, on this CPU.

    python benchmarks/portable.py                       # celeba64 (64x64, conv_dim 64), random weights
    python benchmarks/portable.py --preset cifar10_32 --num_classes 10 --iterations 20

Exports the preset's generator (random weights: latency does not depend on them) in the three
formats, then times each runtime in its own process at batch 1 and 16: the SavedModel's
`serving_default` through `tf.saved_model.load`, the ONNX model in onnxruntime (CPU provider) and
the LiteRT model in the ai-edge-litert interpreter (XNNPACK). The resnet presets convert to LiteRT
only with a fixed batch, so one LiteRT file per batch size is written for every preset. Prints one
JSON object. Figures, not tests: on a shared CPU they move by tens of percent from minute to minute.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import time_calls  # noqa: E402

BATCHES = (1, 16)


def _size_mb(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files) / 2**20
    return os.path.getsize(path) / 2**20


def _child(runtime, path, batch, z_dim, num_classes, iterations, threads):
    import numpy as np

    rng = np.random.RandomState(0)
    feed = {"z": rng.randn(batch, z_dim).astype("float32")}
    if num_classes:
        feed["labels"] = rng.randint(0, num_classes, batch).astype("int32")
    if runtime == "saved_model":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        signature = tf.saved_model.load(path).signatures["serving_default"]
        tensors = {k: tf.constant(v) for k, v in feed.items()}

        def call():
            return signature(**tensors)["images"].numpy()
    elif runtime == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        def call():
            return session.run(["images"], feed)[0]
    else:
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=path, num_threads=threads).get_signature_runner()

        def call():
            return runner(**feed)["images"]

    median, times = time_calls(call, 3, iterations)
    return {
        "seconds_per_batch": median,
        "ms_per_image": 1000 * median / batch,
        "min_ms_per_image": 1000 * min(times) / batch,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="celeba64")
    parser.add_argument("--num_classes", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="Threads per runtime (default: %(default)s).")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--z_dim", type=int, default=128, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        runtime, path, batch, num_classes = args.child
        result = _child(runtime, path, int(batch), args.z_dim, int(num_classes), args.iterations, args.threads)
        print(json.dumps(result))
        return

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras_sagan
    from keras_sagan.export import portable, saved_model

    overrides = {} if args.num_classes is None else {"num_classes": args.num_classes}
    generator = keras_sagan.build_generator(args.preset, **overrides)
    directory = tempfile.mkdtemp(prefix="portable_")
    files = {
        "saved_model": saved_model.export_generator(generator, os.path.join(directory, "saved_model")),
        "onnx": portable.export_onnx(generator, os.path.join(directory, "g.onnx")),
    }
    for batch in BATCHES:
        files[f"litert_b{batch}"] = portable.export_litert(
            generator, os.path.join(directory, f"g_b{batch}.tflite"), batch
        )
    results = {
        "preset": args.preset,
        "image_size": generator.image_size,
        "parameters": generator.count_params(),
        "threads": args.threads,
        "file_mb": {name: round(_size_mb(path), 2) for name, path in files.items()},
    }
    for runtime in ("saved_model", "onnx", "litert"):
        for batch in BATCHES:
            path = files[f"litert_b{batch}"] if runtime == "litert" else files[runtime]
            command = [sys.executable, __file__, "--child", runtime, path, str(batch), str(generator.num_classes or 0),
                       "--z_dim", str(generator.z_dim), "--iterations", str(args.iterations),
                       "--threads", str(args.threads)]  # fmt: skip
            proc = subprocess.run(command, capture_output=True, text=True, check=True)
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            results[f"{runtime}_b{batch}_ms_per_image"] = round(result["ms_per_image"], 2)
            print(f"{runtime} batch {batch}: {result['ms_per_image']:.2f} ms/image", file=sys.stderr, flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
