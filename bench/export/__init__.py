"""A run folder sent to the tools users already open: TensorBoard event files, an MLflow tracking store."""
