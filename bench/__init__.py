"""bench: compare optimizers on GAN training, fairly and reproducibly.

``bench.run(experiment, ...)`` trains as ``bench run`` does; ``bench.load(path)`` and ``bench.compare(*paths)``
(bench.api) read runs into pandas. They are imported on first use, so ``import bench`` stays instant and the
command line does not pay for pandas it may not need.
"""

__version__ = "0.1.0"
__all__ = ["BenchError", "compare", "load", "run"]


def __getattr__(name: str):
    if name in ("load", "compare", "run"):
        from bench import api

        return getattr(api, name)
    if name == "BenchError":
        from bench.core.errors import BenchError

        return BenchError
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
