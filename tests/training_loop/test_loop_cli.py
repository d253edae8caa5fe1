"""`keras-sagan train` (`keras_sagan.cli.train`) as a user runs it: exit statuses, one-line errors, help,
SIGKILL and Ctrl-C, 2 CPU replicas; and `examples/train_celeba.py`, which is the same command."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from training_loop_helpers import EXAMPLE, TINY_FLAGS

from keras_sagan.checkpoint import reading
from keras_sagan.cli import train as train_cli
from keras_sagan.run_directory import RunDirectory
from keras_sagan.training import loop
from keras_sagan.training.config import fields_info
from keras_sagan.training.distributed import WorkerFailure

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _command(args):
    return [sys.executable, "-m", "keras_sagan", "train", *args]


def run_train(args, cwd, timeout=180):
    return subprocess.run(_command(args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def _one_error_line(stderr, stdout=""):
    assert "Traceback" not in stderr + stdout
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--dataset=folder", "--image_folder=/nonexistent"], ["image folder '/nonexistent' does not exist"]),
        (["--dataset=folder"], ["`image_folder` must be a folder of images when dataset='folder'"]),
        (["--dataset=celeba", "--data_dir={tmp}"], ["CelebA is not prepared in {tmp}", "download"]),
        (["--strategy=mirrored", "--cpu_replicas=2", "--batch_size=5"], ["batch size 5 does not divide across 2"]),
        (
            ["--preset=nope"],
            ["flag --preset=nope: value should be one of <celeba64|cifar10_32|imagenet128|fashion_mnist32>"],
        ),
        (["--steps=0"], ["`steps` must be an int >= 1; received: steps=0"]),
        (["--loss=least-squares"], ["flag --loss=least-squares: value should be one of <hinge|non-saturating|"]),
        (["--stesp=3"], ["Unknown command line flag 'stesp'"]),
        (["--steps=many"], ["flag --steps=many: invalid literal for int()"]),
        (["50"], ["unexpected arguments: 50"]),
    ],
    ids=["missing-folder", "folder-without-path", "celeba-not-prepared", "batch-vs-replicas", "preset", "steps",
         "loss", "unknown-flag", "not-an-int", "positional"],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_status_2(args, fragments, tmp_path, capsys):
    if "--cpu_replicas=2" in args and len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs the 2 logical CPUs of tests/conftest.py")
    data_dir = tmp_path / "empty_tfds"
    data_dir.mkdir()
    args = [arg.format(tmp=data_dir) for arg in args] + [f"--model_dir={tmp_path / 'run'}"]
    assert train_cli.main(args) == 2
    out, err = capsys.readouterr()
    line = _one_error_line(err, out)
    for fragment in fragments:
        assert fragment.format(tmp=data_dir) in line
    assert not (tmp_path / "run" / "checkpoints").exists()


def _raise(error):
    def fake_train(config):
        raise error

    return fake_train


@pytest.mark.parametrize(
    "error, status, line",
    [
        (loop.TrainingInterrupted(7, "run/checkpoints/ckpt-7", "SIGINT"), 130,
         "interrupted: SIGINT at step 7; checkpoint saved to run/checkpoints/ckpt-7"),
        (loop.TrainingInterrupted(7, "run/checkpoints/ckpt-7", "SIGTERM"), 143,
         "interrupted: SIGTERM at step 7; checkpoint saved to run/checkpoints/ckpt-7"),
        (loop.TrainingInterrupted(7, "run/checkpoints/ckpt-7", "peer"), 143,
         "interrupted: another worker's signal at step 7; checkpoint saved to run/checkpoints/ckpt-7"),
        (WorkerFailure("multi-worker training stopped at step 3: a peer worker stopped\nmore", 3, None), 1,
         "error: multi-worker training stopped at step 3: a peer worker stopped"),
        (KeyboardInterrupt(), 130, "interrupted: stopped at once (before training began, or a second Ctrl-C); "
         "a rerun resumes from the latest checkpoint, if any"),
        (ValueError("cannot resume from ckpt-2: it does not match\ndetails"), 2,
         "error: cannot resume from ckpt-2: it does not match"),
    ],
    ids=["sigint", "sigterm", "peer", "worker-failure", "early-ctrl-c", "value-error"],
)  # fmt: skip
def test_outcomes_map_to_exit_statuses(error, status, line, monkeypatch, capsys):
    monkeypatch.setattr(loop, "train", _raise(error))
    assert train_cli.main(["--steps=3"]) == status
    _, err = capsys.readouterr()
    assert err.splitlines() == [line]


def test_a_finished_run_exits_0_with_the_parsed_config(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(loop, "train", seen.append)
    assert train_cli.main(["--steps=3", "--jit_compile=false", f"--model_dir={tmp_path}"]) == 0
    (config,) = seen
    assert (config.steps, config.jit_compile, config.model_dir) == (3, False, str(tmp_path))


@pytest.mark.parametrize("word", ["--help", "--helpfull", "-h"])
def test_help_lists_every_flag_with_its_default(word, monkeypatch, capsys):
    monkeypatch.setattr(loop, "train", _raise(AssertionError("help must not train")))
    assert train_cli.main([word, "--steps=0"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("usage: keras-sagan train [--flag=value ...] [--config=FILE] [--flagfile=FILE]")
    # One block per flag: "  --name: ..." up to the next one; each says its default.
    blocks = {}
    for block in re.split(r"\n(?=  --)", out):
        match = re.match(r"  --(?:\[no\])?(\w+):", block)
        if match:
            blocks[match.group(1)] = block
    names = {info.name for info in fields_info()} | {"config"}
    assert names <= set(blocks)
    for name in names:
        assert "(default: " in blocks[name], blocks[name]
    assert "(default: '800')" in blocks["steps"] and "<auto|true|false>" in blocks["jit_compile"]


def test_the_example_is_the_same_command():
    """examples/train_celeba.py runs keras-sagan train: a bad flag is one line and exit status 2."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--steps=0"], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert _one_error_line(proc.stderr, proc.stdout) == "error: `steps` must be an int >= 1; received: steps=0"
    # Its flags are the generated ones: --num_samples exists only as a TrainConfig field.
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), "--help"], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and "train_celeba.py" in proc.stdout and "--num_samples" in proc.stdout


