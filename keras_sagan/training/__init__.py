"""Adversarial training: losses and the SAGAN model."""

from keras_sagan.training import losses
from keras_sagan.training.sagan import SAGAN, default_d_optimizer, default_g_optimizer

__all__ = ["SAGAN", "default_d_optimizer", "default_g_optimizer", "losses"]
from keras_sagan.training import callbacks  # noqa: E402
from keras_sagan.training.callbacks import make_grid  # noqa: E402
from keras_sagan.training.loop import TrainConfig, TrainingInterrupted, TrainResult, train  # noqa: E402

__all__ += ["TrainConfig", "TrainResult", "TrainingInterrupted", "callbacks", "make_grid", "train"]
