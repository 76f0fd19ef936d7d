"""Numbers from run folders: summaries, loss-trend checks, statistics. Reads files only, never TensorFlow."""
