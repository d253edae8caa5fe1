"""JAX-only code: attention that never holds the whole `N x N_key` map, and multi-process runs.

Imported only when the Keras backend is JAX (through `keras_sagan.backend`), or by
`strategy="multihost"` (`initialize_processes` and the barriers at the end of this file), and
JAX's strategies (`make_strategy`: `keras.distribution.DataParallel` over the devices or processes).

Queries are cut into chunks that run one after another (`jax.lax.map`), and each chunk's
computation is wrapped in `jax.checkpoint`, so the backward pass recomputes a chunk's map instead
of storing it: both passes hold one chunk's map plus the `(B, N, C)` tensors. Plain JAX autodiff
does the rest, so gradients of every order are exact (WGAN-GP differentiates D's input gradient).

Not `keras.ops.dot_product_attention`: cuDNN's fused attention on a GPU takes only float16 and
bfloat16, and SAGAN's softmax runs in float32 (each map row has up to N entries, and half
precision would lose softmax mass); on a CPU it is a plain einsum that holds the whole map.
"""

import atexit
import os
import socket
import sys
import threading

import jax
import jax.numpy as jnp
import keras
import numpy as np

from keras_sagan.backend import BackendError
from keras_sagan.backend.distribution import KerasDistribution
from keras_sagan.errors import EXIT_USAGE, bad_value, one_line

# Map entries per chunk: 2**21 float32 entries (8 MiB) stay in a CPU's caches (the TensorFlow
# path's block size, measured there). On a GPU, chunks are bounded by memory only: 2**27 entries
# (512 MiB), so the GPU is not left idle between many small chunks.
BLOCK_ENTRIES = 2**21
GPU_BLOCK_ENTRIES = 2**27


def block_entries():
    """Map entries per chunk on the default JAX device."""
    return GPU_BLOCK_ENTRIES if jax.default_backend() == "gpu" else BLOCK_ENTRIES


def _attend(queries, keys, values):
    attention = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", queries, keys), axis=-1)
    return jnp.einsum("bqk,bkc->bqc", attention, values)


