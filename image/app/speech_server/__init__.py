"""The speech server's install manager: build it on a Spark, run it, upgrade it."""
