"""examples/train_celeba.py as a user runs it: one-line errors, SIGKILL and Ctrl-C, 2 CPU replicas."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from training_loop_helpers import EXAMPLE, TINY_FLAGS

pytestmark = pytest.mark.slow

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _command(args):
    return [sys.executable, str(EXAMPLE), *args]


def run_example(args, cwd, timeout=180):
    return subprocess.run(_command(args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--dataset=folder", "--image_folder=/nonexistent"], ["image folder '/nonexistent' does not exist"]),
        (["--dataset=folder"], ["dataset='folder' needs image_folder"]),
        (["--dataset=celeba", "--data_dir={tmp}"], ["CelebA is not prepared in {tmp}", "download"]),
        (["--strategy=mirrored", "--cpu_replicas=2", "--batch_size=5"], ["batch size 5 does not divide across 2"]),
        (["--preset=nope"], ["Unknown preset 'nope'"]),
        (["--steps=0"], ["steps must be an int >= 1; received 0"]),
    ],
    ids=["missing-folder", "folder-without-path", "celeba-not-prepared", "batch-vs-replicas", "preset", "steps"],
)
def test_bad_input_is_one_line_without_traceback(args, fragments, tmp_path):
    data_dir = tmp_path / "empty_tfds"
    data_dir.mkdir()
    args = [arg.format(tmp=data_dir) for arg in args] + [f"--model_dir={tmp_path / 'run'}"]
    proc = run_example(args, cwd=tmp_path, timeout=120)
    assert_one_line_error(proc, *[fragment.format(tmp=data_dir) for fragment in fragments])
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_two_cpu_replicas_train_under_mirrored_strategy(tmp_path):
    model_dir = tmp_path / "run"
    args = [*TINY_FLAGS, "--strategy=mirrored", "--cpu_replicas=2", "--steps=3", "--log_every=1"]
    proc = run_example([*args, f"--model_dir={model_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "global batch 4 over 2 replica(s)" in proc.stdout
    assert "step 3/3" in proc.stdout
    assert (model_dir / "export" / "1" / "saved_model.pb").exists()
    assert tf.train.latest_checkpoint(str(model_dir / "checkpoints")).endswith("ckpt-3")


def _start_and_wait_for_a_checkpoint(args, tmp_path, timeout=120):
    """Starts the example; returns the process once its first checkpoint index exists."""
    out = open(tmp_path / "first.out", "w")
    err = open(tmp_path / "first.err", "w")
    proc = subprocess.Popen(_command(args), cwd=tmp_path, env=ENV, stdout=out, stderr=err, text=True)
    index = tmp_path / "run" / "checkpoints" / "checkpoint"
    deadline = time.monotonic() + timeout
    while not index.exists():
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {(tmp_path / 'first.err').read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("no checkpoint within the time limit")
        time.sleep(0.05)
    return proc


def _latest_step(model_dir):
    path = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    return int(path.rsplit("-", 1)[1])


LONG_RUN = [*TINY_FLAGS, "--steps=120", "--checkpoint_every=10", "--log_every=100", "--sample_every=1000"]


def test_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(tmp_path):
    args = [*LONG_RUN, f"--model_dir={tmp_path / 'run'}", "--export_dir="]
    proc = _start_and_wait_for_a_checkpoint(args, tmp_path)
    try:
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL  # Killed mid-run, not finished.
    finally:
        proc.kill()
        proc.wait()
    killed_at = _latest_step(tmp_path / "run")
    assert 10 <= killed_at < 120 and killed_at % 10 == 0

    again = run_example(args, cwd=tmp_path)  # The very same command.
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.search(rf"resumed from \S+ckpt-{killed_at} at step {killed_at}\b", again.stdout), again.stdout
    assert "step 120/120" in again.stdout
    assert _latest_step(tmp_path / "run") == 120


def test_sigint_saves_a_checkpoint_and_exits_with_one_line(tmp_path):
    args = [*LONG_RUN, "--checkpoint_every=1000", "--steps=100000", f"--model_dir={tmp_path / 'run'}"]
    # The first checkpoint only comes at the end or on the signal: wait for training instead.
    out = open(tmp_path / "first.out", "w")
    proc = subprocess.Popen(_command(args), cwd=tmp_path, env=ENV, stdout=out, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while "step 100/" not in (tmp_path / "first.out").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, "training did not reach step 100"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert len(lines) == 1, stderr[-2000:]
    step = _latest_step(tmp_path / "run")
    assert step >= 100
    assert lines[0].startswith(f"interrupted: SIGINT at step {step}; checkpoint saved to ")
    assert lines[0].endswith(f"ckpt-{step}")
    assert "SIGINT received" in (tmp_path / "first.out").read_text()
    assert not (tmp_path / "run" / "export").exists()  # An interrupted run does not export.
