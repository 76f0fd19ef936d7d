"""bench: compare optimizers on GAN training, fairly and reproducibly."""

__version__ = "0.1.0"
