"""HTML reports: one self-contained page per run folder (``run``) or sweep (``sweep``), and the index.

Reads only files under ``results/`` (through bench.store and bench.analysis) and never imports
TensorFlow: figures and sample grids are embedded as data URIs, so a page opens from disk, a mail
attachment or a CI artifact.
"""
