"""Runs exported ONNX / LiteRT generators in a process that cannot import keras_sagan.

    python run_portable.py INPUTS.npz OUT.npz MODEL.onnx|MODEL.tflite ...

INPUTS.npz holds `z` (and `labels`). For each model file, OUT.npz gets `<i>/images`,
`<i>/images_uint8` (the model's outputs for the whole batch) and `<i>/images_b1` (the first row
alone, run as a batch of one). A meta-path finder refuses `keras_sagan` before
anything is imported: the files must stand on their own. ONNX runs in onnxruntime; a LiteRT file
runs in the ai-edge-litert interpreter, or in TensorFlow's (which has the Flex delegate) when it
uses Select TF ops.
"""

import importlib.abc
import sys

BLOCKED = ("keras_sagan",)


class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this process")
        return None


sys.meta_path.insert(0, _Blocker())

import numpy as np  # noqa: E402


def _run_onnx(path, feed):
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


def _litert_interpreter(path):
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_path=path)


def _run_litert(path, feed):
    runner = _litert_interpreter(path).get_signature_runner("serving_default")
    batch = runner.get_input_details()["z"]["shape_signature"][0]
    if batch not in (-1, len(feed["z"])):
        return None  # A fixed batch of another size.
    return runner(**feed)


def main(inputs_path, out_path, *models):
    try:
        import keras_sagan  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("keras_sagan imported: the blocker does not work")
    inputs = dict(np.load(inputs_path))
    results = {}
    for index, path in enumerate(models):
        run = _run_onnx if path.endswith(".onnx") else _run_litert
        outputs = run(path, inputs)
        first = run(path, {name: value[:1] for name, value in inputs.items()})
        results[f"{index}/images"] = outputs["images"]
        results[f"{index}/images_uint8"] = outputs["images_uint8"]
        if first is not None:
            results[f"{index}/images_b1"] = first["images"]
    np.savez(out_path, **results)
    print("blocked:", ",".join(BLOCKED))


if __name__ == "__main__":
    main(*sys.argv[1:])
