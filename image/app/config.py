"""Settings, read from environment variables and an optional `.env` file.

Every key is documented in the README. A bad value stops startup with a message
that names the variable (see `load_settings`).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Docker's own rule for container names; anything else cannot name a container.
CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_MEMORY = re.compile(r"^(\d+)([bkmg]?)$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEMORY_BYTES = 6 * 1024**2  # docker refuses a smaller --memory


def parse_memory(value: str) -> int:
    """'40g' -> bytes, with docker's binary units (b, k, m, g)."""
    match = _MEMORY.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a size like 40g, 512m or 1073741824")
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if size < MIN_MEMORY_BYTES:
        raise ValueError(f"{value!r} is below docker's minimum of 6m")
    return size


def _memory_size(cls: type, value: str | None) -> str | None:
    """Validator: a memory size docker takes (parse_memory's check), or None."""
    if value is not None:
        parse_memory(value)
    return value


class ServiceSpec(BaseModel):
    """One container on Spark 2 that the registry watches and drives."""

    name: str = Field(pattern=CONTAINER_NAME.pattern)
    container: str = Field(pattern=CONTAINER_NAME.pattern)
    url: str = Field(pattern=r"^https?://[^\s/]+")
    kind: Literal["asr", "tts", "other"] = "other"
    memory_limit: str | None = None

    _memory = field_validator("memory_limit")(_memory_size)

    @field_validator("url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def memory_limit_bytes(self) -> int | None:
        return parse_memory(self.memory_limit) if self.memory_limit else None


HOST_NAME = r"^[a-z0-9][a-z0-9-]{0,30}$"


class HostSpec(BaseModel):
    """One speech host of the pool (`HOSTS`, a JSON list). With `ssh_host` it is a
    managed box: SSH + Docker, registry, watchdog, memory cap, overlay, install. Without
    it, a member known by its URL only (an external serving system behind one URL): it
    gets work and health checks, nothing else. Unset keys take the global setting of
    the same name (SSH_KEY_PATH, DOCKER_CMD, PARAKEET_MEMORY_LIMIT, ...)."""

    model_config = {"extra": "forbid"}

    name: str = Field(pattern=HOST_NAME)
    ssh_host: str = ""
    ssh_port: int = Field(22, ge=1, le=65535)
    user: str | None = None
    ssh_key_path: Path | None = None
    ssh_known_hosts: Path | None = None
    docker_cmd: str | None = None
    nvidia_smi_cmd: str | None = None
    parakeet_url: str | None = Field(None, pattern=r"^https?://[^\s/]+")
    parakeet_container: str | None = Field(None, pattern=CONTAINER_NAME.pattern)
    parakeet_app_dir: str | None = Field(None, pattern=r"^/")
    parakeet_memory_limit: str | None = None
    magpie_url: str | None = Field(None, pattern=r"^https?://[^\s/]+")
    services: list[ServiceSpec] | None = None
    concurrency: int | None = Field(None, ge=1)  # chunks at once; default GPU_IN_FLIGHT
    # what an external member's prints are made with, when its /health does not say
    embedding_model: str | None = None

    _memory = field_validator("parakeet_memory_limit")(_memory_size)

    @model_validator(mode="after")
    def _reachable(self) -> "HostSpec":
        if not self.ssh_host and not self.parakeet_url:
            raise ValueError("needs ssh_host (a managed box) or parakeet_url (a speech "
                             "endpoint known by its URL only)")
        return self

    @property
    def managed(self) -> bool:
        return bool(self.ssh_host)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    spark2_host: str = ""
    spark2_user: str = "root"
    spark2_ssh_port: int = Field(22, ge=1, le=65535)
    ssh_key_path: Path = Path("~/.ssh/id_ed25519")
    ssh_known_hosts: Path = Path("~/.ssh/known_hosts")
    ssh_insecure_skip_host_key_check: bool = False
    ssh_connect_timeout_s: float = Field(5.0, gt=0)
    ssh_command_timeout_s: float = Field(30.0, gt=0)
    ssh_keepalive_s: float = Field(15.0, gt=0)
    docker_cmd: str = "docker"
    nvidia_smi_cmd: str = "nvidia-smi"  # on Spark 2 (or here in local mode)
    # df of each that exists: HOST_DISK_PATHS=/,/var/lib/docker
    host_disk_paths: Annotated[list[str], NoDecode] = ["/", "/var/lib/docker"]

    parakeet_container: str = Field("parakeet-asr", pattern=CONTAINER_NAME.pattern)
    parakeet_url: str | None = None
    parakeet_app_dir: str = Field("/opt/parakeet/app", pattern=r"^/")
    parakeet_memory_limit: str = "40g"
    parakeet_python: str = "python3"
    overlay_dir: Path | None = None
    reapply_health_timeout_s: float = Field(120.0, gt=0)
    speech_models_cache_s: float = Field(3.0, ge=0)
    # The install manager (speech_server/): what it builds and how it runs parakeet-asr.
    speech_server_image: str = Field("spark-control/speech-server",
                                     pattern=r"^[a-z0-9][a-z0-9._/-]*$")
    speech_server_base: str = "nvcr.io/nvidia/pytorch:25.09-py3"
    speech_server_engine: Literal["nemo", "cpu"] = "nemo"
    speech_server_network: str = ""  # "": publish the port; "host": host networking
    speech_server_gpus: Literal["auto", "all", "none"] = "auto"  # auto: if docker has nvidia
    speech_server_model_volume: str = "parakeet-models"  # at /models (HF_HOME), "" for none
    speech_server_spare_port: int = Field(0, ge=0, le=65535)  # 0: the server's port + 1
    speech_server_build_timeout_s: float = Field(3600.0, gt=0)
    speech_server_health_timeout_s: float = Field(1200.0, gt=0)  # NeMo loads for minutes
    speech_server_probe_timeout_s: float = Field(120.0, gt=0)
    speech_server_cleanup_retry_s: float = Field(120.0, ge=0)
    speech_server_context_dir: Path | None = None  # default: this checkout (or image)
    asr_model: str | None = None  # passed to the container as ASR_MODEL when set
    diar_model: str | None = None
    embedding_model: str | None = None
    magpie_container: str = Field("magpie-tts", pattern=CONTAINER_NAME.pattern)
    magpie_url: str | None = None
    services: list[ServiceSpec] | None = None
    # more speech hosts (JSON list of HostSpec), after the SPARK2_HOST one when set
    hosts: list[HostSpec] = []
    spark2_name: str = Field("spark2", pattern=HOST_NAME)  # the SPARK2_HOST host's name
    drain_timeout_s: float = Field(600.0, ge=0)  # in-flight work a drain waits for
    local_speech: bool = True
    local_speech_port: int = Field(0, ge=0, le=65535)

    max_upload_mb: int = Field(2048, ge=1)
    chunk_threshold_s: float = Field(600.0, gt=0)
    chunk_s: float = Field(600.0, gt=30)
    chunk_overlap_s: float = Field(25.0, ge=5)
    gpu_in_flight: int = Field(2, ge=1)
    speech_timeout_s: float = Field(900.0, gt=0)
    jobs_running: int = Field(2, ge=1)
    jobs_queue_max: int = Field(20, ge=0)
    job_retention_h: float = Field(168.0, gt=0)
    speaker_match_threshold: float | None = Field(None, gt=0, le=1)
    data_dir: Path = Path("data")
    spark_control_token: str | None = Field(None, min_length=16)
    auth_disabled: bool = False
    # names beyond loopback and this machine's own (hosts.py): "a.lan,192.168.1.20"
    allowed_hosts: Annotated[list[str], NoDecode] = []
    bind_host: str = "0.0.0.0"
    bind_port: int = Field(9999, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    poll_interval_s: float = Field(5.0, gt=0)
    host_poll_interval_s: float = Field(5.0, gt=0)
    docker_df_interval_s: float = Field(60.0, gt=0)  # docker system df walks the data root
    host_memory_warn_pct: float = Field(10.0, gt=0, lt=100)
    host_gpu_temp_warn_c: float = Field(85.0, gt=0)
    host_disk_warn_pct: float = Field(90.0, gt=0, le=100)
    # off by default: while Spark 2 swaps more, refuse recordings over CHUNK_THRESHOLD_S
    refuse_long_jobs_while_swapping: bool = False
    health_timeout_s: float = Field(3.0, gt=0)
    startup_grace_s: float = Field(180.0, ge=0)
    deep_check_interval_s: float = Field(300.0, gt=0)
    deep_check_timeout_s: float = Field(30.0, gt=0)
    stop_grace_s: int = Field(10, ge=0, le=600)
    auto_restart_max: int = Field(3, ge=0)
    auto_restart_window_s: float = Field(1800.0, gt=0)

    @field_validator("allowed_hosts", "host_disk_paths", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):  # ALLOWED_HOSTS=a.lan,192.168.1.20
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("parakeet_memory_limit")
    @classmethod
    def _memory(cls, value: str) -> str:
        parse_memory(value)
        return value

    @field_validator("docker_cmd")
    @classmethod
    def _docker_cmd(cls, value: str) -> str:
        if not shlex.split(value):
            raise ValueError("must name the docker command, e.g. 'docker' or 'sudo docker'")
        return value

    @field_validator("ssh_key_path", "ssh_known_hosts", "data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @model_validator(mode="after")
    def _unique_hosts(self) -> "Settings":
        names = [self.spark2_name] if self.spark2_host else []
        for index, spec in enumerate(self.hosts):
            if spec.name in names:
                raise ValueError(f"HOSTS[{index}] ({spec.name}): the name is already "
                                 "used" + (" by SPARK2_HOST (SPARK2_NAME)"
                                           if spec.name == self.spark2_name
                                           and self.spark2_host else ""))
            names.append(spec.name)
        return self

    @model_validator(mode="after")
    def _derived_urls(self) -> "Settings":
        if self.spark2_host:
            self.parakeet_url = self.parakeet_url or f"http://{self.spark2_host}:8000"
            self.magpie_url = self.magpie_url or f"http://{self.spark2_host}:9000"
        return self

    @property
    def remote(self) -> bool:
        """True when a Spark is configured; False means local mode."""
        return bool(self.spark2_host)

    @property
    def pooled(self) -> bool:
        """True when HOSTS names speech hosts: no local speech server then."""
        return bool(self.hosts)

    @property
    def longest_chunk_s(self) -> float:
        """The longest audio spark-control sends the speech server in one request."""
        return max(self.chunk_threshold_s, self.chunk_s)

    @property
    def overlay_source(self) -> Path:
        """Where the overlay files and their manifest are (image/parakeet_patches)."""
        return self.overlay_dir or Path(__file__).resolve().parent.parent / "parakeet_patches"

    @property
    def docker_argv(self) -> list[str]:
        return shlex.split(self.docker_cmd)

    @property
    def nvidia_smi_argv(self) -> list[str]:
        return shlex.split(self.nvidia_smi_cmd) or ["nvidia-smi"]

    def service_specs(self) -> list[ServiceSpec]:
        """`SERVICES` when given, else parakeet-asr and magpie-tts from their own keys.
        Without a Spark, a PARAKEET_URL (or MAGPIE_URL) is a service known by its URL
        alone: polled and deep-checked, never started or stopped."""
        if self.services is not None:
            return self.services
        if not self.remote:
            return [spec for spec in (
                ServiceSpec(name="parakeet-asr", container=self.parakeet_container,
                            url=self.parakeet_url, kind="asr") if self.parakeet_url else None,
                ServiceSpec(name="magpie-tts", container=self.magpie_container,
                            url=self.magpie_url, kind="tts") if self.magpie_url else None,
            ) if spec is not None]
        specs = [ServiceSpec(name="parakeet-asr", container=self.parakeet_container,
                             url=self.parakeet_url or "", kind="asr",
                             memory_limit=self.parakeet_memory_limit)]
        if self.magpie_url:
            specs.append(ServiceSpec(name="magpie-tts", container=self.magpie_container,
                                     url=self.magpie_url, kind="tts"))
        return specs

    def check_files(self) -> list[str]:
        """Problems with the files and folders startup needs, each naming its variable:
        found now, in one line each, rather than as a traceback or, for the SSH key, as
        an "cannot reach SSH" that reads like a network fault."""
        problems = [writable_folder("DATA_DIR", self.data_dir)]
        problems += [p for index, spec in enumerate(self.hosts)
                     for p in _host_files(self, index, spec)]
        if self.remote:
            problems.append(readable_file("SSH_KEY_PATH", self.ssh_key_path))
            if not self.ssh_insecure_skip_host_key_check:
                problems.append(readable_file(
                    "SSH_KNOWN_HOSTS", self.ssh_known_hosts,
                    f"; add the Spark's key with `ssh-keyscan -p {self.spark2_ssh_port} "
                    f"{self.spark2_host} >> FILE` after checking its fingerprint"))
        return [p for p in problems if p]


def _host_files(settings: Settings, index: int, spec: HostSpec) -> list[str | None]:
    if not spec.managed:
        return []
    where = f"HOSTS[{index}] ({spec.name})"
    key = (spec.ssh_key_path or settings.ssh_key_path).expanduser()
    found = [readable_file(f"{where} ssh_key_path", key)]
    if not settings.ssh_insecure_skip_host_key_check:
        known = (spec.ssh_known_hosts or settings.ssh_known_hosts).expanduser()
        found.append(readable_file(
            f"{where} ssh_known_hosts", known,
            f"; add the host's key with `ssh-keyscan -p {spec.ssh_port} {spec.ssh_host} "
            ">> FILE` after checking its fingerprint"))
    return found


def _who() -> str:
    return f"uid {os.getuid()}"


def _owner(path: Path) -> str:
    info = path.stat()
    return f"owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):04o}"


def readable_file(variable: str, path: Path, hint: str = "") -> str | None:
    if not path.is_file():
        return f"{variable}: no such file {path}{hint}"
    if not os.access(path, os.R_OK):
        return (f"{variable}: {path} is not readable by {_who()} ({_owner(path)}): give that "
                f"user read access on the host (e.g. chown {os.getuid()} on the file, mode 600)")
    return None


def writable_folder(variable: str, path: Path) -> str | None:
    """None when `path` is (or can be made as) a folder this process can write in."""
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    if existing == path and not path.is_dir():
        return f"{variable}: {path} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"{variable}: {existing} is not writable by {_who()} ({_owner(existing)}): "
                f"chown -R {os.getuid()} the folder (on the host, if it is a bind mount), "
                "or use a named volume")
    return None


class ConfigError(Exception):
    """Startup configuration is unusable; the message names each bad variable."""


def load_settings(**overrides: object) -> Settings:
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    problems = settings.check_files()
    if problems:
        raise ConfigError("\n".join(problems))
    return settings


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        variable = _where(error["loc"], error.get("input"))
        detail = error["msg"].removeprefix("Value error, ")
        lines.append(f"{variable}: {detail} (got {error.get('input')!r})")
    return "\n".join(lines)


def _where(loc: tuple[int | str, ...], given: object) -> str:
    """HOSTS[1].ssh_port for an error inside the host list, else the variable."""
    if not loc:
        return "settings"
    head = str(loc[0]).upper()
    if head == "HOSTS" and len(loc) > 1:
        rest = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
        return f"HOSTS{rest}"
    return head
