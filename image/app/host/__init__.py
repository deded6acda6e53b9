"""Spark 2's host itself: its figures (stats), one poller (health), a day of history,
warnings with hysteresis, Prometheus gauges, and Docker's disk use and prune."""
