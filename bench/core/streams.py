"""Every named random stream: ``numpy.random.default_rng([seed, STREAM])``.

Each fixed draw of a run (the sample latents, the evaluation bank, the real images shown and
scored) has its own stream, so adding a draw never moves another. The per-iteration inputs use
``[seed, step]`` instead (bench.model.step): a pure function of the seed and the step number.
"""

from __future__ import annotations

import numpy as np

SAMPLE_LATENTS = 0x5A  # the fixed latents of the sample grids (train.sample_seed)
EVAL_LATENTS = 0xB4  # the fixed latent bank the quality metrics score (eval.seed)
REAL_GRID = 0x8E  # the real images shown beside the samples (train.sample_seed)
EVAL_REAL = 0xE7  # the real images the quality metrics compare with (eval.seed)
EVAL_NOISE = 0x4F  # the uniform noise scored once per run as normalised scores' zero (eval.seed)
QUADRATIC = 0x2D  # the points of the 2-D toy (data.seed)


def rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed, stream])
