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
- **TPU** (`TPUStrategy` on the TPU attached to a Cloud TPU VM): see `make_tpu_strategy`.
- **Multi-host JAX** (`strategy="multihost"`): the same roles over `keras.distribution`; the
  gathers here then go through `keras_sagan.backend.jax`, a dead peer is a `JaxRuntimeError`
  (`is_peer_failure`), and the chief is process 0 (`keras_sagan.backend.is_chief`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from keras_sagan import backend
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


def make_multiworker_strategy(collective_timeout: float | None = None) -> tf.distribute.MultiWorkerMirroredStrategy:
    """`MultiWorkerMirroredStrategy` for the cluster of `TF_CONFIG` (one local process without it).

    Must run before the process executes any TensorFlow op: the strategy starts this worker's
    gRPC server and the coordination service.

    Args:
        collective_timeout: float or None. Seconds a collective op may wait for the other
            workers before it fails with `DeadlineExceededError`; `None` waits without limit and
            relies on the coordination service's heartbeats, which catch a dead or stopped
            worker. It must exceed the longest pause of the chief (sample grids, evaluation).
    """
    if collective_timeout is not None and not collective_timeout > 0:
        raise ValueError(f"collective_timeout must be None or > 0 seconds; received {collective_timeout!r}.")
    raw = os.environ.get("TF_CONFIG", "")
    try:
        tf_config = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err}): {raw[:200]!r}") from None
    task_type = (tf_config.get("task") or {}).get("type")
    if tf_config.get("cluster") and task_type not in ("chief", "worker"):
        raise ValueError(
            f"TF_CONFIG task type must be 'chief' or 'worker' for strategy='multiworker'; received {task_type!r}."
        )
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=collective_timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver(), communication_options=options
    )


def make_tpu_strategy() -> tf.distribute.TPUStrategy:
    """`TPUStrategy` over the TPU cores attached to this machine (a Cloud TPU VM).

    Connects with `TPUClusterResolver(tpu="local")` and initialises the TPU system. Raises a
    one-line `ValueError` where there is no TPU. Remote TPU nodes (`grpc://...`) are not
    supported: connecting to an unreachable one blocks without a time limit.
    """
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="local")
    try:
        tf.config.experimental_connect_to_cluster(resolver)  # A no-op for a local TPU.
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (tf.errors.OpError, ValueError, RuntimeError) as err:
        raise ValueError(
            f"strategy='tpu' found no usable TPU on this machine ({type(err).__name__}: {one_line(err)}); "
            "run on a Cloud TPU VM, or use strategy 'mirrored' or 'multiworker'"
        ) from None
    return tf.distribute.TPUStrategy(resolver)


def is_multiworker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files: always, except on non-chief workers."""
    return bool(strategy.extended.should_checkpoint)


def worker_index(strategy: tf.distribute.Strategy) -> tuple[int, int]:
    """`(index, count)` of this worker among the cluster's chief and workers; `(0, 1)` alone."""
    if hasattr(strategy, "worker_index"):  # keras.distribution on JAX: the processes of a multihost run
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
    if backend.is_jax():
        from keras_sagan.backend import jax as jax_backend

        return jax_backend.gather_from_processes(value)
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
    if backend.is_jax():
        return lambda stop: any(gather_from_workers(strategy, int(stop)))
    gather = _replica_all_gather(strategy)
    return lambda stop: bool(np.any(gather(tf.constant(int(stop), tf.int64)).numpy()))


# -- failures ---------------------------------------------------------------------------------------


def is_peer_failure(strategy, err: BaseException) -> bool:
    """Whether `err` ends a run of several workers or processes because a collective op failed.

    TensorFlow: a `WORKER_FAILURES` error under `MultiWorkerMirroredStrategy`. JAX
    (`strategy="multihost"`): any `JaxRuntimeError` with more than one process, such as gloo's
    "Connection closed by peer" once another process died.
    """
    if backend.is_jax():
        import jax

        return isinstance(err, jax.errors.JaxRuntimeError) and worker_index(strategy)[1] > 1
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
