"""A run directory and the preset exported from it, shared by the preset tests that need TensorFlow."""

import numpy as np
import pytest
from run_fixtures import ema_sagan, write_run


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """`{"gan", "run", "preset", "z", "ema_images"}`: a tiny EMA run (TF checkpoint) and its exported preset."""
    from keras_sagan.export.preset import export_preset

    root = tmp_path_factory.mktemp("exported")
    gan = ema_sagan()
    write_run(str(root / "run"), gan)
    preset = export_preset(str(root / "run"), str(root / "tiny"), metadata={"certificate": {"scores": {"fid": 3.25}}})
    z = np.random.RandomState(11).randn(4, gan.generator.z_dim).astype("float32")
    return {
        "gan": gan,
        "run": str(root / "run"),
        "preset": preset,
        "z": z,
        "ema_images": np.asarray(gan.ema_generator(z, training=False)),
    }
