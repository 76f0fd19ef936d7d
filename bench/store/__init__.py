"""Files on disk: the run folder's layout, crash-safe writes, CSV logs, checkpoints, reading a run back.

    results/<experiment>/<run-id>/
        manifest.json                 configuration, command, versions, machine, data, per-run status
        real.npy, real.png            the reference grid of real training images
        runs/<label>-seed<seed>/
            metrics.csv               one row per iteration (tidy; concatenable across runs)
            quality.csv               sample-quality metrics at every evaluation (step, metric, value)
            status.json               running | finished | diverged, steps done, timings
            samples/step_000200.png   grid of the fixed latents at each sample interval
            samples/step_000200.npy   the same samples as raw float32 arrays in [-1, 1]
            checkpoint.npz            every variable of G, D and both optimizers, and the step

Files on disk are the only link between training and reporting: this layer never imports TensorFlow.
"""
