"""The services registry and what keeps it true: the per-service state (`services`),
the HTTP probes and deep check (`probes`), the watchdog that restarts a wedged service
(`watchdog`) within its restart budget (`budget`), and the registry itself (`core`)."""

from .core import Busy, DockerSnapshot, Registry, UnknownService

__all__ = ["Busy", "DockerSnapshot", "Registry", "UnknownService"]
