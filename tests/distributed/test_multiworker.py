"""Multi-worker training: two worker processes on 127.0.0.1 against one process, failures, resume.

Every worker is a subprocess with its own TF_CONFIG and free ports. Every wait has a deadline,
and every process a test starts is killed (its whole process group) in a `finally`.

Run as a script, this file is the worker of `test_two_workers_equal_one_process`:
`python test_multiworker.py OUT.npz '{"strategy": "multiworker", ...}'` trains
`TrainConfig(**settings)` and saves the final weights to OUT.npz.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import types
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_sagan.checkpoint import reading
from keras_sagan.checkpoint.manager import CheckpointManager
from keras_sagan.run_directory import RunDirectory
from keras_sagan.training import distributed
from keras_sagan.training.builders import build_gan, make_strategy
from keras_sagan.training.config import TrainConfig
from keras_sagan.training.loop import train

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "train_celeba.py"
TINY_FLAGS = ["--conv_dim=8", "--z_dim=16", "--batch_size=4"]
TINY = {"conv_dim": 8, "z_dim": 16, "batch_size": 4, "num_samples": 4, "jit_compile": False}
START_TIMEOUT = 120  # Seconds for two workers to import TF, meet and train their first steps.
FAILURE_TIMEOUT = 60  # Seconds for a worker to fail once its peer is gone (measured: ~5).


def _run_worker(out, settings):
    """The script mode: one training process; saves its generator/discriminator/noise state."""
    result = train(TrainConfig(**settings))
    gan = result.gan
    arrays = {f"generator/{i}": w.numpy() for i, w in enumerate(gan.generator.weights)}
    arrays.update({f"discriminator/{i}": w.numpy() for i, w in enumerate(gan.discriminator.weights)})
    arrays["seed_state"] = gan.seed_generator.state.numpy()
    np.savez(out, step=result.step, chief=result.chief, **arrays)


# -- cluster helpers -------------------------------------------------------------------------------


def free_ports(count):
    """Ports the OS hands out for port 0, all held open together so that they differ."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports, index):
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


class Processes:
    """Subprocesses in their own process groups, each logging to `<name>.out` / `<name>.err`."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.procs = {}

    def start(self, name, command, env):
        out = open(self.directory / f"{name}.out", "w")
        err = open(self.directory / f"{name}.err", "w")
        self.procs[name] = subprocess.Popen(
            command, cwd=self.directory, env=env, stdout=out, stderr=err, text=True, start_new_session=True
        )
        out.close()
        err.close()
        return self.procs[name]

    def output(self, name):
        return (self.directory / f"{name}.out").read_text(), (self.directory / f"{name}.err").read_text()

    def wait(self, names, timeout):
        """Waits until every named process exited; fails (they are killed later) past `timeout`."""
        deadline = time.monotonic() + timeout
        for name in names:
            try:
                self.procs[name].wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                message = f"{name} still running after {timeout} s: {self.output(name)[1][-2000:]}"
                raise AssertionError(message) from None
        return {name: self.procs[name].returncode for name in names}

    def kill(self, name, signum=signal.SIGKILL):
        proc = self.procs[name]
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signum)
            except ProcessLookupError:
                pass

    def kill_all(self):
        for name, proc in self.procs.items():
            self.kill(name)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass


@contextmanager
def processes(directory):
    procs = Processes(directory)
    try:
        yield procs
    finally:
        procs.kill_all()


def environment(tmp_path, scratch="worker_tmp", **extra):
    scratch = tmp_path / scratch  # $TMPDIR: where non-chief workers put their discarded checkpoints.
    scratch.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(scratch), **extra}


def wait_for(condition, procs, names, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        for name in names:
            if procs.procs[name].poll() is not None:
                raise AssertionError(f"{name} exited ({procs.procs[name].returncode}): {procs.output(name)[1][-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(0.1)


def latest_step(model_dir):
    path = reading.latest_checkpoint(RunDirectory(model_dir))
    return None if path is None else reading.checkpoint_step(path)


def noise_driven_weights(network, prefix):
    """`{"generator/<i>"}` of each bias followed by a BatchNorm, and of that BatchNorm's moving mean."""
    paths = set()
    for block in network.named_blocks().values():
        if not isinstance(block, tf.keras.Sequential):
            continue
        for layer, following in zip(block.layers, block.layers[1:]):
            if isinstance(following, tf.keras.layers.BatchNormalization):
                paths.update(w.path for w in layer.weights if w.path.endswith("/bias"))
                paths.add(following.moving_mean.path)
    return {f"{prefix}/{i}" for i, w in enumerate(network.weights) if w.path in paths}


