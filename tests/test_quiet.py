"""`keras_sagan.quiet`: TensorFlow's start-up notices are dropped from fd 2, everything else written back."""

import os
import sys
import types

from keras_sagan import quiet

# Copied from `python -m keras_sagan info` on a CPU-only machine (tensorflow 2.21.0, the full wheel).
NOTICES = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796411803.443604   32215 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. "
    "To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796411803.444034   32215 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
    "GPU will not be used.",
]
CUINIT = (
    "E0000 00:00:1796411827.459437   32518 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
    "Failed call to cuInit: UNKNOWN ERROR (303)"
)
REAL = [
    "E0000 00:00:1796411827.459437   32518 op_kernel.cc:1857] OP_REQUIRES failed: cannot open libfoo.so",
    "Traceback (most recent call last): a failure inside the import",
]


def _fake_tensorflow_import(monkeypatch):
    """`quiet.importlib` whose imports write TF's start-up lines (and two real errors) straight to fd 2."""

    def import_module(name):
        if name == "keras":
            os.write(2, "\n".join([*NOTICES, REAL[0], *NOTICES, REAL[1]]).encode() + b"\n")
        devices = types.SimpleNamespace(list_physical_devices=lambda: os.write(2, (CUINIT + "\n").encode()))
        return types.SimpleNamespace(config=devices)

    fake = types.SimpleNamespace(import_module=import_module, util=types.SimpleNamespace(find_spec=lambda name: True))
    monkeypatch.setattr(quiet, "importlib", fake)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)


def test_the_start_up_notices_are_dropped_and_real_errors_kept(monkeypatch, capfd):
    _fake_tensorflow_import(monkeypatch)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    quiet.import_quietly()
    assert capfd.readouterr().err == "\n".join(REAL) + "\n"
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "2"


def test_a_user_who_asks_for_level_0_sees_everything(monkeypatch, capfd):
    _fake_tensorflow_import(monkeypatch)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    quiet.import_quietly()  # Holds nothing back, imports nothing: TensorFlow prints as it does without keras_sagan.
    assert capfd.readouterr().err == ""


def test_each_notice_matches_and_nothing_else():
    lines = [*NOTICES, CUINIT, *REAL, "W0000 00:00:1.0 1 port.cc:153] oneDNN is off", ""]
    assert quiet.without_notices("\n".join(lines)) == "\n".join([*REAL, lines[-2], ""])
