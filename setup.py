"""Installs keras_sagan: Self-Attention GAN layers, models and training for Keras 3."""

from setuptools import find_packages, setup

setup(
    name="keras_sagan",
    version="0.1.0",
    description="Self-Attention GAN (SAGAN) for Keras 3 on TensorFlow and JAX: layers, models, training, export.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_sagan", "keras_sagan.*"]),
    # Preset folders that ship with the package (keras_sagan/shipped_presets/<name>/: config.json,
    # model.weights.h5, metadata.json, README.md, ...), registered by name in keras_sagan/models/presets.py.
    package_data={"keras_sagan": ["py.typed", "shipped_presets/*/*", "explorer/page.html", "metrics/weights/*"]},
    python_requires=">=3.10",
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.10,<4",
        "tensorflow-datasets>=4.9.10,<5",
        "absl-py>=2.1,<3",
        "tensorboard>=2.21,<2.22",
        "importlib_resources>=6",
        "scikit-image>=0.24,<1",
        "pillow>=10",
    ],
    extras_require={
        # The second backend: `KERAS_BACKEND=jax` (TensorFlow stays the default and is still installed).
        "jax": ["jax>=0.10"],
        # `keras-sagan export --format onnx|litert` (Keras' exporters).
        "export": ["tf2onnx>=1.17", "onnx>=1.17", "onnxruntime>=1.20", "ai-edge-litert>=2.0"],
        # hf:// and kaggle:// presets: the hubs' own clients download, cache and upload (BUILD.md, "Presets").
        "hub": ["huggingface_hub>=1.0", "kagglehub>=1.0"],
        # benchmarks/quality/run.py draws its curves (the plot people look at rather than read the JSON).
        "quality": ["matplotlib>=3.8", "torch>=2.11"],
        "test": [
            "pytest>=8",
            # The test command runs two pytest workers (-n 2): 1.65x faster on 2 cores (BUILD.md, "Test").
            "pytest-xdist>=3.5",
            "scipy>=1.11",
            "dill>=0.3.8",
            "ruff>=0.6",
            "tensorflow-serving-api>=2.21,<2.22",
            "jax[cpu]>=0.10",
            # Peers the tests check against. torch/torchvision pinned to the pair that installs from
            # this machine kind's disk (pytorch-fid and clean-fid need torchvision).
            "torch==2.14.1",
            "torchvision==0.29.1",
            "pytorch-fid==0.3.0",
            "clean-fid==0.1.35",
            "prdc==0.2",
            "tf2onnx>=1.17",
            "onnx>=1.17",
            "onnxruntime>=1.20",
            "ai-edge-litert>=2.0",
            "huggingface_hub>=1.0",
            "kagglehub>=1.0",
            # The explorer's browser test drives Debian's chromium + chromium-driver (.ci/run installs them).
            "selenium>=4.20",
        ],
    },
    entry_points={"console_scripts": ["keras-sagan=keras_sagan.cli:main"]},
)
