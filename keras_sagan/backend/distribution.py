"""`KerasDistribution`: `keras.distribution` behind the part of a `tf.distribute.Strategy` the run uses.

The strategy of the JAX and torch backends (`keras_sagan.backend.make_strategy`). On JAX,
`strategy="mirrored"` is `keras.distribution.DataParallel` over every device (all GPUs, else the
CPU devices, e.g. from `XLA_FLAGS=--xla_force_host_platform_device_count=N`): one program over
global arrays, so the step needs no replica logic. `"default"` is one device.
"""

from __future__ import annotations

import contextlib
import types

from keras_sagan import backend


class KerasDistribution:
    """The part of a `tf.distribute.Strategy`'s interface the run uses, over `keras.distribution`."""

    def __init__(self, distribution=None):
        self.distribution = distribution
        # The chief writes the run's files: process 0 of a multi-process run, else the one process.
        self.extended = types.SimpleNamespace(should_checkpoint=backend.is_chief())

    def worker_index(self) -> tuple[int, int]:
        """`(index, count)` of this process among the run's processes; `(0, 1)` alone."""
        return backend.process_index(), backend.process_count()

    def gather(self, value: int) -> list[int]:
        """`value` from every process, in process order (a collective: all must call)."""
        return backend.gather_from_processes(value)

    def is_peer_failure(self, err: BaseException) -> bool:
        """Whether `err` is a failed collective of a run of several processes (a peer died)."""
        return backend.is_runtime_failure(err) and self.worker_index()[1] > 1

    @property
    def num_replicas_in_sync(self) -> int:
        return 1 if self.distribution is None else len(self.distribution.device_mesh.devices.flatten())

    def scope(self):
        return contextlib.nullcontext() if self.distribution is None else self.distribution.scope()
