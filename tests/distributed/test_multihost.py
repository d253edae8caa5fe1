"""Multi-process JAX (`strategy="multihost"`): two processes on 127.0.0.1 with 2 CPU devices each.

Every process is a subprocess on the JAX backend (whatever backend runs this file), in its own
process group, killed in a `finally` (`test_multiworker.processes`). Every wait has a deadline.

Run as a script, this file is the process of `test_two_processes_equal_one_process`:
`python test_multihost.py OUT.npz '{"strategy": "multihost", ...}'` trains `TrainConfig(**settings)`
and saves the final weights to OUT.npz.
"""

import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cli_checks import cli_error
from test_multiworker import ctrl_c_stops_both, error_lines, free_ports, noise_driven_weights, processes, wait_for

from keras_sagan import backend
from keras_sagan.backend import jax as jax_backend
from keras_sagan.training import builders
from keras_sagan.training.config import TrainConfig

TINY = {"conv_dim": 8, "z_dim": 16, "batch_size": 4, "num_samples": 4, "seed": 3}  # 32x32 demo faces
TINY_FLAGS = [f"--{key}={value}" for key, value in TINY.items()]
START_TIMEOUT = 300  # Seconds for two processes to import TF and JAX, meet and train a few steps (2 busy cores).
FAILURE_TIMEOUT = 60  # Seconds for a process to fail once its peer is gone (measured: ~1).


def _run_process(out, settings):
    """The script mode: one training process; saves its generator/discriminator weights."""
    from keras_sagan.training.loop import train

    result = train(TrainConfig(**settings))
    gan = result.gan
    arrays = {f"generator/{i}": np.asarray(w) for i, w in enumerate(gan.generator.weights)}
    arrays.update({f"discriminator/{i}": np.asarray(w) for i, w in enumerate(gan.discriminator.weights)})
    np.savez(out, step=result.step, chief=result.chief, **arrays)


