"""One-line error messages: the package's one owner of how a failure is told to a user.

Every user-facing error in keras_sagan is one line, in Keras' own style:
"`name` must be ...; received: name=value". `UsageError` is the base of the errors that the
command line reports as `error: <one line>` with exit status 2; `one_line` turns any exception
(TensorFlow's multi-line graph errors included) into its first informative line.
"""

from __future__ import annotations

import re

EXIT_USAGE = 2
"""Exit status of the command line and the example for a bad input or an unusable file."""

_SKIP_PREFIXES = ("graph execution error", "detected at node", "traceback", "file ", "additional grpc error")
# TensorFlow's node and op markers (`[[{{node x}}]] [Op:y]`) and gRPC's JSON: skipped. A line that only starts with
# `[` is kept: an `OSError` is `[Errno 28] No space left on device: 'path'`.
_SKIP_STARTS = ("[[", "[Op:", "{", "}")
# An eager op error opens with `{{function_node ...}}` and then says what went wrong, on the same line.
_FUNCTION_NODE = re.compile(r"^\{\{function_node [^}]*\}\}\s*")


class UsageError(ValueError):
    """A bad value or an unusable file, told to the user as one line (exit status 2 on the CLI)."""


def one_line(error: BaseException | str, limit: int = 1000) -> str:
    """The first informative line of an error message, at most `limit` characters.

    TensorFlow's op errors open with "Graph execution error:" and node traces; those lines, and the
    `[[{{node ...}}]]` and `{{function_node ...}}` markers, are skipped. A `tf.debugging` assertion's own
    message (`assertion failed: [...]`) is kept, as is an `OSError`'s `[Errno N] text: 'path'`.
    An empty message gives the exception's type name.
    """
    text = error if isinstance(error, str) else (getattr(error, "message", None) or str(error))
    match = re.search(r"assertion failed: \[([^\]]*)\]", text)
    if match:
        return " ".join(match.group(1).split())[:limit]
    for line in text.splitlines():
        line = _FUNCTION_NODE.sub("", line.strip())
        if line and not line.lower().startswith(_SKIP_PREFIXES) and not line.startswith(_SKIP_STARTS):
            return " ".join(line.split())[:limit]
    return type(error).__name__ if not isinstance(error, str) else ""


def bad_value(name: str, value, expected: str) -> str:
    """Keras' message style: "`name` must be EXPECTED; received: name=VALUE"."""
    return f"`{name}` must be {expected}; received: {name}={value!r}"


def os_error_line(error: OSError) -> str:
    """An `OSError` as one line with its cause and path: `"Permission denied (/x/y)"`, not `"[Errno 13] ..."`."""
    where = f" ({error.filename})" if getattr(error, "filename", None) else ""
    return f"{error.strerror or one_line(error)}{where}"
