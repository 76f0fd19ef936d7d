"""The bottom layer: errors, names, the table of metrics, random streams, the configuration schema.

Nothing here imports TensorFlow, pandas or any other bench layer.
"""
