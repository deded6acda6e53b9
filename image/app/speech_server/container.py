"""How the install manager runs the speech server: one `docker run` from the settings
spark-control already owns (name, port, memory cap, GPU, model settings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ..config import Settings, parse_memory
from .images import CANDIDATE, label_args

SERVER_PORT = 8000  # inside the container, unless host networking moves it (PORT)
MODELS_AT = "/models"


@dataclass(frozen=True)
class RunPlan:
    name: str
    image: str
    port: int
    memory_bytes: int
    network: str = ""
    gpus: bool = False
    env: dict[str, str] = field(default_factory=dict)
    volume: str = ""
    candidate: bool = False

    def argv(self) -> list[str]:
        """`docker run` arguments after the docker command itself."""
        return ["run", "-d", "--name", self.name, "--restart", "unless-stopped",
                # swap equal to memory: no swap at all, so a long file cannot thrash the host
                "--memory", str(self.memory_bytes), "--memory-swap", str(self.memory_bytes),
                *self._network(), *(["--gpus", "all"] if self.gpus else []),
                *(["-v", f"{self.volume}:{MODELS_AT}"] if self.volume else []),
                *[arg for key, value in sorted(self.env.items()) for arg in ("-e", f"{key}={value}")],
                *(label_args({CANDIDATE: "1"}) if self.candidate else []), self.image]

    def _network(self) -> list[str]:
        if self.network == "host":  # no port mapping: the server itself moves
            return ["--network", "host", "-e", f"PORT={self.port}"]
        network = ["--network", self.network] if self.network else []
        return [*network, "-p", f"{self.port}:{SERVER_PORT}"]


def main_port(settings: Settings) -> int:
    parts = urlsplit(settings.parakeet_url or "")
    return parts.port or (443 if parts.scheme == "https" else 80)


def spare_port(settings: Settings) -> int:
    return settings.speech_server_spare_port or main_port(settings) + 1


def url_at(settings: Settings, port: int) -> str:
    """PARAKEET_URL with another port: where a container on `port` answers."""
    parts = urlsplit(settings.parakeet_url or "")
    host = parts.hostname or settings.spark2_host
    return urlunsplit((parts.scheme or "http", f"{host}:{port}", "", "", "")).rstrip("/")


def model_env(settings: Settings) -> dict[str, str]:
    env = {key: value for key, value in (("ASR_MODEL", settings.asr_model),
                                         ("DIAR_MODEL", settings.diar_model),
                                         ("EMBEDDING_MODEL", settings.embedding_model))
           if value}
    if settings.speech_server_model_volume:
        env["HF_HOME"] = f"{MODELS_AT}/huggingface"
    return env


def plan(settings: Settings, *, name: str, image: str, port: int, gpus: bool,
         candidate: bool = False) -> RunPlan:
    return RunPlan(name=name, image=image, port=port,
                   memory_bytes=parse_memory(settings.parakeet_memory_limit),
                   network=settings.speech_server_network, gpus=gpus,
                   env=model_env(settings), volume=settings.speech_server_model_volume,
                   candidate=candidate)
