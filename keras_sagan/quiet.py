"""File descriptor 2 while TensorFlow's C++ code runs: the one owner of holding it back or sending it to a file.

With the full `tensorflow` wheel on a machine without a GPU, `import tensorflow` prints, once per shared
library (so twice):

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 ... port.cc:153] oneDNN custom operations are on. ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.

and the first device listing prints `E0000 ... cuda_platform.cc:52] failed call to cuInit: ...`. absl writes the
first three before it reads `TF_CPP_MIN_LOG_LEVEL`, so no log level removes them, and level 3, which removes the
fourth, would also hide TensorFlow's real errors. A user reads them as a failure. `import_quietly` (called by the
command line before anything imports Keras) holds fd 2 back during those imports only, drops exactly these notices
(`START_UP_NOTICES`) and writes everything else back to stderr, so a real error there stays visible.
`stderr_to(file)` sends fd 2 to a file for longer (the LiteRT converter's pages of MLIR diagnostics).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import IO

START_UP_NOTICES = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|^[IWE]\d{4} [\d:.]+ +\d+ (?:"
    r"port\.cc:\d+\] oneDNN custom operations are on"
    r"|cpu_feature_guard\.cc:\d+\] This TensorFlow binary is optimized"
    r"|cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine"
    r"|cuda_platform\.cc:\d+\] failed call to cuInit"
    r"|cuda_(?:dnn|fft|blas)\.cc:\d+\] Unable to register cu\w+ factory"
    r")"
)
"""The lines `import_quietly` drops: TensorFlow's start-up notices on a machine without a (usable) GPU."""


@contextlib.contextmanager
def stderr_to(file: IO) -> Iterator[None]:
    """Sends file descriptor 2 (C++ logging, not only Python's `sys.stderr`) to the open `file` while inside."""
    sys.stderr.flush()
    saved = os.dup(2)
    os.dup2(file.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def without_notices(text: str) -> str:
    """`text` without the lines `START_UP_NOTICES` matches."""
    return "".join(line for line in text.splitlines(keepends=True) if not START_UP_NOTICES.match(line.rstrip("\n")))


def import_quietly() -> None:
    """Imports Keras and TensorFlow (when installed) with their start-up notices dropped; the rest of stderr kept.

    Sets `TF_CPP_MIN_LOG_LEVEL=2` unless the user has set it. Nothing is held back when the user set it to `0`
    (they asked for TensorFlow's notices), when TensorFlow is already imported, or when fd 2 cannot be duplicated.
    The first device listing, which tries CUDA, runs inside too: it does not create the runtime, so logical devices
    can still be configured afterwards.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        return
    try:
        os.fstat(2)
    except OSError:  # No stderr at all (`2>&-`): nothing to keep clean.
        return
    with tempfile.TemporaryFile() as held:
        try:
            with stderr_to(held):
                importlib.import_module("keras")  # Loads the backend's framework: TensorFlow on the default backend.
                if importlib.util.find_spec("tensorflow") is not None:
                    importlib.import_module("tensorflow").config.list_physical_devices()
        finally:  # Also when the import fails or is interrupted: its own messages are shown.
            held.seek(0)
            sys.stderr.write(without_notices(held.read().decode(errors="replace")))
            sys.stderr.flush()
