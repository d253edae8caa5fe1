"""`keras_sagan.atomic_file`: the one write-then-rename helper."""

import os

import pytest

from keras_sagan.atomic_file import atomic_directory, atomic_write, is_temporary, temporary_name


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    with atomic_write(target) as f:
        f.write(b"one")
        assert not target.exists()  # a reader sees nothing until the rename
    with atomic_write(target) as f:
        f.write(b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(target.parent) == ["a.bin"]


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as f:
            f.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_atomic_write_rejects_a_read_mode(tmp_path):
    with pytest.raises(ValueError, match="'w' or 'wb'; received: mode='r'"):
        with atomic_write(tmp_path / "a", "r"):
            pass


def test_atomic_directory_renames_and_refuses_a_non_empty_target(tmp_path):
    target = tmp_path / "d"
    with atomic_directory(target) as tmp:
        assert is_temporary(tmp)
        (open(os.path.join(tmp, "x"), "w")).close()
    assert os.listdir(target) == ["x"]
    with pytest.raises(FileExistsError, match="refusing to replace"):
        with atomic_directory(target) as tmp:
            pass
    assert os.listdir(tmp_path) == ["d"]  # the failed temporary is gone, the target kept


def test_temporary_names_are_unique_and_recognised():
    a, b = temporary_name("/x/y.png"), temporary_name("/x/y.png")
    assert a != b and a.startswith("/x/y.png.tmp-") and is_temporary(a)
    assert not is_temporary("/x/y.png") and not is_temporary("ckpt-3.tmp")
