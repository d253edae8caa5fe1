"""`errors.one_line` on the messages users meet: OS errors keep their errno text and path, TF's markers go."""

import errno
import os

import pytest
import tensorflow as tf

from keras_sagan.errors import one_line


def _raised(function):
    try:
        function()
    except Exception as err:  # noqa: BLE001 - the error is the value under test.
        return err
    raise AssertionError("nothing was raised")


def test_os_errors_keep_the_errno_text_and_the_path(tmp_path):
    missing = tmp_path / "no" / "s.png"
    assert one_line(_raised(lambda: open(missing, "wb"))) == f"[Errno 2] No such file or directory: '{missing}'"
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/runs/a/s.png")  # What a full disk raises.
    assert one_line(full) == "[Errno 28] No space left on device: '/runs/a/s.png'"
    denied = PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/runs/b")
    assert one_line(denied) == "[Errno 13] Permission denied: '/runs/b'"
    assert one_line(FileExistsError(errno.EEXIST, "File exists", "g.onnx")) == "[Errno 17] File exists: 'g.onnx'"


def test_tensorflow_markers_are_skipped_and_the_cause_kept():
    eager = _raised(lambda: tf.add(tf.ones([2]), tf.ones([3])))
    assert eager.message.startswith("{{function_node ")  # TF 2.21's eager format, which the rule is for.
    assert one_line(eager) == "Incompatible shapes: [2] vs. [3] [Op:AddV2] name:"

    graph = tf.function(lambda x: tf.reshape(x, [5]), input_signature=[tf.TensorSpec(None, tf.float32)])
    error = _raised(lambda: graph(tf.ones([2])))
    assert "[[{{node Reshape}}]]" in error.message
    assert one_line(error) == "Input to reshape is a tensor with 2 values, but the requested shape has 5"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Graph execution error:\n\n\t [[{{node x}}]] [Op:y]\nreal cause", "real cause"),
        ("[Op:__inference_f_9]\n{\n}\nunavailable", "unavailable"),
        ("x\n  assertion failed: [labels must be in [0, 3)] [Condition x >= 0]", "labels must be in [0, 3)"),
        ("", ""),
    ],
)
def test_messages_as_text(text, expected):
    assert one_line(text) == expected


def test_an_empty_message_gives_the_type_name():
    assert one_line(PermissionError()) == "PermissionError"
