"""Generator and discriminator builders: the dense GAN of the classic Keras tutorials.

D ends in a single logit (no sigmoid): the loss is computed from logits, which is
numerically stable and identical in eager and graph mode.
"""

from __future__ import annotations

import keras
from keras import layers

from bench.config import ModelConfig


def build_generator(cfg: ModelConfig, image_shape: tuple[int, int, int]) -> keras.Model:
    h, w, c = image_shape
    z = keras.Input((cfg.latent_dim,), name="z")
    x = z
    for i, width in enumerate(cfg.g_widths):
        x = layers.Dense(width, name=f"dense_{i}")(x)
        x = layers.LeakyReLU(negative_slope=cfg.leaky_slope, name=f"leaky_{i}")(x)
        x = layers.BatchNormalization(momentum=cfg.bn_momentum, name=f"bn_{i}")(x)
    x = layers.Dense(h * w * c, activation="tanh", name="pixels")(x)
    return keras.Model(z, layers.Reshape((h, w, c), name="image")(x), name="generator")


def build_discriminator(cfg: ModelConfig, image_shape: tuple[int, int, int]) -> keras.Model:
    img = keras.Input(image_shape, name="image")
    x = layers.Flatten(name="flatten")(img)
    for i, width in enumerate(cfg.d_widths):
        x = layers.Dense(width, name=f"dense_{i}")(x)
        x = layers.LeakyReLU(negative_slope=cfg.leaky_slope, name=f"leaky_{i}")(x)
        if cfg.d_dropout:
            x = layers.Dropout(cfg.d_dropout, name=f"dropout_{i}")(x)
    return keras.Model(img, layers.Dense(1, name="logit")(x), name="discriminator")
