"""Installs keras_sagan: Self-Attention GAN layers, models and training for Keras 3."""

from setuptools import find_packages, setup

setup(
    name="keras_sagan",
    version="0.1.0",
    description="Self-Attention GAN (SAGAN) for Keras 3 / TensorFlow 2: layers, models, training, export.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_sagan", "keras_sagan.*"]),
    package_data={"keras_sagan": ["py.typed"]},
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
        "test": ["pytest>=8", "scipy>=1.11", "dill>=0.3.8", "ruff>=0.6", "tensorflow-serving-api>=2.21,<2.22"],
    },
    entry_points={"console_scripts": ["keras-sagan=keras_sagan.cli:main"]},
)
