"""Writes IDX files (LeCun's MNIST format) by hand, for tests that need a tiny MNIST-like dataset on disk."""

import gzip

import numpy as np


def write_idx(path, array, compress=True):
    """0, 0, type 0x08 (unsigned byte), rank, big-endian int32 dims, then the bytes; `.gz` appended when compressed."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, np.uint8).tobytes()
    opener = gzip.open if compress else open
    with opener(str(path) + (".gz" if compress else ""), "wb") as f:
        f.write(data)


def write_split(folder, split, images, labels, compress=True):
    """Writes one split's image and label files under their Fashion-MNIST names."""
    from keras_sagan.data.mnist import IDX_FILES

    image_stem, label_stem = IDX_FILES[split]
    write_idx(folder / image_stem, images, compress)
    write_idx(folder / label_stem, labels, compress)
