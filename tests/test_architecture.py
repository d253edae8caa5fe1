"""BUILD.md's "Architecture": the import rules between layers, module size and docstrings, lazy imports."""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_sagan"

# area -> keras_sagan areas it must not import. An area is the first path component under
# keras_sagan/ ("layers", "models", "export", ...) or a top-level module's name ("hubs", "quiet", ...).
FORBIDDEN = {
    "_lazy": {"layers", "models", "data", "training", "metrics", "cli", "export", "run_directory",
              "images", "errors", "reference"},
    "errors": {"layers", "models", "data", "training", "metrics", "cli", "export", "run_directory",
               "images", "reference"},
    "backend": {"layers", "models", "data", "training", "metrics", "cli", "export", "run_directory",
                "images", "torch_files", "reference"},
    "run_lock": {"layers", "models", "data", "training", "metrics", "cli", "export", "run_directory",
                 "images", "errors", "reference", "backend", "checkpoint"},
    # The checkpoint package builds on the layout (run_directory), never the reverse.
    "checkpoint": {"layers", "models", "data", "training", "metrics", "cli", "export", "images", "reference",
                   "preset_format"},
    "torch_files": {"layers", "models", "data", "training", "metrics", "cli", "export",
                    "run_directory", "images", "reference"},
    "images": {"layers", "models", "data", "training", "metrics", "cli", "export", "run_directory",
               "reference"},
    "layers": {"models", "data", "training", "metrics", "cli", "export", "run_directory",
               "reference"},
    "models": {"data", "training", "metrics", "cli", "export", "run_directory", "reference"},
    "hubs": {"layers", "models", "data", "training", "metrics", "cli", "export", "run_directory",
             "images", "reference", "preset_format", "preset_card", "checkpoint"},
    "preset_format": {"data", "training", "metrics", "cli", "export", "run_directory",
                      "reference"},
    "preset_card": {"layers", "models", "data", "training", "metrics", "cli", "export", "run_directory",
                    "reference"},
    "data": {"training", "metrics", "cli", "export", "run_directory", "reference"},
    "metrics": {"training", "cli", "export", "run_directory", "reference"},
    "run_directory": {"training", "metrics", "cli", "export", "reference", "checkpoint"},
    "export": {"training", "metrics", "cli", "data", "reference"},
    "training": {"cli", "reference"},
    "reference": {"cli"},
    "attention_maps": {"data", "training", "metrics", "cli", "export", "run_directory",
                       "reference", "interpolation", "explorer"},
    "interpolation": {"data", "training", "metrics", "cli", "run_directory", "reference",
                      "attention_maps", "explorer"},
    "explorer": {"data", "training", "metrics", "cli", "run_directory", "reference"},
    "quiet": {"layers", "models", "data", "training", "metrics", "cli", "export", "run_directory", "images",
              "errors", "reference", "backend"},
}  # fmt: skip
# Inside training/, the core (the model and its losses) must not import the application layer.
TRAINING_CORE = {"sagan", "losses", "steps"}
TRAINING_APPLICATION = {"loop", "config", "flags", "builders", "callbacks", "tensorboard", "distributed"}


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _area(path):
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0] if len(parts) > 1 else parts[0]


