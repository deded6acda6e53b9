"""The application: wires settings, SSH, Docker, the registry, routers and static files."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from . import __version__
from .audio.jobs import AudioJobs
from .audio.jobstore import JobStore
from .audio.media import clear_spool
from .audio.pipeline import Transcribed, runner
from .audio.speech_client import SpeechClient
from .access.auth import AuthMiddleware, load_auth
from .config import ServiceSpec, Settings, load_settings
from .errors import NotConfigured, install_error_handlers
from .access.headers import DOCS_ASSETS, SecurityHeadersMiddleware
from .host.health import HostHealth
from .access.hosts import HostCheckMiddleware, default_hosts
from .local import NAME as LOCAL_NAME
from .local import LocalProcesses, LocalSpeech, free_port, longest_wav_mb
from .logs import RequestIdMiddleware
from .metrics import MetricsMiddleware
from .registry import Registry
from .remote.docker import Docker
from .remote.ssh import SSHClient, SSHTarget
from .routes import audio, login, passthrough, probes, services, speakers
from .routes import host as host_routes
from .routes import audio_jobs as audio_jobs_routes
from .routes import speech_models as speech_models_routes
from .routes import speech_server as speech_server_routes
from .speakers.library import VoiceLibrary
from .speech_models import SpeechModels
from .speech_server.manager import SpeechServer
from .registry.watchdog import Watchdog

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def ssh_target(settings: Settings) -> SSHTarget:
    skip = settings.ssh_insecure_skip_host_key_check
    return SSHTarget(
        host=settings.spark2_host, port=settings.spark2_ssh_port, user=settings.spark2_user,
        key_path=settings.ssh_key_path, known_hosts=None if skip else settings.ssh_known_hosts,
        connect_timeout=settings.ssh_connect_timeout_s,
        command_timeout=settings.ssh_command_timeout_s, keepalive=settings.ssh_keepalive_s)


def _audio_jobs(settings: Settings, store: JobStore, client: SpeechClient | None,
                watchdog: Watchdog) -> AudioJobs:
    async def unconfigured(*_: object) -> Transcribed:
        raise NotConfigured("no speech server is configured (PARAKEET_URL or SPARK2_HOST)")

    return AudioJobs(store, runner(client, settings) if client else unconfigured,
                     running=settings.jobs_running, queue_max=settings.jobs_queue_max,
                     retention_s=settings.job_retention_h * 3600,
                     on_fault=watchdog.kick_wedged)


def local_speech(settings: Settings) -> LocalSpeech | None:
    """Local mode: no Spark and no PARAKEET_URL, so run our own speech server."""
    if settings.remote or settings.parakeet_url or not settings.local_speech:
        return None
    port = settings.local_speech_port or free_port()
    speech = LocalSpeech(settings.overlay_source, port, settings.data_dir / "local-speech.log",
                         upload_mb=longest_wav_mb(settings.longest_chunk_s))
    settings.parakeet_url = speech.url
    if settings.services is None:
        settings.services = [ServiceSpec(name="parakeet-asr", container=LOCAL_NAME,
                                         url=speech.url, kind="asr")]
    return speech


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    local = local_speech(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ssh = SSHClient(ssh_target(settings)) if settings.remote else None
        host = (Docker(ssh, settings.docker_argv) if ssh
                else LocalProcesses(local) if local else None)
        if local:
            await local.start()
        async with httpx.AsyncClient() as http:
            registry = Registry(settings, host, http)
            watchdog = Watchdog(registry)
            speech_models = SpeechModels(settings, registry)
            host_health = app.state.host_health = HostHealth(
                settings, host if isinstance(host, Docker) else None, local is not None)
            app.state.speech = (SpeechClient(http, settings.parakeet_url.rstrip("/"),
                                             settings.speech_timeout_s, settings.gpu_in_flight)
                                if settings.parakeet_url else None)
            speech_server = app.state.speech_server = SpeechServer(settings, registry, http,
                                                                   app.state.speech)
            speech_server.on_change.append(speech_models.forget_hashes)
            store = JobStore(settings.data_dir / "jobs.sqlite3")
            voices = app.state.voices = VoiceLibrary(settings.data_dir / "speakers.sqlite3")
            audio_jobs = app.state.audio_jobs = _audio_jobs(settings, store, app.state.speech,
                                                            watchdog)
            clear_spool(settings.data_dir)  # leftovers of a process that was killed
            await audio_jobs.start()
            app.state.registry, app.state.watchdog = registry, watchdog
            app.state.http = http
            app.state.speech_models = speech_models
            registry.start()
            host_health.start()
            watchdog.start()
            try:
                yield
            finally:
                await audio_jobs.stop()
                store.close()
                voices.close()
                await speech_models.stop()
                await speech_server.stop()
                await watchdog.stop()
                await registry.stop()
                await host_health.stop()
                if isinstance(host, Docker):
                    await host.shell.close()
                if ssh is not None:
                    await ssh.close()
                if local is not None:
                    await local.stop(settings.stop_grace_s)

    # FastAPIOffline: FastAPI whose /docs loads Swagger UI from this server. No /redoc:
    # ReDoc fetches its logo from cdn.redoc.ly whatever the asset source.
    app = FastAPIOffline(title="spark-control", version=__version__, lifespan=lifespan,
                         description="Control plane for the speech services on DGX Spark 2.",
                         static_url=DOCS_ASSETS, redoc_url=None,
                         swagger_ui_parameters={"validatorUrl": None})
    app.state.settings = settings
    app.state.auth = load_auth(settings)
    app.add_middleware(AuthMiddleware, auth=app.state.auth)
    app.add_middleware(MetricsMiddleware)  # outside auth: refusals are counted too
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(HostCheckMiddleware, allowed=default_hosts(settings))
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: refusals carry them too
    install_error_handlers(app)
    app.include_router(probes.router)
    app.include_router(login.router)
    app.include_router(services.router)
    app.include_router(host_routes.router)
    app.include_router(speech_models_routes.router)
    app.include_router(speech_server_routes.router)
    app.include_router(audio.router)
    app.include_router(audio_jobs_routes.router)
    app.include_router(speakers.router)
    app.include_router(passthrough.router)
    if (STATIC_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="static")
    return app
