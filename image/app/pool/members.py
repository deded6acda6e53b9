"""The pool's members: what spark-control runs for each speech host.

Each member has everything one host had before the pool: its SSH connection and
Docker, registry (pollers, memory cap), watchdog, overlay manager, host health and
install manager, each built from the member's own settings (`member_settings`: the
global ones with the host's values put in), so one unreachable host only ever slows
its own polls and pages. SPARK2_HOST is the first member, named SPARK2_NAME; HOSTS adds
more. Without either, local mode (our own speech server) or PARAKEET_URL alone is a
pool of one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx

from ..audio.speech_client import SpeechClient
from ..config import HostSpec, Settings
from ..host.health import HostHealth
from ..local import LocalProcesses, LocalSpeech
from ..poller import Poller
from ..registry import Registry
from ..registry.probes import HealthResult
from ..registry.watchdog import Watchdog
from ..remote.docker import Docker
from ..remote.ssh import SSHClient, SSHTarget
from ..speech_models import SpeechModels
from ..speech_server.manager import SpeechServer


@dataclass
class Member:
    name: str
    settings: Settings
    registry: Registry
    watchdog: Watchdog
    speech_models: SpeechModels
    host_health: HostHealth
    speech_server: SpeechServer
    client: SpeechClient | None
    ssh: SSHClient | None = None
    docker: Docker | None = None

    @property
    def managed(self) -> bool:
        """SSH + Docker: started, stopped, patched and installed from here."""
        return self.docker is not None

    @property
    def concurrency(self) -> int:
        return self.settings.gpu_in_flight

    @property
    def address(self) -> str:
        return self.settings.spark2_host or (self.client.url if self.client else "")

    def asr_poller(self) -> Poller[HealthResult] | None:
        """The /health poller of the member's speech server (parakeet-asr), if any."""
        name = next((n for n, rt in self.registry.runtime.items() if rt.spec.kind == "asr"),
                    None)
        return self.registry.health_pollers[name] if name else None

    def asr_health(self) -> HealthResult | None:
        poller = self.asr_poller()
        return poller.data if poller else None

    def start(self) -> None:
        self.registry.start()
        self.host_health.start()
        self.watchdog.start()

    async def close(self) -> None:
        await self.speech_models.stop()
        await self.speech_server.stop()
        await self.watchdog.stop()
        await self.registry.stop()
        await self.host_health.stop()
        if self.docker is not None:
            await self.docker.close()
        if self.ssh is not None:
            await self.ssh.close()


def ssh_target(settings: Settings) -> SSHTarget:
    skip = settings.ssh_insecure_skip_host_key_check
    return SSHTarget(
        host=settings.spark2_host, port=settings.spark2_ssh_port, user=settings.spark2_user,
        key_path=settings.ssh_key_path, known_hosts=None if skip else settings.ssh_known_hosts,
        connect_timeout=settings.ssh_connect_timeout_s,
        command_timeout=settings.ssh_command_timeout_s, keepalive=settings.ssh_keepalive_s)


def member_settings(settings: Settings, spec: HostSpec) -> Settings:
    """The global settings with one HOSTS entry's values put in (its own data folder,
    for its host history)."""
    s = settings
    update = {
        "spark2_host": spec.ssh_host, "spark2_ssh_port": spec.ssh_port,
        "spark2_user": spec.user or s.spark2_user,
        "ssh_key_path": (spec.ssh_key_path or s.ssh_key_path).expanduser(),
        "ssh_known_hosts": (spec.ssh_known_hosts or s.ssh_known_hosts).expanduser(),
        "docker_cmd": spec.docker_cmd or s.docker_cmd,
        "nvidia_smi_cmd": spec.nvidia_smi_cmd or s.nvidia_smi_cmd,
        "parakeet_url": (spec.parakeet_url or f"http://{spec.ssh_host}:8000").rstrip("/"),
        "parakeet_container": spec.parakeet_container or s.parakeet_container,
        "parakeet_app_dir": spec.parakeet_app_dir or s.parakeet_app_dir,
        "parakeet_memory_limit": spec.parakeet_memory_limit or s.parakeet_memory_limit,
        "magpie_url": spec.magpie_url, "services": spec.services,
        "embedding_model": spec.embedding_model or s.embedding_model,
        "gpu_in_flight": spec.concurrency or s.gpu_in_flight,
        "data_dir": s.data_dir / "hosts" / spec.name, "hosts": [], "local_speech": False,
    }
    return s.model_copy(update=update)


def first_member_name(settings: Settings, local: LocalSpeech | None) -> str | None:
    """The name of the SPARK2_HOST / local / PARAKEET_URL member; None: there is none
    (HOSTS alone)."""
    if settings.remote:
        return settings.spark2_name
    if local is not None:
        return "local"
    if settings.parakeet_url:
        return "external"
    return None if settings.hosts else "none"  # "none": nothing configured at all


def build_member(name: str, settings: Settings, http: httpx.AsyncClient,
                 local: LocalSpeech | None = None) -> Member:
    """A member's parts, not started (`Member.start`)."""
    ssh = SSHClient(ssh_target(settings)) if settings.remote else None
    docker = Docker(ssh, settings.docker_argv) if ssh else None
    host = docker or (LocalProcesses(local) if local else None)
    _folder(settings.data_dir)
    registry = Registry(settings, host, http)
    client = (SpeechClient(http, settings.parakeet_url.rstrip("/"), settings.speech_timeout_s,
                           settings.gpu_in_flight) if settings.parakeet_url else None)
    speech_models = SpeechModels(settings, registry)
    speech_server = SpeechServer(settings, registry, http, client)
    speech_server.on_change.append(speech_models.forget_hashes)
    return Member(name=name, settings=settings, registry=registry,
                  watchdog=Watchdog(registry), speech_models=speech_models,
                  host_health=HostHealth(settings, docker, local is not None, name=name),
                  speech_server=speech_server, client=client, ssh=ssh, docker=docker)


def build_members(settings: Settings, http: httpx.AsyncClient,
                  local: LocalSpeech | None) -> list[Member]:
    """SPARK2_HOST's (or local mode's, or PARAKEET_URL's) member, then HOSTS': never
    empty (with nothing configured, one member without a speech server)."""
    members = []
    first = first_member_name(settings, local)
    if first is not None:
        members.append(build_member(first, settings, http, local))
    for spec in settings.hosts:
        members.append(build_member(spec.name, member_settings(settings, spec), http))
    return members


def _folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
