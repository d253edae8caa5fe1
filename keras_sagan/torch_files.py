"""Reads PyTorch `.pth` state dicts without torch, and without ever running code from the file.

A `.pth` written by `torch.save` is a zip archive (`<name>/data.pkl`, `<name>/data/<key>`,
`<name>/byteorder`) or, before torch 1.6, one file of consecutive pickles followed by the raw
storages. Both are a pickle that rebuilds tensors from raw storage bytes. A plain `pickle.load`
would import and call any global the file names, so an untrusted file could run a command.

`load_state_dict(path)` unpickles through `_RestrictedUnpickler`, which resolves only the few
globals a state dict needs (`collections.OrderedDict`, torch's tensor/parameter rebuild functions
and storage types) to local stand-ins that build NumPy arrays; any other global is refused with
a one-line `UnsafeFileError` naming it, before anything is called. This module is the package's
one owner of reading PyTorch files (the FID Inception weights and the PyTorch reference's
checkpoints both go through it).
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

from keras_sagan.errors import UsageError, one_line

# torch storage type -> NumPy dtype. bfloat16 comes from ml_dtypes (a Keras dependency).
_STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class TorchFileError(UsageError):
    """A file that is not a readable PyTorch state dict (one line)."""


class UnsafeFileError(TorchFileError):
    """A pickle that names a global outside the allowed few: it could run code, so it is not loaded."""


def _numpy_dtype(name):
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


class _StorageType:
    """Stands in for `torch.FloatStorage` and its kin: only their dtype is used."""

    def __init__(self, name):
        self.name = name
        self.dtype = _numpy_dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    """`torch._utils._rebuild_tensor_v2`: a strided view of a flat storage, copied out."""
    size, stride = tuple(size), tuple(stride)
    if not size:
        return np.array(storage[storage_offset])
    needed = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1
    if any(n == 0 for n in size):
        return np.zeros(size, storage.dtype)
    if needed > storage.size:
        raise TorchFileError(f"a tensor of shape {size} reaches past its storage of {storage.size} elements")
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size, strides=tuple(s * storage.itemsize for s in stride)
    )
    return np.array(view)


def _rebuild_parameter(data, *_):
    """`torch._utils._rebuild_parameter`: a Parameter is its data here."""
    return data


# (module, name) -> the local stand-in. Nothing outside this table is ever resolved.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only `_ALLOWED` globals; storages come from `load_storage(type, key, numel)`."""

    def __init__(self, file, path, load_storage):
        super().__init__(file)
        self._path = path
        self._load_storage = load_storage

    def find_class(self, module, name):
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise UnsafeFileError(
                f"{self._path}: refusing to load the global {module}.{name} (a state dict of tensors needs only "
                "OrderedDict and torch's tensor rebuild functions; this file could run code)"
            )
        return allowed

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage" or not isinstance(pid[1], _StorageType):
            raise TorchFileError(f"{self._path}: unsupported persistent id {str(pid)[:80]}")
        return self._load_storage(pid[1], str(pid[2]), int(pid[4]))


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise TorchFileError(f"{path}: a zip without one <name>/data.pkl, not a torch.save file")
        root = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{root}byteorder" in names:
            byteorder = archive.read(f"{root}byteorder").decode("ascii").strip()
        storages = {}

        def load_storage(storage_type, key, numel):
            if key not in storages:
                raw = archive.read(f"{root}data/{key}")
                dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
                if len(raw) < numel * dtype.itemsize:
                    raise TorchFileError(f"{path}: storage {key} has {len(raw)} bytes, under {numel} elements")
                storages[key] = np.frombuffer(raw, dtype, count=numel).astype(storage_type.dtype)
            return storages[key]

        return _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path, load_storage).load()


def _load_legacy(path, file):
    # Before torch 1.6: pickles of the magic number, the protocol, sys_info, the object (storages
    # by key), the storage keys in file order; then each storage as an 8-byte element count and
    # its raw little-endian bytes. The storages come after the object, so it is unpickled twice:
    # once to learn each storage's type and size, once more after the bytes are read.
    def header_pickle():
        return _RestrictedUnpickler(file, path, None).load()

    def skip_header():
        if header_pickle() != _LEGACY_MAGIC:
            raise TorchFileError(f"{path}: neither a zip nor a legacy torch.save file")
        header_pickle()  # protocol version
        header_pickle()  # sys_info

    skip_header()
    storages = {}

    def learn_storage(storage_type, key, numel):
        storages.setdefault(key, (storage_type, numel))
        return np.zeros(numel, storage_type.dtype)

    _RestrictedUnpickler(file, path, learn_storage).load()
    filled = {}
    for key in header_pickle():
        key = str(key)
        if key not in storages:
            raise TorchFileError(f"{path}: storage {key} is stored but never used")
        storage_type, numel = storages[key]
        size = file.read(8)
        if len(size) < 8 or struct.unpack("<q", size)[0] < numel:
            raise TorchFileError(f"{path}: truncated before storage {key}")
        count = struct.unpack("<q", size)[0]
        raw = file.read(count * storage_type.dtype.itemsize)
        if len(raw) < count * storage_type.dtype.itemsize:
            raise TorchFileError(f"{path}: truncated in storage {key}")
        filled[key] = np.frombuffer(raw, storage_type.dtype.newbyteorder("<"), count=numel).astype(storage_type.dtype)
    missing = sorted(set(storages) - set(filled))
    if missing:
        raise TorchFileError(f"{path}: storage {missing[0]} is missing")
    file.seek(0)
    skip_header()
    return _RestrictedUnpickler(file, path, lambda storage_type, key, numel: filled[key]).load()


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """`{name: array}` of a `torch.save`d state dict, read without torch and without running code.

    Accepts the zip format (torch >= 1.6) and the legacy one; a `{"state_dict": {...}}` wrapper is
    unwrapped. Raises a one-line `UnsafeFileError` for a pickle naming any other global (nothing
    from the file is called), and `TorchFileError` for anything else that is not a state dict.
    """
    path = os.fspath(path)
    try:
        if zipfile.is_zipfile(path):
            obj = _load_zip(path)
        else:
            with open(path, "rb") as file:
                obj = _load_legacy(path, file)
    except TorchFileError:
        raise
    except (OSError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, TypeError, KeyError) as err:
        raise TorchFileError(f"cannot read {path} as a PyTorch file: {one_line(err)}") from None
    if isinstance(obj, dict) and set(obj) == {"state_dict"}:
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise TorchFileError(f"{path} is not a state dict (a mapping of names to tensors)")
    return {str(name): value for name, value in obj.items()}
