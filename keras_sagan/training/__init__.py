"""Adversarial training: losses and the SAGAN model."""

from keras_sagan.training import losses
from keras_sagan.training.sagan import SAGAN, default_d_optimizer, default_g_optimizer

__all__ = ["SAGAN", "default_d_optimizer", "default_g_optimizer", "losses"]
