"""Multi-worker and TPU training: strategies, the chief, the input split and worker failures.

`train(TrainConfig(strategy=...))` uses these pieces; BUILD.md ("Distributed training") has the
launch commands.

- **Multi-worker** (`MultiWorkerMirroredStrategy`, configured through `TF_CONFIG`): every worker
  runs the same program. The chief (task `chief:0`, else `worker:0`) writes checkpoints,
  TensorBoard logs, sample grids, `config.json` and the export. Every worker takes part in a
  checkpoint save (TensorFlow's documented pattern: a save may read sync-on-read variables, a
  collective op); the others write theirs to a scratch directory that is deleted after each save.
  Every worker restores from the chief's `model_dir`, so `model_dir` must be a filesystem all
  workers read (GCS, NFS); `check_same_step` stops a run whose workers restored different steps.
- **The input split** (`distribute_global_batches`): every worker builds the same pipeline of
  global batches (same seed) and keeps its replicas' contiguous rows of each batch. The global
  batch of a step is then exactly the batch one process would train on, whatever the source
  (TF's `AUTO` autoshard policy shards TFRecord sources such as TFDS CelebA by *file*, which does
  not). Each worker decodes the whole global batch; that is the cost of the equivalence.
- **Failures**: TensorFlow 2.21's MWMS starts a coordination service whose heartbeats report a
  worker that died or stopped; collectives are then aborted with `UnavailableError` within
  seconds (its Python health-check thread is off when the service runs). A worker that hangs
  while its heartbeats go on is only caught by `CommunicationOptions(timeout_seconds=...)`
  (`collective_timeout`). `train` turns these errors into `WorkerFailure`.
- **TPU** (`TPUStrategy` on the TPU attached to a Cloud TPU VM): see
  `keras_sagan.backend.tensorflow.make_tpu_strategy`, which makes it with the other `tf.distribute` strategies.
- **Multi-host JAX** (`strategy="multihost"`): the same roles over `keras.distribution`; the
  gathers here then go through the strategy (`KerasDistribution.gather`), a dead peer is a `JaxRuntimeError`
  (`is_peer_failure`), and the chief is process 0 (`keras_sagan.backend.is_chief`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from keras_sagan.backend.distribution import KerasDistribution
from keras_sagan.errors import one_line

WORKER_FAILURES = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
)
"""The errors a collective op raises when a peer worker died, hung or aborted."""


class WorkerFailure(RuntimeError):
    """Multi-worker training stopped because a collective op failed (a peer died or hung).

    Attributes:
        step: int. The step this worker had reached.
        checkpoint: str or None. The chief's latest checkpoint, which a restart resumes from.
    """

    def __init__(self, message: str, step: int, checkpoint: str | None):
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint


def is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: always, except on non-chief workers."""
    return bool(strategy.extended.should_checkpoint)


def worker_index(strategy: tf.distribute.Strategy) -> tuple[int, int]:
    """`(index, count)` of this worker among the cluster's chief and workers; `(0, 1)` alone."""
    if isinstance(strategy, KerasDistribution):  # keras.distribution on JAX: the processes of a multihost run
        return strategy.worker_index()
    if not is_multiworker(strategy):
        return 0, 1
    resolver = strategy.cluster_resolver
    spec = resolver.cluster_spec().as_dict()
    if not spec:
        return 0, 1
    chiefs = len(spec.get("chief", []))
    index = resolver.task_id + (chiefs if resolver.task_type == "worker" else 0)
    return index, chiefs + len(spec.get("worker", []))


# -- the input split ------------------------------------------------------------------------------