def chunk_size(batch, num_queries, num_keys, queries_per_block=None):
    """Queries per chunk: `queries_per_block`, else as many as keep a chunk's map within `block_entries()`."""
    if queries_per_block is None:
        queries_per_block = max(1, block_entries() // max(1, batch * num_keys))
    return max(1, min(int(queries_per_block), num_queries))


def chunked_attention(queries, keys, values, queries_per_block=None):
    """`softmax(q k^T) v` in float32, in query chunks recomputed in the backward pass.

    Args:
        queries: `(B, N, Cq)`; keys: `(B, Nk, Cq)`; values: `(B, Nk, C)`.
        queries_per_block: int or None. Queries per chunk; `None` sizes chunks to
            `block_entries()` map entries for the whole batch.

    Returns `(B, N, C)` in `values.dtype`.
    """
    out_dtype = values.dtype
    q, k, v = (jnp.asarray(t).astype(jnp.float32) for t in (queries, keys, values))
    batch, num_queries, _ = q.shape
    chunk = chunk_size(batch, num_queries, k.shape[1], queries_per_block)
    if chunk >= num_queries:
        return jax.checkpoint(_attend)(q, k, v).astype(out_dtype)
    num_chunks = -(-num_queries // chunk)
    padded = jnp.pad(q, ((0, 0), (0, num_chunks * chunk - num_queries), (0, 0)))
    chunks = jnp.swapaxes(padded.reshape(batch, num_chunks, chunk, q.shape[-1]), 0, 1)
    attend_chunk = jax.checkpoint(lambda query_chunk: _attend(query_chunk, k, v))
    out = jax.lax.map(attend_chunk, chunks)  # (num_chunks, B, chunk, C), one chunk at a time
    out = jnp.swapaxes(out, 0, 1).reshape(batch, num_chunks * chunk, v.shape[-1])[:, :num_queries]
    return out.astype(out_dtype)


# -- several processes (`strategy="multihost"`) ---------------------------------------------------

# Keras' names for the cluster settings (`keras.distribution.initialize` reads the same variables).
ENV_JOB_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
# Seconds without a peer's heartbeat before the coordination service declares it dead. JAX's
# default is 100; a killed process is mostly seen sooner, by its broken collective connections.
HEARTBEAT_TIMEOUT = 30
JAX_TIMEOUT_MARGIN = 30  # JAX's own wait outlasts keras_sagan's by this many seconds (see initialize_processes).


def _env_int(name):
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"the environment variable {name} must be an int; received: {name}={text!r}") from None


def initialize_processes(coordinator_address=None, num_processes=None, process_id=None, timeout=60.0):
    """Joins this process to a multi-process JAX run; returns `(process_index, process_count)`.

    Arguments left None come from Keras' `KERAS_DISTRIBUTION_*` variables, as in
    `keras.distribution.initialize`, whose work this does (`jax.distributed.initialize`). It is
    not called itself because it takes no time limit: with a coordinator that never answers it
    waits JAX's default 300 s. Here `timeout` seconds bound the wait, and every failure is a
    one-line `ValueError`. Must run before JAX runs anything. On CPU devices, cross-process
    collectives go through gloo (JAX's CPU default has none).
    """
    import jax.distributed

    if coordinator_address is None:
        addresses = os.environ.get(ENV_JOB_ADDRESSES, "").strip()
        coordinator_address = addresses.split(",")[0].strip() or None  # Keras: the first job coordinates.
    num_processes = _env_int(ENV_NUM_PROCESSES) if num_processes is None else num_processes
    process_id = _env_int(ENV_PROCESS_ID) if process_id is None else process_id
    settings = {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
    missing = [name for name, value in settings.items() if value is None]
    if missing:
        raise ValueError(
            f"strategy='multihost' needs {', '.join(missing)}: set the flag(s), or Keras' variables "
            f"{ENV_JOB_ADDRESSES}, {ENV_NUM_PROCESSES} and {ENV_PROCESS_ID}"
        )
    if jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()
    if os.environ.get("JAX_PLATFORMS", "cpu").split(",")[0] in ("", "cpu"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # Without it the coordination service aborts every process from C++ as soon as it sees a peer
    # die; with it, the survivors' next collective fails in Python, and `train` says so in one line.
    jax.config.update("jax_enable_recoverability", True)
    failure = (
        f"process {process_id} of {num_processes} could not join the run at coordinator {coordinator_address} "
        f"within {timeout:g} s{{}}; start process 0 on that address (every process with the same "
        "coordinator_address and num_processes) or raise coordinator_timeout"
    )
    # When its wait times out, JAX aborts the whole process from C++ with a stack trace, which
    # Python cannot catch. So a watchdog ends the process first, with the one line and status 2;
    # JAX's own limit is set later than the watchdog's.
    joined = threading.Event()
    watchdog = threading.Thread(target=_exit_unless, args=(joined, timeout, failure.format("")), daemon=True)
    watchdog.start()
    try:
        jax.distributed.initialize(
            coordinator_address,
            num_processes,
            process_id,
            initialization_timeout=int(timeout) + JAX_TIMEOUT_MARGIN,
            heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT,
        )
    except Exception as err:  # A bad address or setting JAX checks before it waits.
        raise ValueError(failure.format(f" ({type(err).__name__}: {one_line(err, 200)})")) from None
    finally:
        joined.set()
    if jax.process_index() != 0:
        _watch_coordinator(coordinator_address)
    _watch_peers(coordinator_address, timeout)
    return jax.process_index(), jax.process_count()


# Exit status of a process whose peer failed (the command line's `EXIT_WORKER_FAILURE`).
EXIT_PEER_FAILURE = 1
# Seconds process 0 waits at the end of a run for every peer to have shut down (`leave_processes`).
LEAVE_TIMEOUT = 60.0
# This process's watches: `stopping` ends them; `connection` is a peer's liveness connection to process 0;
# `departed` is set on process 0 once every peer said goodbye (or closed while process 0 was leaving too).
_peer_links = {"stopping": threading.Event(), "connection": None, "departed": threading.Event()}


def _watch_coordinator(address: str) -> None:
    """Ends this process with one line when process 0, which hosts JAX's coordination service, dies.

    JAX's coordination client aborts the process from C++ (a stack trace, status 134) about half a
    second after the service is gone, and the survivors' Python never sees it. A daemon thread holds
    a plain TCP connection to the service instead: when it closes, a new connection is tried; refused
    means process 0 is gone (the service only closed an idle connection otherwise, and the thread
    waits again). It stops when the run ended together (`leave_processes`) and at exit, before JAX's
    own shutdown (atexit runs last-in first).
    """
    host, _, port = address.rpartition(":")
    stopping = _peer_links["stopping"]  # Set at a normal end (`leave_processes`) too: process 0 may then go first.
    atexit.register(stopping.set)

    def connect():
        return socket.create_connection((host.strip("[]"), int(port)), timeout=5)

    def watch():
        while not stopping.is_set():
            try:
                with connect() as connection:
                    connection.settimeout(None)
                    while connection.recv(4096):  # The service sends nothing we read; EOF or reset ends it.
                        pass
            except OSError:
                pass
            if stopping.is_set():
                return
            try:
                connect().close()
            except OSError:
                if stopping.is_set():
                    return
                sys.stdout.flush()
                print(
                    f"error: multi-process training stopped: process 0 (the coordinator, {address}) is gone; "
                    "restart every process to resume from the latest checkpoint",
                    file=sys.stderr,
                    flush=True,
                )
                os._exit(EXIT_PEER_FAILURE)
            stopping.wait(0.05)

    threading.Thread(target=watch, name="keras_sagan-coordinator-watch", daemon=True).start()


# Seconds process 0 lets its own next collective fail (the usual case, with the step and checkpoint
# in its line) after a peer's liveness connection closed, before the peer watch ends it.
PEER_GRACE = 5.0
_GOODBYE = b"bye"


def _watch_peers(coordinator_address: str, timeout: float) -> None:
    """Lets process 0 see, in one line, a peer process that died without a goodbye.

    A dead peer mostly fails process 0's next collective within a second. But gloo (most likely) connects each
    new set of collective devices through the coordination service's key-value store, and a peer
    that died before publishing its address leaves that wait open for minutes, silently. So every
    other process holds a plain TCP connection to a listener on process 0 (its port is broadcast
    once here); when one closes without `leave_processes`' goodbye, process 0 gives its own
    collective `PEER_GRACE` seconds to fail, then exits with one line.
    """
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return
    stopping = _peer_links["stopping"]
    atexit.register(stopping.set)  # Whatever ends this process says why itself.
    listener = None
    if jax.process_index() == 0:
        family = socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET
        listener = socket.create_server(("", 0), family=family, dualstack_ipv6=family == socket.AF_INET6)
        port = listener.getsockname()[1]
    else:
        port = 0
    port = int(np.asarray(multihost_utils.broadcast_one_to_all(np.int32(port))))
    if listener is None:
        host = coordinator_address.rpartition(":")[0].strip("[]")
        connection = socket.create_connection((host, port), timeout=timeout)
        connection.sendall(int(jax.process_index()).to_bytes(4, "big"))
        _peer_links["connection"] = connection
        return
    peers = {}
    listener.settimeout(timeout)
    with listener:
        while len(peers) < jax.process_count() - 1:
            connection, _ = listener.accept()
            connection.settimeout(timeout)
            peers[int.from_bytes(_receive_exactly(connection, 4), "big")] = connection
    watch = threading.Thread(
        target=_watch_peer_links,
        args=(peers, stopping, jax.process_count(), _peer_links["departed"]),
        name="keras_sagan-peer-watch",
    )
    watch.daemon = True
    watch.start()


def _receive_exactly(connection, size):
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("a peer process closed its liveness connection while joining")
        data += chunk
    return data


def _watch_peer_links(peers, stopping, count, departed=None):
    """Process 0's watch over `peers` ({process index: connection}) until every peer departed.

    A peer departs with a goodbye, or by closing its connection once `stopping` is set (this process
    leaves too: at the end of the run, or failing with its own line); then `departed` is set.
    """
    import selectors

    selector = selectors.DefaultSelector()
    for index, connection in peers.items():
        connection.settimeout(None)
        selector.register(connection, selectors.EVENT_READ, index)
    while peers:
        for key, _ in selector.select(timeout=0.5):
            try:
                data = key.fileobj.recv(64)
            except OSError:
                data = b""
            goodbye = data.startswith(_GOODBYE)
            if data and not goodbye:
                continue
            if goodbye or stopping.is_set() or stopping.wait(PEER_GRACE):
                selector.unregister(key.fileobj)
                peers.pop(key.data).close()
                continue
            sys.stdout.flush()
            print(
                f"error: multi-process training stopped: process {key.data} of {count} is gone "
                "(its connection to process 0 closed without finishing); restart every process to resume from "
                "the latest checkpoint",
                file=sys.stderr,
                flush=True,
            )
            os._exit(EXIT_PEER_FAILURE)
    if departed is not None:
        departed.set()


def leave_processes(timeout: float = LEAVE_TIMEOUT) -> None:
    """Leaves a multi-process run that ended together (every process calls it; a no-op alone).

    With `jax_enable_recoverability` (see `initialize_processes`) JAX's shutdown has no barrier,
    so a peer's shutdown call that reaches process 0's coordination service after process 0
    exited aborts the peer from C++. So the peers shut down first, then say goodbye over their
    liveness connection; process 0 waits for every goodbye (at most `timeout` seconds), then shuts
    down, its service last. The watches stop: nobody's exit from
    here on is a failure.
    """
    _peer_links["stopping"].set()
    connection, _peer_links["connection"] = _peer_links["connection"], None
    if not jax.distributed.is_initialized():
        return
    if jax.process_index() != 0:
        jax.distributed.shutdown()
        if connection is not None:
            try:
                connection.sendall(_GOODBYE)
                connection.close()
            except OSError:
                pass
        return
    _peer_links["departed"].wait(timeout)
    jax.distributed.shutdown()


def _exit_unless(event, timeout, message):
    if not event.wait(timeout):
        sys.stdout.flush()
        print(f"error: {message}", file=sys.stderr, flush=True)
        os._exit(EXIT_USAGE)  # The command line's status for bad input.


def process_index() -> int:
    """This process's index among the run's processes (0 alone)."""
    return jax.process_index()


def process_count() -> int:
    return jax.process_count()


def wait_for_processes(name: str) -> None:
    """Blocks until every process reaches the barrier `name` (all processes must call it)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def gather_from_processes(value: int) -> list[int]:
    """`value` from every process, in process order (all processes must call it)."""
    if jax.process_count() == 1:
        return [int(value)]
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(np.asarray([value], np.int64))
    return [int(v) for v in np.asarray(gathered).reshape(-1)]


def is_runtime_failure(err: BaseException) -> bool:
    """Whether `err` is JAX's runtime error, which a collective raises once a peer process died."""
    return isinstance(err, jax.errors.JaxRuntimeError)


# -- the strategy ---------------------------------------------------------------------------------

STRATEGIES = ("default", "mirrored", "multihost")
"""The strategies that work on JAX; `multiworker` and `tpu` are `tf.distribute` strategies."""


def make_strategy(name: str, collective_timeout=None, processes: dict | None = None):
    """The `KerasDistribution` called `name` (one of `STRATEGIES`; `collective_timeout` is TensorFlow's).

    `"default"`: one device; `"mirrored"`: `DataParallel` over every GPU, else every CPU device;
    `"multihost"`: joins the multi-process run `processes` describes (`initialize_processes`'s
    arguments), then `DataParallel` over every process's devices.
    """
    if name not in STRATEGIES:
        raise BackendError(
            bad_value("strategy", name, f"one of {STRATEGIES} on the jax backend ({name} is TensorFlow's)")
        )
    if name == "default":
        return KerasDistribution()
    if name == "multihost":  # First: JAX must join the other processes before it runs anything.
        initialize_processes(**(processes or {}))
        # Every process's devices, process by process: Keras feeds each process its rows.
        return KerasDistribution(keras.distribution.DataParallel(devices=jax.devices()))
    gpus = [device for device in jax.devices() if device.platform == "gpu"]
    devices = jax.devices("gpu") if gpus else jax.devices("cpu")
    return KerasDistribution(keras.distribution.DataParallel(devices=devices))
