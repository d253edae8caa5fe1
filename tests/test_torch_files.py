"""`keras_sagan.torch_files`: torch.save files read without torch, and pickles that would run code refused.

The files are written by torch in a subprocess (TF and torch's extensions in one process are not
always safe); the values are compared with what that process saved through NumPy.
"""

import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from keras_sagan.torch_files import TorchFileError, UnsafeFileError, load_state_dict

_WRITER = """
import sys, collections, numpy as np, torch
torch.manual_seed(0)
base = torch.randn(3, 4)
state = collections.OrderedDict(
    weight=torch.randn(5, 3, 2, 2),
    half=torch.randn(4).half(),
    steps=torch.tensor(7),
    index=torch.arange(6, dtype=torch.int64).reshape(2, 3),
    transposed=base.t(),  # A strided view of another tensor's storage.
    row=base[1],  # An offset into the same storage.
    param=torch.nn.Parameter(torch.ones(2)),
)
torch.save(state, sys.argv[1])
torch.save(state, sys.argv[2], _use_new_zipfile_serialization=False)
np.savez(sys.argv[3], **{k: v.detach().numpy() for k, v in state.items()})
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("torch_files")
    paths = [str(tmp / name) for name in ("zip.pth", "legacy.pth", "expected.npz")]
    proc = subprocess.run([sys.executable, "-c", _WRITER, *paths], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(paths[2]) as expected:
        return paths[0], paths[1], dict(expected)


@pytest.mark.parametrize("which", [0, 1], ids=["zip", "legacy"])
def test_state_dict_equals_torch(saved, which):
    loaded = load_state_dict(saved[which])
    expected = saved[2]
    assert list(loaded) == list(expected)
    for name, value in expected.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape, name
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _malicious_zip(path, payload):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_a_pickle_that_runs_a_command_is_refused_before_running(tmp_path, layout):
    marker = tmp_path / "ran"
    payload = pickle.dumps({"weight": _RunsACommand(marker)})
    path = tmp_path / "evil.pth"
    if layout == "zip":
        _malicious_zip(path, payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(UnsafeFileError, match=rf"refusing to load the global {os.system.__module__}\.system") as info:
        load_state_dict(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_plain_pickle_would_have_run_it(tmp_path):
    """The crafted payload is live: plain `pickle.loads` runs it (the control for the test above)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(_RunsACommand(marker)))
    assert marker.exists()


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    _malicious_zip(path, pickle.dumps([1, 2]))
    with pytest.raises(TorchFileError, match="is not a state dict"):
        load_state_dict(path)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(TorchFileError, match="cannot read .*junk.pth as a PyTorch file"):
        load_state_dict(tmp_path / "junk.pth")
