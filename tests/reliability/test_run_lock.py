"""The run-directory lock: a second process on a `model_dir` is refused in one line naming the holder,
a stale lock is taken over with a warning, and the first run's checkpoints stay its own."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from keras_sagan.checkpoint import reading
from keras_sagan.checkpoint.state_file import read_state
from keras_sagan.cli import train as train_cli
from keras_sagan.run_directory import RunDirectory, RunDirectoryError

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": os.getcwd()}
TINY = ["--conv_dim=8", "--z_dim=16", "--image_size=32", "--batch_size=8", "--sample_every=1000", "--log_every=1"]
HOLD = "import sys, time; from keras_sagan.run_directory import RunDirectory; RunDirectory(sys.argv[1]).lock(); " \
       "print('locked', flush=True); time.sleep(600)"  # fmt: skip


def _holder(path):
    """A process (no TensorFlow) that takes the lock of run `path` and keeps it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_locked_run_is_refused_naming_pid_and_host(tmp_path):
    holder = _holder(tmp_path / "run")
    try:
        with pytest.raises(RunDirectoryError) as info:
            RunDirectory(tmp_path / "run").lock()
        message = str(info.value)
        assert f"PID {holder.pid} on host {socket.gethostname()}" in message and "\n" not in message
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL left the holder's record: the next run takes the lock over and says so, once.
    warnings = []
    with RunDirectory(tmp_path / "run").lock(warn=warnings.append):
        record = json.loads((tmp_path / "run" / "run.lock").read_text())
        assert record == {"pid": os.getpid(), "host": socket.gethostname()}
    assert len(warnings) == 1 and "stale lock" in warnings[0] and f"PID {holder.pid}" in warnings[0]
    # A clean release leaves no record: no warning next time.
    warnings.clear()
    with RunDirectory(tmp_path / "run").lock(warn=warnings.append):
        pass
    assert warnings == [] and (tmp_path / "run" / "run.lock").read_text() == ""


def test_a_model_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("x")
    assert train_cli.main([*TINY, f"--model_dir={path}", "--steps=1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`model_dir` must be a directory" in err and str(path) in err


@pytest.mark.slow
def test_a_concurrent_second_run_is_refused_and_the_first_keeps_its_checkpoints(tmp_path, capsys):
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "keras_sagan", "train", *TINY, f"--model_dir={run}", "--steps=100000",
         "--checkpoint_every=2", "--seed=0", "--export_dir="],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(600):  # Until the first run has saved a checkpoint (no clock is asserted on).
            if reading.checkpoint_paths(RunDirectory(run)):
                break
            assert first.poll() is None, first.communicate()
            time.sleep(0.1)
        status = train_cli.main([*TINY, f"--model_dir={run}", "--steps=4", "--seed=1"])
        err = capsys.readouterr().err
        assert status == 2 and err.count("\n") == 1 and f"in use by PID {first.pid}" in err, err
    finally:
        first.send_signal(signal.SIGINT)
        out, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    assert json.loads((run / "config.json").read_text())["train"]["seed"] == 0
    newest = reading.open_newest(RunDirectory(run))[0]
    last_line = [line for line in out.splitlines() if line.startswith("step ")][-1]
    step = int(last_line.split()[1].split("/")[0])
    assert newest.path.endswith(f"ckpt-{step}.state.npz")  # The first run's own final save, readable.
    assert int(read_state(newest.path).groups["step"][0]) == step
