"""`RunLock`: one process at a time in a run directory, through `fcntl.flock` on `run.lock`.

The holder writes `{"pid": ..., "host": ...}` into the lock file after taking the lock and
empties it when it lets go. The OS drops a `flock` when its process dies, however it dies
(SIGKILL, a crash, a lost machine's process on a local disk), so a lock left behind is never
"held": the next run takes it at once. Finding the previous holder's record still in the file
means that holder did not let go cleanly, and the taker says so in one warning line.

Shared file systems:

- NFS: Linux (2.6.12 and later) turns `flock` on an NFS mount into an NFS byte-range lock, which
  every client sees; with NFSv3 that needs the `lockd`/`statd` services, and a mount with
  `nolock` keeps the lock local to each client (two machines are then not kept apart).
- GCS through gcsfuse (and other FUSE object stores): `flock` is local to the machine that
  takes it; two machines are not kept apart.
- A file system without `flock` support (`ENOLCK`, `EOPNOTSUPP`): the run goes ahead unlocked
  after one warning line.

Under multi-worker training only the chief takes the lock (the other workers write nothing in
the run directory).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from collections.abc import Callable


class RunLock:
    """An exclusive, non-blocking `flock` on `path`; use `acquire()` as a context manager.

    Args:
        path: str. The lock file (created if missing, never deleted).
        error: exception class raised, with one line, when a live process holds the lock.
        warn: callable taking one line, told about a stale lock or a file system without locks.
            Defaults to printing it.
    """

    def __init__(self, path: str, error: type[Exception] = RuntimeError, warn: Callable[[str], None] | None = None):
        self.path = path
        self.error = error
        self.warn = warn or (lambda line: print(line, flush=True))
        self._fd = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @staticmethod
    def holder_text(record: dict | None) -> str:
        record = record or {}
        return f"PID {record.get('pid', 'unknown')} on host {record.get('host', 'unknown')}"

    def _read(self, fd: int) -> dict | None:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace").strip()
        if not text:
            return None
        try:
            record = json.loads(text)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def acquire(self) -> RunLock:
        """Takes the lock; raises `error` (one line naming the holder's PID and host) when it is held."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.holder_text(self._read(fd))
            os.close(fd)
            raise self.error(
                f"{os.path.dirname(self.path)} is in use by {holder} (lock file {self.path}); "
                "wait for that run to end, stop it, or use another model_dir"
            ) from None
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
            self.warn(
                f"warning: cannot lock {self.path} ({os.strerror(err.errno)}); nothing stops a second run on this "
                "model_dir from overwriting this one"
            )
            return self
        previous = self._read(fd)
        if previous is not None:
            self.warn(
                f"warning: taking over the stale lock {self.path} of {self.holder_text(previous)}, which ended "
                "without releasing it"
            )
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record + b"\n", 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Empties the record and lets go of the lock (a no-op when not held)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None