def environment(devices):
    """The JAX backend on `devices` CPU devices, and no cluster variables from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KERAS_DISTRIBUTION_", "TF_CONFIG"))}
    # The script mode imports the shared test helpers (tests/), as pytest's `pythonpath` setting does.
    tests = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tests, env.get("PYTHONPATH")) if p)
    return {**env, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}  # fmt: skip


def latest_step(model_dir):
    names = [path.name for path in Path(model_dir, "checkpoints").glob("ckpt-*.state.npz")]
    return max((int(re.match(r"ckpt-(\d+)", name).group(1)) for name in names), default=None)


def _train_command(*args):
    return [sys.executable, "-m", "keras_sagan", "train", *TINY_FLAGS, *args]


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
    steps = 4
    common = {**TINY, "steps": steps, "log_every": 2, "sample_every": 2, "checkpoint_every": 2, "export_dir": ""}
    (port,) = free_ports(1)
    multi = {**common, "strategy": "multihost", "coordinator_address": f"127.0.0.1:{port}", "num_processes": 2}
    with processes(tmp_path) as procs:
        for index in range(2):
            settings = {**multi, "process_id": index, "model_dir": str(tmp_path / "multi")}
            procs.start(f"p{index}", [sys.executable, __file__, str(tmp_path / f"p{index}.npz"), json.dumps(settings)],
                        environment(devices=2))  # fmt: skip
        single = {**common, "model_dir": str(tmp_path / "single")}  # One process, one device.
        procs.start("single", [sys.executable, __file__, str(tmp_path / "single.npz"), json.dumps(single)],
                    environment(devices=1))  # fmt: skip
        codes = procs.wait(["p0", "p1", "single"], timeout=2 * START_TIMEOUT)
    assert codes == {"p0": 0, "p1": 0, "single": 0}, [procs.output(n)[1][-2000:] for n in codes]

    p0, p1, one = (np.load(tmp_path / f"{name}.npz") for name in ("p0", "p1", "single"))
    assert [bool(r["chief"]) for r in (p0, p1, one)] == [True, False, True]
    assert [int(r["step"]) for r in (p0, p1, one)] == [steps] * 3
    names = [name for name in p0.files if name not in ("step", "chief")]
    assert len(names) > 50 and set(names) == set(one.files) - {"step", "chief"}
    for name in names:  # Replicated variables: both processes hold the same values.
        np.testing.assert_array_equal(p1[name], p0[name], err_msg=name)
    # The same weights as one process with the same global batch, except the biases a BatchNorm
    # cancels (their gradient is rounding noise that Adam scales to ~lr; test_multiworker.py).
    gan = builders.build_gan(TrainConfig(**TINY), builders.make_strategy("default"))
    noise_driven = noise_driven_weights(gan.generator, "generator")
    differences = {name: float(np.max(np.abs(p0[name] - one[name]))) for name in names}
    exact = {name: d for name, d in differences.items() if name not in noise_driven}
    worst = max(exact, key=exact.get)
    print(f"max |2 processes - 1 process| = {exact[worst]:.3g} ({worst})")
    assert exact[worst] <= 1e-5, (worst, exact[worst])
    assert max(differences[name] for name in noise_driven) <= 1e-3
    earlier = np.load(tmp_path / "multi" / "checkpoints" / "ckpt-2.state.npz")
    assert not np.allclose(earlier["generator/0000"], p0["generator/0"], atol=1e-4)  # Steps 3-4 moved them.

    # Only the chief wrote the run's files.
    run = tmp_path / "multi"
    assert len(list((run / "logs").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step_000002.png", "step_000004.png"]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-2.state.npz", "ckpt-4.state.npz"]
    assert "worker 0 of 2 (chief)" in procs.output("p0")[0] and "worker 1 of 2" in procs.output("p1")[0]
    assert "global batch 4 over 4 replica(s)" in procs.output("p1")[0]


@pytest.mark.slow
def test_killed_process_fails_its_peer_a_restart_resumes_ctrl_c_stops_both_and_a_killed_chief_too(tmp_path):
    run = tmp_path / "run"
    (port,) = free_ports(1)
    args = ["--strategy=multihost", f"--model_dir={run}", "--checkpoint_every=2", "--log_every=2",
            "--sample_every=1000", "--export_dir="]  # fmt: skip
    by_flags = [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", "--process_id=0"]
    # Process 1 takes Keras' variables instead of flags (every job address; the first one coordinates).
    by_env = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port},127.0.0.1:1",
              "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1"}  # fmt: skip

    def start(prefix, steps):
        procs.start(f"{prefix}0", _train_command(*args, *by_flags, f"--steps={steps}"), environment(2))
        procs.start(f"{prefix}1", _train_command(*args, f"--steps={steps}"), {**environment(2), **by_env})

    with processes(tmp_path) as procs:
        # 1. Kill process 1 once the chief saved a checkpoint: the chief fails fast, in one line.
        start("first", 100000)
        wait_for(lambda: latest_step(run) is not None, procs, ["first0", "first1"], START_TIMEOUT, "checkpoint")
        procs.kill("first1")
        started = time.monotonic()
        code = procs.wait(["first0"], timeout=FAILURE_TIMEOUT)["first0"]
        print(f"process 0 failed {time.monotonic() - started:.1f} s after process 1 was killed")
        stdout, stderr = procs.output("first0")
        assert code == 1, stderr[-3000:]
        assert "Traceback" not in stderr + stdout and "Check failure" not in stderr
        (line,) = error_lines(stderr)
        killed_at = latest_step(run)
        # Mostly its next collective fails (~1 s), naming the step and the checkpoint; where gloo was
        # connecting a new set of devices through the coordination service, the peer watch ends it instead.
        watched = (
            "error: multi-process training stopped: process 1 of 2 is gone (its connection to process 0 closed "
            "without finishing); restart every process to resume from the latest checkpoint"
        )
        if line != watched:
            assert line.startswith("error: multi-process training stopped at step ") and "a peer process" in line
            assert line.endswith(f"resume from {run / 'checkpoints' / f'ckpt-{killed_at}.state.npz'}"), line

        # 2. Restart both: they resume from the chief's checkpoint.
        start("second", 100000)
        names = ["second0", "second1"]
        wait_for(lambda: latest_step(run) > killed_at, procs, names, START_TIMEOUT, "new checkpoint")
        for name in names:
            resumed = rf"resumed from \S+ckpt-{killed_at}\.state\.npz at step {killed_at}\b"
            assert re.search(resumed, procs.output(name)[0]), procs.output(name)[0][-2000:]

        # 3. Ctrl-C on process 1 alone: both stop after the same step and the chief saves it.
        ctrl_c_stops_both(procs, names, run, FAILURE_TIMEOUT)

    # 4. Kill the chief, which hosts JAX's coordination service: the other process stops in one line too,
    # whichever sees it first: its next collective (the line of step 1) or the coordinator watch. Without the
    # watch JAX's client could abort it from C++ with a stack trace, status 134.
    stopped_at = latest_step(run)
    with processes(tmp_path) as procs:
        start("third", 100000)
        wait_for(lambda: latest_step(run) > stopped_at, procs, ["third0", "third1"], START_TIMEOUT, "checkpoint")
        procs.kill("third0")
        code = procs.wait(["third1"], timeout=FAILURE_TIMEOUT)["third1"]
        stdout, stderr = procs.output("third1")
    assert code == 1, stderr[-3000:]
    assert "Traceback" not in stderr + stdout and "Check failure" not in stderr
    (line,) = error_lines(stderr)
    watched = (
        f"error: multi-process training stopped: process 0 (the coordinator, 127.0.0.1:{port}) is gone; "
        "restart every process to resume from the latest checkpoint"
    )
    assert line == watched or ("a peer process" in line and line.startswith("error: multi-process training")), line


def test_the_coordinator_watch_ends_the_process_in_one_line_when_process_0_is_gone():
    """The watch of a process other than 0 (`backend/jax.py`), against a stand-in coordinator socket."""
    import socket
    import subprocess

    server = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{server.getsockname()[1]}"
    code = (
        "import sys, time\n"
        "from keras_sagan.backend import jax as jax_backend\n"
        f"jax_backend._watch_coordinator({address!r})\n"
        "print('watching', flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=environment(1), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "watching"
        server.settimeout(60)
        connection, _ = server.accept()
        connection.close()  # The service dropping an idle connection: the watch reconnects and keeps waiting.
        time.sleep(1.0)
        assert proc.poll() is None, proc.stderr.read()
        server.close()  # Process 0 gone: nothing listens there any more.
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
        server.close()
    stderr = proc.stderr.read()
    assert code == 1, stderr
    assert error_lines(stderr) == [
        f"error: multi-process training stopped: process 0 (the coordinator, {address}) is gone; "
        "restart every process to resume from the latest checkpoint"
    ], stderr


def test_the_peer_watch_ends_process_0_in_one_line_when_a_peer_leaves_without_a_goodbye():
    """Process 0's watch (`backend/jax.py`) over socket pairs standing in for two peers' connections.

    A goodbye (`leave_processes`) is a clean departure; a closed connection with the process still
    running after the grace is a dead peer; a closed connection while this process is stopping anyway
    (its own collective failed, with its own line) is left to that line.
    """
    import subprocess

    code = (
        "import socket, threading, time\n"
        "from keras_sagan.backend import jax as jax_backend\n"
        "jax_backend.PEER_GRACE = 0.5\n"
        "# Stopping within the grace: no line from the watch.\n"
        "mine, theirs = socket.socketpair()\n"
        "stopping = threading.Event()\n"
        "watch = threading.Thread(target=jax_backend._watch_peer_links, args=({1: mine}, stopping, 2))\n"
        "watch.start(); theirs.close(); time.sleep(0.1); stopping.set(); watch.join(5)\n"
        "print('survived' if not watch.is_alive() else 'still watching', flush=True)\n"
        "# Peer 2 says goodbye, peer 1 dies.\n"
        "pairs = {1: socket.socketpair(), 2: socket.socketpair()}\n"
        "threading.Thread(target=jax_backend._watch_peer_links,\n"
        "                 args=({i: p[0] for i, p in pairs.items()}, threading.Event(), 3), daemon=True).start()\n"
        "pairs[2][1].sendall(jax_backend._GOODBYE); pairs[2][1].close(); time.sleep(1.0)\n"
        "print('after goodbye', flush=True)\n"
        "pairs[1][1].close(); time.sleep(30)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=environment(1), capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["survived", "after", "goodbye"], proc.stdout + proc.stderr
    assert proc.returncode == 1, proc.stderr
    assert error_lines(proc.stderr) == [
        "error: multi-process training stopped: process 1 of 3 is gone (its connection to process 0 closed without "
        "finishing); restart every process to resume from the latest checkpoint"
    ], proc.stderr


def _start_joined_pair(procs, body):
    """Starts processes p0 and p1, which join one run on 127.0.0.1, then run `body` (Python source; `index`,
    `jax_backend`, `os`, `sys` and `time` are there)."""
    (port,) = free_ports(1)
    code = (
        "import os, sys, time\n"
        "from keras_sagan.backend import jax as jax_backend\n"
        "index = int(sys.argv[1])\n"
        f"jax_backend.initialize_processes('127.0.0.1:{port}', 2, index, timeout=120)\n"
    ) + body
    for index in range(2):
        procs.start(f"p{index}", [sys.executable, "-c", code, str(index)], environment(2))


def test_processes_leave_in_order_so_no_peer_finds_the_coordinator_gone(tmp_path):
    """`leave_processes` at the end of a run: the peers shut down first, process 0 (whose coordination
    service their shutdown calls reach) last. Process 1 here leaves 3 s after process 0 is ready to:
    had process 0 exited at once, process 1's shutdown would abort from C++ ("Failed to disconnect from
    coordination service"), as it sometimes did at the end of a finished run (JAX has no shutdown
    barrier with recoverability on)."""
    body = (
        "if index == 1:\n"
        "    time.sleep(3)\n"
        "jax_backend.leave_processes()\n"
        "print('left', time.time(), flush=True)\n"
        "time.sleep(1 if index == 1 else 0)  # Process 1 outlives process 0: its watch stopped, no failure.\n"
        "print('done', flush=True)\n"
    )
    with processes(tmp_path) as procs:
        _start_joined_pair(procs, body)
        codes = procs.wait(["p0", "p1"], timeout=START_TIMEOUT)
    outputs = {name: procs.output(name) for name in codes}
    assert codes == {"p0": 0, "p1": 0}, {name: err[-3000:] for name, (out, err) in outputs.items()}
    said = {name: [line.split() for line in out.splitlines() if line.startswith(("left", "done"))]
            for name, (out, _) in outputs.items()}  # fmt: skip
    left = {name: float(lines[0][1]) for name, lines in said.items()}
    assert left["p0"] >= left["p1"], left  # Process 0 waited for process 1's goodbye.
    for name, (out, err) in outputs.items():
        assert [line[0] for line in said[name]] == ["left", "done"], out
        assert "Check failure" not in err and not error_lines(err), err[-3000:]


def test_process_0_stops_waiting_for_a_peer_that_never_leaves_after_the_timeout(tmp_path):
    """`leave_processes(timeout=)`: a peer that never says goodbye (hung, here asleep) holds process 0 back at most
    `timeout` seconds; then process 0 shuts down and exits normally."""
    body = (
        "if index == 1:\n"
        "    time.sleep(60)\n"
        "    os._exit(0)\n"
        "started = time.monotonic()\n"
        "jax_backend.leave_processes(timeout=2)\n"
        "print('waited', time.monotonic() - started, flush=True)\n"
    )
    with processes(tmp_path) as procs:
        _start_joined_pair(procs, body)
        codes = procs.wait(["p0"], timeout=START_TIMEOUT)
        out, err = procs.output("p0")
    assert codes == {"p0": 0}, err[-3000:]
    (waited,) = [float(line.split()[1]) for line in out.splitlines() if line.startswith("waited")]
    assert 2 <= waited < 30, waited
    assert "Check failure" not in err and not error_lines(err), err[-3000:]


@pytest.mark.slow
def test_a_coordinator_that_never_answers_fails_in_bounded_time_with_one_line(tmp_path):
    (port,) = free_ports(1)  # Nobody listens there.
    settings = [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", "--process_id=1"]
    settings += ["--coordinator_timeout=2", f"--model_dir={tmp_path}/run"]
    command = _train_command("--strategy=multihost", *settings)
    with processes(tmp_path) as procs:
        procs.start("lonely", command, environment(2))
        code = procs.wait(["lonely"], timeout=START_TIMEOUT)["lonely"]
    stdout, stderr = procs.output("lonely")
    assert code == 2, stderr[-3000:]
    assert "Traceback" not in stderr and "Check failure" not in stderr
    (line,) = error_lines(stderr)
    assert line == (
        f"error: process 1 of 2 could not join the run at coordinator 127.0.0.1:{port} within 2 s; start process 0 "
        "on that address (every process with the same coordinator_address and num_processes) or raise "
        "coordinator_timeout"
    )
    assert not (tmp_path / "run").exists()  # Nothing written: the lock is taken after the processes meet.


# -- the pieces, in this process ---------------------------------------------------------------------


def test_missing_settings_name_the_flags_and_keras_variables(monkeypatch):
    for name in (jax_backend.ENV_JOB_ADDRESSES, jax_backend.ENV_NUM_PROCESSES, jax_backend.ENV_PROCESS_ID):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=r"^strategy='multihost' needs coordinator_address, process_id: set the flag"):
        jax_backend.initialize_processes(num_processes=2)
    monkeypatch.setenv(jax_backend.ENV_PROCESS_ID, "one")
    with pytest.raises(ValueError, match=r"KERAS_DISTRIBUTION_PROCESS_ID must be an int; received: .*'one'$"):
        jax_backend.initialize_processes("127.0.0.1:1", 2)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"process_id": 0}, r"`process_id` must be unset unless strategy='multihost'; received: process_id=0"),
        ({"strategy": "multihost", "num_processes": 2, "process_id": 2}, r"an int from 0 to num_processes - 1 = 1"),
        ({"strategy": "multihost", "coordinator_timeout": 0}, r"`coordinator_timeout` must be a number of seconds"),
    ],
)
def test_bad_multihost_settings_are_one_line_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_with_several_workers_a_signal_stops_training_only_through_the_agreement():
    from keras_sagan.training.callbacks import InterruptHandler

    class Model:
        stop_training = False

    # A signal after this worker's agreement of a step: stopping then would leave the others one
    # step ahead, in a collective op this worker never joins.
    handler = InterruptHandler(print_fn=lambda line: None, agree=lambda stop: stop)
    handler.set_model(Model())
    handler._handle(signal.SIGINT, None)
    assert handler.interrupted == "SIGINT" and not handler.model.stop_training
    handler.on_train_batch_end(0)  # The next agreement: every worker stops after this step.
    assert handler.model.stop_training
    alone = InterruptHandler(print_fn=lambda line: None)  # One worker: after the running step, no agreement.
    alone.set_model(Model())
    alone._handle(signal.SIGINT, None)
    assert not alone.model.stop_training  # The handler itself never touches the model (test_sagan_jax.py).
    alone.on_train_batch_end(0)
    assert alone.model.stop_training


@pytest.mark.tensorflow
def test_multihost_on_tensorflow_names_the_backend_and_what_works():
    expected = (
        r"`strategy` must be one of \('default', 'mirrored', 'multiworker', 'tpu'\) on the tensorflow backend "
        r"\(multihost is JAX's multi-process run: KERAS_BACKEND=jax; .*; received: strategy='multihost'$"
    )
    with pytest.raises(backend.BackendError, match=expected):
        builders.make_strategy("multihost")


@pytest.mark.tensorflow
def test_the_command_line_refuses_multihost_on_tensorflow_in_one_line(capsys, tmp_path):
    err = cli_error(capsys, ["train", "--strategy=multihost", f"--model_dir={tmp_path / 'run'}"])
    assert "on the tensorflow backend (multihost is JAX's multi-process run" in err
    assert not (tmp_path / "run").exists()


if __name__ == "__main__":
    _run_process(sys.argv[1], json.loads(sys.argv[2]))
