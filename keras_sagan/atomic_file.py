"""Write-then-rename: the one way keras_sagan writes a file or a folder that a reader may open at any time.

A reader (a `sample` beside a training run, TF Serving polling an export folder) sees the old content or the
new, never half of it. A crash, a full disk or Ctrl-C leaves no temporary behind: the temporary is removed on
any exception. A SIGKILL can still leave one; its name matches `is_temporary`, so cleanup code can find it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from typing import IO

# `<target>.tmp-<32 hex>`: unique per writer, so two writers never share a temporary.
_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{32}$")


def temporary_name(path: str | os.PathLike) -> str:
    """A unique temporary path beside `path` (same folder, so the rename stays on one file system)."""
    return f"{os.fspath(path)}.tmp-{uuid.uuid4().hex}"


def is_temporary(name: str) -> bool:
    """Whether `name` (a path or a base name) is a temporary left by `atomic_write` or `atomic_directory`."""
    return _TEMPORARY.search(os.fspath(name)) is not None


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Opens a temporary beside `path` for writing; on a clean exit it is flushed, synced and renamed onto `path`.

    Args:
        path: str or path-like. The file to (re)place. Its folder is created when missing.
        mode: `"wb"` (default) or `"w"`.
        encoding: the text encoding for `mode="w"`; UTF-8 when `None`.

    Yields:
        The open temporary file.

    Example:
        >>> with atomic_write("/tmp/a.json", "w") as f:
        ...     f.write("{}")
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"`mode` must be 'w' or 'wb'; received: mode={mode!r}")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, mode, encoding=(encoding or "utf-8") if mode == "w" else None) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary folder beside `path`; on a clean exit it is renamed to `path`.

    `path` must not exist, or be an empty folder: a non-empty target is never replaced, so no files are lost
    (`FileExistsError` then, and the temporary is removed).

    Args:
        path: str or path-like. The folder to create.

    Yields:
        The temporary folder's path, to fill.
    """
    path = os.fspath(path)
    tmp = temporary_name(path)
    try:
        os.makedirs(tmp)
        yield tmp
        if os.path.isdir(path) and not os.listdir(path):
            os.rmdir(path)
        if os.path.exists(path):
            raise FileExistsError(f"{path} already exists; refusing to replace it")
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
