"""`keras-sagan train`: parse the generated training flags, run `train(config)`, map the outcome to an exit status.

    keras-sagan train --steps=50                               # the offline demo
    keras-sagan train --dataset=celeba --data_dir=DIR --image_size=64 --batch_size=64 --steps=100000
    keras-sagan train --config=runs/celeba64_demo/config.json --steps=2000   # replay a run, more steps
    keras-sagan train --helpfull                               # every flag, by section, with its default

The flags are `keras_sagan.training.flags`' (one per `TrainConfig` field, plus `--config` and
absl's `--flagfile`); `examples/train_celeba.py` calls this `main` too. Exit statuses: 0 when the
run finished; 2 with one `error: ...` line on stderr for a bad flag, setting or input; 130 for
SIGINT and 143 for SIGTERM (also on a worker that another worker's signal stopped), after a
checkpoint was saved (also for SIGINT during the final export, or before training began); 1 with
one line when a multi-worker peer failed (`WorkerFailure`); 3 with one line when the training
diverged (`TrainingDiverged`: a loss turned NaN or infinite; the line names the step and the last
good checkpoint).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from keras_sagan import quiet
from keras_sagan.errors import EXIT_USAGE, one_line, os_error_line

PROG = "keras-sagan train"
EXIT_WORKER_FAILURE = 1
EXIT_DIVERGED = 3
_HELP_ARGS = frozenset({"-h", "-?", "-help", "--help", "-helpshort", "--helpshort", "-helpfull", "--helpfull"})


def _error(error: BaseException | str, status: int) -> int:
    print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
    # The run is over: TensorFlow's warnings about objects left unrestored, logged when they are
    # garbage-collected at exit, would only bury the line above.
    if "tensorflow" in sys.modules:
        import logging

        logging.getLogger("tensorflow").setLevel(logging.ERROR)
    return status


def _usage(prog: str, flag_values) -> str:
    return (
        f"usage: {prog} [--flag=value ...] [--config=FILE] [--flagfile=FILE]\n\n"
        "Trains a SAGAN with keras_sagan.training.train. Each flag is a TrainConfig field; rerunning with the "
        "same --model_dir resumes from its latest checkpoint.\n"
        f"{flag_values.get_help()}\n"
    )


def run(config) -> int:
    """Runs `train(config)` and returns the exit status (see the module docstring)."""
    from absl import logging

    from keras_sagan import backend
    from keras_sagan.training.distributed import WorkerFailure
    from keras_sagan.training.guard import TrainingDiverged
    from keras_sagan.training.loop import ExportInterrupted, TrainingInterrupted, train

    logging.set_verbosity(logging.WARNING)  # TensorFlow's INFO lines on saving.
    try:
        train(config)
    except TrainingInterrupted as err:
        print(f"interrupted: {err}", file=sys.stderr, flush=True)
        # 130 for SIGINT; 143 for SIGTERM and for a worker stopped by another worker's signal.
        name = err.signal_name if err.signal_name in signal.Signals.__members__ else "SIGTERM"
        return 128 + signal.Signals[name].value
    except ExportInterrupted as err:
        print(f"interrupted: {err}", file=sys.stderr, flush=True)
        return 128 + signal.SIGINT.value
    except WorkerFailure as err:
        status = _error(err, EXIT_WORKER_FAILURE)
        if backend.exit_waits_for_processes():
            # JAX's exit handler waits at a shutdown barrier for the dead process, then aborts
            # with a C++ stack trace: the line above is the whole story, so leave at once.
            sys.stdout.flush()
            os._exit(status)
        return status
    except TrainingDiverged as err:
        return _error(err, EXIT_DIVERGED)
    except KeyboardInterrupt:
        print(
            "interrupted: stopped at once (before training began, or a second Ctrl-C); "
            "a rerun resumes from the latest checkpoint, if any",
            file=sys.stderr,
            flush=True,
        )
        return 128 + signal.SIGINT.value
    except ValueError as err:  # UsageError, DatasetNotFoundError and the other bad inputs.
        return _error(err, EXIT_USAGE)
    except OSError as err:  # A model_dir that cannot be written (the run directory names most of these itself).
        return _error(f"cannot write the run: {os_error_line(err)}", EXIT_USAGE)
    return 0


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """`keras-sagan train ARGV...`: returns the exit status.

    Args:
        argv: the words after `train` (default: `sys.argv[1:]`).
        prog: the program name shown by `--help`.
    """
    try:
        return _main(argv, prog)
    except KeyboardInterrupt:  # Ctrl-C while TensorFlow loads or the flags are parsed.
        print("interrupted: stopped before training began; nothing was written", file=sys.stderr, flush=True)
        return 128 + signal.SIGINT.value


def _main(argv: Sequence[str] | None, prog: str) -> int:
    quiet.import_quietly()  # Before the imports below load TensorFlow: its start-up notices dropped.
    from keras_sagan import backend

    try:
        backend.check_supported()  # Before the training modules import the backend's step.
    except backend.BackendError as err:
        return _error(err, EXIT_USAGE)
    from absl import flags

    from keras_sagan.training import flags as train_flags

    argv = list(sys.argv[1:] if argv is None else argv)
    flag_values = train_flags.new_flag_values()
    options = argv[: argv.index("--")] if "--" in argv else argv
    if _HELP_ARGS.intersection(options):
        print(_usage(prog, flag_values), end="", flush=True)
        return 0
    try:
        config = train_flags.parse([prog, *argv], flag_values)
    except (flags.Error, ValueError) as err:
        return _error(err, EXIT_USAGE)
    return run(config)


if __name__ == "__main__":
    sys.exit(main())
