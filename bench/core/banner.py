"""TensorFlow's start-up banner kept off the user's terminal and logs.

TensorFlow's C++ library writes a few lines to file descriptor 2 while it loads ("All log messages before
absl::InitializeLog() is called ...", the oneDNN notice, the CPU-feature note), before any setting of
TF_CPP_MIN_LOG_LEVEL can apply: four to six lines on top of every command, and a "one-line" error that is not.
``hide()`` puts an import hook in front of ``import tensorflow`` (whoever imports it first: bench, Keras, a
user's optimizer) that points descriptor 2 at a temporary file while TensorFlow loads, then writes back every line
that is not part of that banner (a real problem still shows). ``--debug`` does not install it.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

# The banner's lines: TensorFlow's own words (absl's pre-initialisation notice, port.cc's oneDNN notice,
# cpu_feature_guard's note and its continuation).
BANNER = re.compile(r"All log messages before absl::InitializeLog\(\) is called|oneDNN custom operations are on|"
                    r"This TensorFlow binary is optimized|To enable the following instructions|"
                    r"rebuild TensorFlow with the appropriate compiler flags|cuda_(?:dnn|blas|fft)\.cc.*Unable to register|"
                    r"computation placer already registered")


@contextlib.contextmanager
def _captured_stderr():
    """Descriptor 2 into a temporary file (not a pipe: a full pipe would block the library writing to it); on
    exit, what is not banner goes to the real stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [ln for ln in tmp.read().decode("utf-8", "replace").splitlines(keepends=True) if not BANNER.search(ln)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with _captured_stderr():
            self.loader.exec_module(module)


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, through the finders after it, and wraps its loader."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        unhide()  # once: the real finders answer from here on (and for this very lookup)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


_HOOK = _QuietTensorFlow()


def hide() -> None:
    """Quiet TensorFlow's start-up, if it is not loaded yet (a no-op when it is)."""
    if "tensorflow" not in sys.modules and _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def unhide() -> None:
    with contextlib.suppress(ValueError):
        sys.meta_path.remove(_HOOK)