def distribute_global_batches(
    strategy: tf.distribute.Strategy, make_dataset: Callable[[], tf.data.Dataset]
) -> tf.distribute.DistributedDataset:
    """Distributes a dataset of global batches so that replica `r` gets rows `[r*b, (r+1)*b)`.

    `make_dataset()` runs once per input pipeline (once per worker, or per TPU host) and must
    return the same global batches everywhere (same source, same seed) with a static batch
    size. Each pipeline keeps the rows of its own replicas, contiguous, and feeds them one
    per-replica batch at a time, in replica order. So the global batch of every step is the
    batch one process would get from `make_dataset()`, and the split matches `SAGAN`'s noise
    slicing by `replica_id_in_sync_group`. No autosharding is involved.
    """
    replicas = strategy.num_replicas_in_sync

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        if replicas % context.num_input_pipelines:
            raise ValueError(f"{replicas} replicas do not divide across {context.num_input_pipelines} input pipelines.")
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local
        dataset = make_dataset()

        def keep_local_rows(batch):
            def split(x):
                global_batch = x.shape[0]
                if global_batch is None or global_batch % replicas:
                    raise ValueError(
                        f"distributed training needs a static global batch divisible by {replicas} replicas; "
                        f"the dataset yields batches of shape {x.shape}."
                    )
                per_replica = global_batch // replicas
                rows = x[first * per_replica : (first + local) * per_replica]
                return tf.reshape(rows, [local, per_replica, *x.shape[1:]])

            return tf.nest.map_structure(split, batch)

        return dataset.map(keep_local_rows).unbatch().prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(dataset_fn)


# -- agreement between workers --------------------------------------------------------------------


def _replica_all_gather(strategy):
    @tf.function
    def gather(value):
        def replica_fn(x):
            return tf.distribute.get_replica_context().all_gather(tf.reshape(x, [1]), axis=0)

        return strategy.experimental_local_results(strategy.run(replica_fn, args=(value,)))[0]

    return gather


def gather_from_workers(strategy: tf.distribute.Strategy, value: int) -> list[int]:
    """`value` from every replica of every worker, in replica order (a collective: all must call).

    On JAX (`strategy="multihost"`): from every process, in process order.
    """
    if isinstance(strategy, KerasDistribution):
        return strategy.gather(value)
    return [int(v) for v in _replica_all_gather(strategy)(tf.constant(value, tf.int64)).numpy()]


def check_same_step(strategy: tf.distribute.Strategy, step: int, checkpoint_dir: str) -> None:
    """Raises `ValueError` when the workers restored different steps (a collective: all must call).

    Every worker restores from the chief's `checkpoint_dir`; a worker that does not see it (a
    local path on another machine) would start from step 0 and train diverging weights.
    """
    steps = gather_from_workers(strategy, step)
    if len(set(steps)) > 1:
        raise ValueError(
            f"the workers restored different steps {steps} from {checkpoint_dir}: every worker must read the "
            "chief's model_dir (use a shared filesystem such as GCS or NFS)"
        )


def make_stop_agreement(strategy: tf.distribute.Strategy) -> Callable[[bool], bool]:
    """A function all workers call after each step: True when any worker asks to stop.

    A signal reaches the workers at different steps (or only one of them); stopping together
    keeps their collective ops matched, so the final checkpoint save cannot deadlock.
    """
    if isinstance(strategy, KerasDistribution):
        return lambda stop: any(strategy.gather(int(stop)))
    gather = _replica_all_gather(strategy)
    return lambda stop: bool(np.any(gather(tf.constant(int(stop), tf.int64)).numpy()))


# -- failures ---------------------------------------------------------------------------------------


def is_peer_failure(strategy, err: BaseException) -> bool:
    """Whether `err` ends a run of several workers or processes because a collective op failed.

    TensorFlow: a `WORKER_FAILURES` error under `MultiWorkerMirroredStrategy`. JAX
    (`strategy="multihost"`): any `JaxRuntimeError` with more than one process, such as gloo's
    "Connection closed by peer" once another process died.
    """
    if isinstance(strategy, KerasDistribution):
        return strategy.is_peer_failure(err)
    return is_multiworker(strategy) and isinstance(err, WORKER_FAILURES)


def describe_failure(err: BaseException, collective_timeout: float | None) -> str:
    """A one-line reason for a peer failure (`is_peer_failure`)."""
    if not isinstance(err, tf.errors.OpError):  # JAX: the runtime's own words say which op failed
        return f"a peer process stopped, crashed or became unreachable ({type(err).__name__}: {one_line(err, 200)})"
    if isinstance(err, tf.errors.DeadlineExceededError):
        reason = f"a collective op waited longer than collective_timeout={collective_timeout}s (a peer is hung or slow)"
    else:
        reason = "a peer worker stopped, crashed or became unreachable"
    return f"{reason} ({type(err).__name__}: {one_line(err, 200)})"
