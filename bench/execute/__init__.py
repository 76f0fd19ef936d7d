"""Training the (optimizer, seed) pairs of a run folder: one pair (``pair``), then executors that run
many of them in this process, in worker processes (``local``) or as Ray tasks (``ray``)."""
