"""The networks, their optimizers, the compiled training step and the process's runtime settings."""
