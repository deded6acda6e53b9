"""Spark 2 over SSH: the connection, a long-lived shell, and the docker CLI."""