def _imported(path):
    """`(line, "keras_sagan.x.y")` for every keras_sagan import of a file, at any depth (lazy ones too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from keras_sagan import export` imports the module keras_sagan.export.
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return [(line, name) for line, name in found if name.startswith("keras_sagan.")]


def violations(modules=None):
    problems = []
    for path in modules or _modules():
        area = _area(path)
        rel = path.relative_to(PACKAGE.parent)
        for line, name in _imported(path):
            target = name.split(".")[1]
            message = f"{rel}:{line}: {area} imports keras_sagan.{target}"
            if target in FORBIDDEN.get(area, set()) and message not in problems:
                problems.append(message)
            if target == "cli" and area not in ("cli", "__main__"):
                problems.append(f"{rel}:{line}: only cli/ and __main__ may import {name}")
            own = path.relative_to(PACKAGE).with_suffix("").parts
            if area == "training" and len(own) > 1 and own[1] in TRAINING_CORE and target == "training":
                parts = name.split(".")
                if len(parts) > 2 and parts[2] in TRAINING_APPLICATION:
                    problems.append(f"{rel}:{line}: the training core imports the application module {name}")
    return problems


def test_import_rules_hold():
    assert violations() == []


def test_the_rule_check_catches_a_violation(tmp_path):
    # A layer module importing the training loop must be reported (the check is not vacuous).
    bad = PACKAGE / "layers" / "_probe_for_test.py"
    bad.write_text('"""Probe."""\n\ndef f():\n    from keras_sagan.training import loop\n', encoding="utf-8")
    try:
        assert violations([bad]) == [f"{bad.relative_to(PACKAGE.parent)}:4: layers imports keras_sagan.training"]
    finally:
        bad.unlink()


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_says_its_job(path):
    # No line cap: module boundaries follow concepts, not a count (the 400-line rule produced re-exports).
    text = path.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(text))
    assert docstring and docstring.strip(), f"{path} has no module docstring"


def _modules_after(code):
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    return set(__import__("json").loads(result.stdout.strip().splitlines()[-1]))


HEAVY = {
    "tensorflow_datasets",
    "keras_sagan.training.loop",
    "keras_sagan.data",
    "keras_sagan.metrics",
    "keras_sagan.cli",
}


def test_importing_the_network_leaves_the_application_layer_out():
    loaded = _modules_after("import keras_sagan.layers, keras_sagan.models")
    assert loaded & HEAVY == set()
    loaded = _modules_after("import keras_sagan")
    assert loaded & HEAVY == set()


def test_the_lazy_names_load_on_first_access():
    loaded = _modules_after("import keras_sagan\nassert keras_sagan.SAGAN.__name__ == 'SAGAN'\nkeras_sagan.train")
    assert "keras_sagan.training.sagan" in loaded and "keras_sagan.training.loop" in loaded


def test_the_command_line_starts_without_tensorflow_notices(tmp_path):
    # TF prints its start-up notices (absl, oneDNN, cudart_stub, cuInit); the CLI drops them (keras_sagan.quiet).
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "keras_sagan", "info", "--model", str(tmp_path / "missing")],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == f"error: no such model path: {tmp_path / 'missing'}\n"  # That line only.
    loaded = _modules_after("import keras_sagan")
    assert "tensorflow" not in loaded and "keras" not in loaded
    loaded = _modules_after("import keras_sagan.export.formats")  # What `keras-sagan export` imports up front.
    assert "tensorflow" not in loaded and "keras" not in loaded


# -- which backend runs: asked only inside keras_sagan/backend/ -----------------------------------

BACKEND_NAMES = {"tensorflow", "jax", "torch", "numpy", "openvino"}
# Calls whose result is the backend's name, or a yes/no on it.
NAME_CALLS = {
    "keras.backend.backend",
    "keras.config.backend",
    "backend.name",
    "name",
    "check_supported",
    "backend.check_supported",
}
WHICH_BACKEND_CALLS = {"is_tensorflow", "is_jax", "is_torch"}
KERAS_NAME_CALLS = {"keras.backend.backend", "keras.config.backend"}


def _is_name_call(node):
    return isinstance(node, ast.Call) and ast.unparse(node.func) in NAME_CALLS


def backend_questions(source, label):
    """`label:line: text` for every place in `source` that asks which backend runs: an `is_<backend>()`
    call, `keras.backend.backend()`/`keras.config.backend()`, or a comparison of a backend name
    (`backend.name()` may appear elsewhere, e.g. in an error message's f-string)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        asks = False
        if isinstance(node, ast.Call):
            func = ast.unparse(node.func)
            asks = func.split(".")[-1] in WHICH_BACKEND_CALLS or func in KERAS_NAME_CALLS
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            named = [o for o in operands if isinstance(o, ast.Constant) and o.value in BACKEND_NAMES]
            in_names = [
                o
                for op, o in zip(node.ops, node.comparators)
                if isinstance(op, (ast.In, ast.NotIn))
                and isinstance(o, (ast.Tuple, ast.List, ast.Set))
                and any(isinstance(e, ast.Constant) and e.value in BACKEND_NAMES for e in o.elts)
            ]
            equality = all(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops)
            asks = any(_is_name_call(o) for o in operands) or (equality and bool(named)) or bool(in_names)
        if asks:
            found.append(f"{label}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_only_the_backend_package_asks_which_backend_runs():
    offenders = []
    for path in _modules():
        if path.relative_to(PACKAGE).parts[0] != "backend":
            offenders += backend_questions(path.read_text(encoding="utf-8"), path.relative_to(PACKAGE.parent))
    assert offenders == [], "ask a question of keras_sagan.backend instead:\n" + "\n".join(offenders)


def test_the_backend_question_check_catches_each_form():
    source = "\n".join(
        [
            "if backend.is_jax(): pass",  # 1
            "if keras.backend.backend() == 'tensorflow': pass",  # 2 (call and comparison: one line each)
            "if name == 'torch': pass",  # 3
            "if backend.name() != x: pass",  # 4
            "if kind in ('jax', 'torch'): pass",  # 5
            "raise ValueError(f'not on the {backend.name()} backend')",  # allowed: names it in a message
            "if 'tensorflow' in sys.modules: pass",  # allowed: whether TensorFlow is imported
        ]
    )
    lines = sorted({int(found.split(":")[1]) for found in backend_questions(source, "probe")})
    assert lines == [1, 2, 3, 4, 5]
