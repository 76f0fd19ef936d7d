"""What a command does, start to end: resolve the experiment, check everything, start or resume a
folder, execute its pairs (``run``) or both phases of a sweep (``sweep``), and write the report."""