def load_weights(gan, arrays):
    for prefix, network in (("generator", gan.generator), ("discriminator", gan.discriminator)):
        for i, weight in enumerate(network.weights):
            weight.assign(arrays[f"{prefix}/{i}"])
    return gan


def ctrl_c_stops_both(procs, names, run, timeout):
    """Ctrl-C on the second of `names` (two workers): both stop after the same step, which the chief saved."""
    procs.kill(names[1], signal.SIGINT)
    codes = procs.wait(names, timeout=timeout)
    assert codes == {names[0]: 143, names[1]: 130}, [procs.output(n)[1][-2000:] for n in names]
    interrupted = [re.findall(r"^interrupted: .* at step (\d+);", procs.output(n)[1], re.M) for n in names]
    assert interrupted[0] == interrupted[1] == [str(latest_step(run))], interrupted
    assert "another worker's signal" in procs.output(names[0])[1]


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# -- equivalence with one process ------------------------------------------------------------------


@pytest.mark.slow
def test_two_workers_equal_one_process(tmp_path):
    steps = 4
    common = {**TINY, "steps": steps, "log_every": 2, "sample_every": 2, "checkpoint_every": 2, "seed": 3}
    multi = {**common, "strategy": "multiworker", "model_dir": str(tmp_path / "multi")}
    single = {**common, "model_dir": str(tmp_path / "single"), "export_dir": ""}
    ports = free_ports(2)
    with processes(tmp_path) as procs:
        for index in range(2):
            env = environment(tmp_path, TF_CONFIG=tf_config(ports, index))
            command = [sys.executable, __file__, str(tmp_path / f"worker{index}.npz"), json.dumps(multi)]
            procs.start(f"worker{index}", command, env)
        procs.start("single", [sys.executable, __file__, str(tmp_path / "single.npz"), json.dumps(single)],
                    environment(tmp_path))  # fmt: skip
        codes = procs.wait(["worker0", "worker1", "single"], timeout=240)
    assert codes == {"worker0": 0, "worker1": 0, "single": 0}, [procs.output(n)[1][-2000:] for n in codes]

    results = [np.load(tmp_path / f"{name}.npz") for name in ("worker0", "worker1", "single")]
    w0, w1, one = results
    assert [bool(r["chief"]) for r in results] == [True, False, True]
    assert [int(r["step"]) for r in results] == [steps] * 3
    names = [name for name in w0.files if name not in ("step", "chief")]
    assert len(names) > 50 and set(names) == set(one.files) - {"step", "chief"}
    # The workers hold the same weights: every all-reduce hands both the same sums.
    for name in names:
        np.testing.assert_array_equal(w1[name], w0[name], err_msg=name)
    # And those of one process with the same global batch, seed and initialisation, except the
    # biases that a BatchNorm cancels: their gradient is zero up to rounding, which Adam scales up
    # to steps of ~lr, so they (and the moving means that track them) follow rounding noise.
    gan = build_gan(TrainConfig(**{**TINY, "seed": 3}), tf.distribute.get_strategy())
    noise_driven = noise_driven_weights(gan.generator, "generator")
    assert len(noise_driven) == 6, noise_driven  # 3 up-blocks: the conv bias and BN moving mean.
    differences = {name: float(np.max(np.abs(w0[name] - one[name]))) for name in names}
    exact = {name: d for name, d in differences.items() if name not in noise_driven}
    worst = max(exact, key=exact.get)
    print(f"max |worker - single process| = {exact[worst]:.3g} ({worst}); BN-cancelled biases and their "
          f"moving means: {max(differences[name] for name in noise_driven):.3g}")  # fmt: skip
    assert exact[worst] <= 1e-5, (worst, exact[worst])
    assert max(differences[name] for name in noise_driven) <= 1e-3
    # What those weights cannot change, the networks in training mode, agrees within 1e-5.
    single_gan = load_weights(build_gan(TrainConfig(**TINY), tf.distribute.get_strategy()), one)
    worker_gan = load_weights(gan, w0)
    z = np.random.default_rng(0).standard_normal((8, TINY["z_dim"])).astype("float32")
    images = [g.generator(z, training=True).numpy() for g in (worker_gan, single_gan)]
    np.testing.assert_allclose(images[0], images[1], atol=1e-5)
    logits = [g.discriminator(images[1], training=True).numpy() for g in (worker_gan, single_gan)]
    np.testing.assert_allclose(logits[0], logits[1], atol=1e-5)

    # Only the chief wrote files: one TensorBoard run, and no worker scratch left behind.
    run = tmp_path / "multi"
    assert len(list((run / "logs").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step_000002.png", "step_000004.png"]
    assert latest_step(run) == steps and (run / "export" / "1" / "saved_model.pb").exists()
    assert "exported the generator" in procs.output("worker0")[0]
    assert "exported" not in procs.output("worker1")[0]
    assert "worker 1 of 2" in procs.output("worker1")[0] and "worker 0 of 2 (chief)" in procs.output("worker0")[0]
    assert list((tmp_path / "worker_tmp").glob("keras_sagan_worker_*")) == []


def test_mirrored_replicas_train_on_the_batches_of_one_device(tmp_path):
    # The loss means depend on every batch: a replica reading other batches would change them.
    settings = {**TINY, "steps": 2, "log_every": 1, "sample_every": 100, "export_dir": ""}
    one = train(TrainConfig(**settings, model_dir=str(tmp_path / "one")))
    two = train(TrainConfig(**settings, strategy="mirrored", model_dir=str(tmp_path / "two")))
    assert two.gan.distribute_strategy.num_replicas_in_sync == 2
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert abs(two.logs[key] - one.logs[key]) <= 1e-5, (key, two.logs[key], one.logs[key])


def test_initial_weights_are_a_function_of_the_seed():
    config = TrainConfig(**{**TINY, "seed": 3})

    def initial(seed):
        tf.keras.utils.set_random_seed(seed)
        gan = build_gan(config, tf.distribute.get_strategy())
        return [w.numpy() for w in gan.generator.weights + gan.discriminator.weights]

    first, again, other = initial(3), initial(3), initial(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


# -- failures and resume ---------------------------------------------------------------------------


def _start_workers(procs, tmp_path, args, prefix):
    ports = free_ports(2)
    for index in range(2):
        env = environment(tmp_path, f"{prefix}_tmp", TF_CONFIG=tf_config(ports, index))
        procs.start(f"{prefix}{index}", [sys.executable, str(EXAMPLE), *args], env)


def _kill_and_get_the_survivors_error(procs, killed, survivor):
    """SIGKILLs one worker; the other must exit 1 with one error line and no traceback. Returns that line."""
    procs.kill(killed)
    started = time.monotonic()
    code = procs.wait([survivor], timeout=FAILURE_TIMEOUT)[survivor]
    print(f"{survivor} failed {time.monotonic() - started:.1f} s after {killed} was killed")
    stdout, stderr = procs.output(survivor)
    assert code == 1, stderr[-3000:]
    assert "Traceback" not in stderr + stdout
    (line,) = error_lines(stderr)
    return line


@pytest.mark.slow
def test_killed_worker_fails_its_peer_and_a_restart_resumes(tmp_path):
    run = tmp_path / "run"
    args = [*TINY_FLAGS, "--strategy=multiworker", f"--model_dir={run}", "--checkpoint_every=2",
            "--log_every=2", "--sample_every=1000"]  # fmt: skip
    with processes(tmp_path) as procs:
        # 1. Kill the non-chief worker once the chief saved a checkpoint: the chief fails fast.
        _start_workers(procs, tmp_path, [*args, "--steps=100000"], "first")
        wait_for(lambda: latest_step(run) is not None, procs, ["first0", "first1"], START_TIMEOUT, "checkpoint")
        line = _kill_and_get_the_survivors_error(procs, killed="first1", survivor="first0")
        killed_at = latest_step(run)
        assert "multi-worker training stopped at step" in line and "peer worker" in line
        assert line.endswith(
            f"restart every worker to resume from {run / 'checkpoints' / f'ckpt-{killed_at}.state.npz'}"
        )

        # 2. Restart both: they resume from the chief's checkpoint.
        _start_workers(procs, tmp_path, [*args, "--steps=100000"], "second")
        names = ["second0", "second1"]
        wait_for(lambda: latest_step(run) > killed_at, procs, names, START_TIMEOUT, "new checkpoint")
        for name in names:
            assert re.search(
                rf"resumed from \S+ckpt-{killed_at}\.state\.npz at step {killed_at}\b", procs.output(name)[0]
            )

        # 3. Ctrl-C on the non-chief alone: both stop after the same step and the chief saves it.
        ctrl_c_stops_both(procs, names, run, FAILURE_TIMEOUT)
    assert not (run / "export").exists()  # Neither run finished.
    assert list((tmp_path / "second_tmp").glob("keras_sagan_worker_*")) == []  # (A SIGKILL may leave one.)


@pytest.mark.slow
def test_killed_chief_fails_the_other_worker(tmp_path):
    run = tmp_path / "run"
    args = [*TINY_FLAGS, "--strategy=multiworker", f"--model_dir={run}", "--checkpoint_every=2", "--steps=100000"]
    with processes(tmp_path) as procs:
        _start_workers(procs, tmp_path, args, "worker")
        wait_for(lambda: latest_step(run) is not None, procs, ["worker0", "worker1"], START_TIMEOUT, "checkpoint")
        line = _kill_and_get_the_survivors_error(procs, killed="worker0", survivor="worker1")
    assert "a peer worker stopped, crashed or became unreachable" in line
    assert "restart every worker to resume from " in line


@pytest.mark.slow
def test_strategy_tpu_without_a_tpu_is_a_one_line_error(tmp_path):
    command = [sys.executable, str(EXAMPLE), *TINY_FLAGS, "--strategy=tpu", f"--model_dir={tmp_path / 'run'}"]
    proc = subprocess.run(command, env=environment(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (line,) = error_lines(proc.stderr)
    assert line.startswith("error: strategy='tpu' found no usable TPU on this machine (")
    assert not (tmp_path / "run").exists()


# -- the pieces, in this process ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "tf_config_value, message",
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        (json.dumps({"cluster": {"ps": ["127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}),
         "TF_CONFIG task type must be 'chief' or 'worker'"),
    ],
    ids=["not-json", "ps-task"],
)  # fmt: skip
def test_bad_tf_config_is_a_value_error(tf_config_value, message, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config_value)
    with pytest.raises(ValueError, match=re.escape(message)):
        make_strategy("multiworker")


def test_settings_that_do_not_fit_multiworker_are_rejected():
    with pytest.raises(ValueError, match=re.escape("`cpu_replicas` must be None or 1 with strategy='multiworker'")):
        TrainConfig(strategy="multiworker", cpu_replicas=2)
    with pytest.raises(ValueError, match=re.escape("`collective_timeout` must be None or a number of seconds > 0")):
        TrainConfig(strategy="multiworker", collective_timeout=0)
    TrainConfig(strategy="multiworker", cpu_replicas=1, collective_timeout=2.5)


def test_global_batches_are_split_into_contiguous_replica_rows():
    strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
    batches = tf.data.Dataset.range(24).map(lambda i: tf.cast(i, tf.float32)).batch(4, drop_remainder=True)
    distributed_batches = distributed.distribute_global_batches(strategy, lambda: batches)
    seen = [[r.numpy().tolist() for r in strategy.experimental_local_results(b)] for b, _ in
            zip(distributed_batches, range(3))]  # fmt: skip
    assert seen == [[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [10, 11]]]


def test_a_stop_asked_by_any_worker_stops_every_worker():
    from keras_sagan.training.callbacks import InterruptHandler

    class Model:
        stop_training = False

    lines = []
    handler = InterruptHandler(print_fn=lines.append, agree=lambda stop: True)
    handler.set_model(Model())
    handler.on_train_batch_end(0)
    assert handler.interrupted == "peer" and handler.model.stop_training and len(lines) == 1
    quiet = InterruptHandler(print_fn=lines.append, agree=lambda stop: stop)
    quiet.set_model(Model())
    quiet.on_train_batch_end(0)
    assert quiet.interrupted is None and not quiet.model.stop_training


def test_non_chief_callbacks_write_nothing_but_take_part_in_saves(tmp_path):
    from keras_sagan.training import callbacks as callbacks_lib
    from keras_sagan.training import loop

    config = TrainConfig(**TINY, model_dir=str(tmp_path / "run"))
    gan = types.SimpleNamespace(g_optimizer=types.SimpleNamespace(iterations=tf.Variable(1.0)))
    manager = CheckpointManager(gan, config.run_directory.checkpoints_dir, 1, chief=False, objects={"step": 1.0})
    callbacks = loop.make_callbacks(config, manager, chief=False)
    assert [type(c).__name__ for c in callbacks] == [
        "DivergenceGuard",
        "InterruptHandler",
        "ProgressLogger",
        "CheckpointSaver",
    ]
    saver = callbacks[-1]
    assert isinstance(saver, callbacks_lib.CheckpointSaver)
    # The chief's path is named, nothing is written.
    assert saver.save(2) == os.path.join(config.run_directory.checkpoints_dir, "ckpt-2.state.npz")
    saver.save(4)
    assert not (tmp_path / "run").exists()


if __name__ == "__main__":
    _run_worker(sys.argv[1], json.loads(sys.argv[2]))
