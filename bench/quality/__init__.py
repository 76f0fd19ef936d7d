"""Sample-quality metrics without pretrained networks (``metrics``), FID from local weights (``fid``),
and the per-run scorer that applies them all (``scorer``)."""