@pytest.mark.slow
def test_two_cpu_replicas_train_under_mirrored_strategy(tmp_path):
    model_dir = tmp_path / "run"
    args = [*TINY_FLAGS, "--strategy=mirrored", "--cpu_replicas=2", "--steps=3", "--log_every=1"]
    proc = run_train([*args, f"--model_dir={model_dir}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "global batch 4 over 2 replica(s)" in proc.stdout
    assert "step 3/3" in proc.stdout
    assert (model_dir / "export" / "1" / "saved_model.pb").exists()
    assert sorted(os.listdir(model_dir / "checkpoints"))[-1] == "ckpt-3.state.npz"


def _start_and_wait_for_a_checkpoint(args, tmp_path, timeout=120):
    """Starts `keras-sagan train`; returns the process once its first checkpoint exists."""
    out = open(tmp_path / "first.out", "w")
    err = open(tmp_path / "first.err", "w")
    proc = subprocess.Popen(_command(args), cwd=tmp_path, env=ENV, stdout=out, stderr=err, text=True)
    checkpoints = tmp_path / "run" / "checkpoints"
    deadline = time.monotonic() + timeout
    while not (checkpoints.exists() and any(name.endswith(".state.npz") for name in os.listdir(checkpoints))):
        if proc.poll() is not None:
            raise AssertionError(f"exited early ({proc.returncode}): {(tmp_path / 'first.err').read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("no checkpoint within the time limit")
        time.sleep(0.05)
    return proc


def _latest_step(model_dir):
    return reading.checkpoint_step(reading.latest_checkpoint(RunDirectory(model_dir)))


LONG_RUN = [*TINY_FLAGS, "--steps=120", "--checkpoint_every=10", "--log_every=100", "--sample_every=1000"]


@pytest.mark.slow
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

    again = run_train(args, cwd=tmp_path)  # The very same command.
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.search(rf"resumed from \S+ckpt-{killed_at}\.state\.npz at step {killed_at}\b", again.stdout), again.stdout
    assert "step 120/120" in again.stdout
    assert _latest_step(tmp_path / "run") == 120


@pytest.mark.slow
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
    assert lines[0].endswith(f"ckpt-{step}.state.npz")
    assert "SIGINT received" in (tmp_path / "first.out").read_text()
    assert not (tmp_path / "run" / "export").exists()  # An interrupted run does not export.
