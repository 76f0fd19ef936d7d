"""The registry of network builders (``[model] kind``): the dense GAN of the classic Keras tutorials today.

The contract a builder keeps, which the compiled step and the reports rely on:

- ``generator(cfg, data_shape)``: a Keras model from ``(batch, cfg.latent_dim)`` latents to ``(batch, *data_shape)``
  samples in the data's range (tanh for images in [-1, 1]); built right after ``keras.utils.set_random_seed(seed)``
  and before the discriminator, so the seed alone fixes its initial weights;
- ``discriminator(cfg, data_shape)``: a Keras model from samples to ``(batch, 1)`` *logits* (no sigmoid: the loss is
  computed from logits, stable and identical in eager and graph mode), whose last hidden layer is named
  ``features`` (the 2-D toy plots it; with 2 units the pair saves it at every sample interval);
- every layer named explicitly: checkpoints store variables by path and must find the same paths in every process.

Adding an architecture is one builder pair here and one entry in MODELS.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from bench.core.config import ModelConfig


def build_generator(cfg: ModelConfig, data_shape: tuple[int, ...]) -> keras.Model:
    """z -> a sample of ``data_shape``: an image (H, W, C) or a point (D,)."""
    z = keras.Input((cfg.latent_dim,), name="z")
    x = z
    for i, width in enumerate(cfg.g_widths):
        x = layers.Dense(width, name=f"dense_{i}")(x)
        x = layers.LeakyReLU(negative_slope=cfg.leaky_slope, name=f"leaky_{i}")(x)
        if cfg.batch_norm:
            x = layers.BatchNormalization(momentum=cfg.bn_momentum, name=f"bn_{i}")(x)
    x = layers.Dense(math.prod(data_shape), activation=cfg.output_activation, name="output")(x)
    if len(data_shape) > 1:
        x = layers.Reshape(data_shape, name="image")(x)
    return keras.Model(z, x, name="generator")


def build_discriminator(cfg: ModelConfig, data_shape: tuple[int, ...]) -> keras.Model:
    """A sample -> one logit. The last hidden layer is named ``features`` (the 2-D toy plots it)."""
    img = keras.Input(data_shape, name="sample")
    x = layers.Flatten(name="flatten")(img)
    last = len(cfg.d_widths) - 1
    for i, width in enumerate(cfg.d_widths):
        x = layers.Dense(width, name=f"dense_{i}")(x)
        x = layers.LeakyReLU(negative_slope=cfg.leaky_slope, name="features" if i == last else f"leaky_{i}")(x)
        if cfg.d_dropout:
            x = layers.Dropout(cfg.d_dropout, name=f"dropout_{i}")(x)
    return keras.Model(img, layers.Dense(1, name="logit")(x), name="discriminator")


# kind -> (generator builder, discriminator builder)
MODELS = {"dense": (build_generator, build_discriminator)}
