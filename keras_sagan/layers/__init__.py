"""Custom layers: spectral normalisation, self-attention, (conditional) batch norm."""

from keras_sagan.layers.batch_normalization import BatchNormalization
from keras_sagan.layers.conditional_batch_norm import ConditionalBatchNormalization
from keras_sagan.layers.self_attention import SelfAttention
from keras_sagan.layers.spectral_normalization import SpectralNormalization

__all__ = ["BatchNormalization", "ConditionalBatchNormalization", "SelfAttention", "SpectralNormalization"]
