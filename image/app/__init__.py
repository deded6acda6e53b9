"""spark-control: control plane for the speech services of a two-box DGX Spark cluster."""

__version__ = "0.1.0"
