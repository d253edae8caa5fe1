"""BUILD.md's "Architecture": the layer list read from BUILD.md and every import checked against it, docstrings,
lazy imports."""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_sagan"
# A path in an item of BUILD.md's list: backticks around a module (`x.py`) or a package (`x/`) under keras_sagan/.
_PATH = re.compile(r"`([\w./]+(?:\.py|/))`")


def layer_list(text=None):
    """`[[path, ...], ...]`, bottom layer first: the numbered list that opens BUILD.md's "Architecture"."""
    text = (ROOT / "BUILD.md").read_text(encoding="utf-8") if text is None else text
    section = text.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    items, started = [], False
    for line in section.splitlines():
        number = re.match(r"(\d+)\. ", line)
        if number:
            assert int(number.group(1)) == len(items) + 1, f"BUILD.md's layers are numbered out of order: {line}"
            items.append(line)
            started = True
        elif started and line.startswith(" ") and line.strip():
            items[-1] += " " + line.strip()
        elif started:
            break  # The list ends at its first line that neither starts nor continues an item.
    return [_PATH.findall(item) for item in items]


def layers_by_path(layers=None):
    """`{path: layer}` (1 = the bottom), with every listed path checked to exist and to be listed once."""
    found = {}
    for number, paths in enumerate(layer_list() if layers is None else layers, start=1):
        for path in paths:
            assert (PACKAGE / path).exists(), f"BUILD.md's layer {number}: keras_sagan/{path} does not exist"
            assert path not in found, f"BUILD.md lists keras_sagan/{path} in layers {found[path]} and {number}"
            found[path] = number
    return found


def _relative(path):
    return path.relative_to(PACKAGE).as_posix()


def layer_of(path, layers):
    """The layer of the most specific listed path that covers module `path`, or None."""
    relative = _relative(path)
    if relative in layers:
        return layers[relative]
    packages = [p for p in layers if p.endswith("/") and relative.startswith(p)]
    return layers[max(packages, key=len)] if packages else None


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _module_file(name):
    """The file of module `keras_sagan.x.y`, or None (`from keras_sagan.models import Generator` names a class)."""
    base = PACKAGE.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path, text=None):
    """`(line, "keras_sagan.x.y")` for every keras_sagan import of a file, at any depth (lazy ones too)."""
    tree = ast.parse(path.read_text(encoding="utf-8") if text is None else text)
    package = ".".join(("keras_sagan", *path.relative_to(PACKAGE).parent.parts))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # Relative: from the file's own package, up level - 1.
                parts = package.split(".")
                module = ".".join(parts[: len(parts) - node.level + 1] + ([module] if module else []))
            found.append((node.lineno, module))
            # `from keras_sagan import export` imports the module keras_sagan.export.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
    return [(line, name) for line, name in found if name.startswith("keras_sagan.")]


def violations(sources=None, layers=None):
    """One line per broken rule, for `{path: text}` (every module of keras_sagan/ as it is on disk by default)."""
    layers = layers_by_path() if layers is None else layers
    sources = {path: None for path in _modules()} if sources is None else sources
    problems = []
    for path, text in sources.items():
        rel = path.relative_to(PACKAGE.parent)
        own = layer_of(path, layers)
        if own is None:
            problems.append(f"{rel}: in no layer of BUILD.md's Architecture list")
            continue
        for line, name in _imported(path, text):
            if name.split(".")[1] == "cli" and _relative(path).split("/")[0] not in ("cli", "__main__.py"):
                problems.append(f"{rel}:{line}: only cli/ and __main__ may import {name}")
            target = _module_file(name)
            if target is None or target == path:
                continue
            if own == 1:
                problems.append(f"{rel}:{line}: layer 1 imports nothing of keras_sagan, but this imports {name}")
            elif layer_of(target, layers) > own:
                message = f"{rel}:{line}: layer {own} imports {name}, of layer {layer_of(target, layers)}"
                if message not in problems:
                    problems.append(message)
    return problems


def test_build_md_lists_the_layers():
    layers = layer_list()
    assert len(layers) >= 10 and all(layers), "every item of BUILD.md's list names its modules in backticks"
    layers_by_path(layers)  # Every path exists, and is listed once.


def test_import_rules_hold():
    assert violations() == []


def test_the_rule_check_catches_a_violation():
    # Not vacuous: an import up the stack, the training core importing the application, an unlisted
    # module and an import of cli/ are each reported.
    layers = layers_by_path()
    probe = PACKAGE / "layers" / "_probe.py"
    assert violations({probe: "def f():\n    from keras_sagan.training import loop\n"}) == [
        f"keras_sagan/layers/_probe.py:2: layer {layers['layers/']} imports keras_sagan.training, "
        f"of layer {layers['training/__init__.py']}",
        f"keras_sagan/layers/_probe.py:2: layer {layers['layers/']} imports keras_sagan.training.loop, "
        f"of layer {layers['training/']}",
    ]
    sagan = PACKAGE / "training" / "sagan.py"
    assert violations({sagan: "from keras_sagan.training import config\n"}) == [
        f"keras_sagan/training/sagan.py:1: layer {layers['training/sagan.py']} imports keras_sagan.training.config, "
        f"of layer {layers['training/']}"
    ]
    unlisted = PACKAGE / "_probe.py"
    assert violations({unlisted: ""}) == ["keras_sagan/_probe.py: in no layer of BUILD.md's Architecture list"]
    entry = PACKAGE / "__init__.py"
    assert violations({entry: "import keras_sagan.cli\n"}) == [
        "keras_sagan/__init__.py:1: only cli/ and __main__ may import keras_sagan.cli"
    ]
    errors = PACKAGE / "errors.py"
    assert violations({errors: "from keras_sagan import quiet\n"}) == [
        "keras_sagan/errors.py:1: layer 1 imports nothing of keras_sagan, but this imports keras_sagan.quiet"
    ]


def test_the_list_reader_follows_build_md():
    text = "# T\n\n## Architecture\n\nIntro `cli/`.\n\n1. `a.py`, `b/`: job.\n2. `c.py`,\n   `d/`: job.\n\nNot `e/`.\n"
    assert layer_list(text) == [["a.py", "b/"], ["c.py", "d/"]]
    with pytest.raises(AssertionError, match="does not exist"):
        layers_by_path([["no_such_module.py"]])
    with pytest.raises(AssertionError, match="in layers 1 and 2"):
        layers_by_path([["errors.py"], ["errors.py"]])


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
