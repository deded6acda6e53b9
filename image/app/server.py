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
from .access.auth import AuthMiddleware, load_auth
from .access.headers import DOCS_ASSETS, SecurityHeadersMiddleware
from .access.hosts import HostCheckMiddleware, default_hosts
from .audio.jobs import AudioJobs
from .audio.jobstore import JobStore
from .audio.media import clear_spool
from .audio.pipeline import Transcribed, runner
from .config import ServiceSpec, Settings, load_settings
from .errors import NotConfigured, install_error_handlers
from .local import NAME as LOCAL_NAME
from .local import LocalSpeech, free_port, longest_wav_mb
from .logs import RequestIdMiddleware
from .metrics import MetricsMiddleware
from .pool.dispatch import SpeechPool
from .pool.members import build_members
from .pool.rolling import RollingReapply
from .routes import audio, login, passthrough, pool as pool_routes, probes, services, speakers
from .routes import host as host_routes
from .routes import audio_jobs as audio_jobs_routes
from .routes import speech_models as speech_models_routes
from .routes import speech_server as speech_server_routes
from .speakers.library import VoiceLibrary

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def _audio_jobs(settings: Settings, store: JobStore, pool: SpeechPool) -> AudioJobs:
    async def unconfigured(*_: object) -> Transcribed:
        raise NotConfigured("no speech server is configured (PARAKEET_URL, SPARK2_HOST "
                            "or HOSTS)")

    return AudioJobs(store, runner(pool, settings) if pool.serving else unconfigured,
                     running=settings.jobs_running, queue_max=settings.jobs_queue_max,
                     retention_s=settings.job_retention_h * 3600,
                     on_fault=pool.kick_wedged)


def local_speech(settings: Settings) -> LocalSpeech | None:
    """Local mode: no Spark and no PARAKEET_URL, so run our own speech server."""
    if (settings.remote or settings.pooled or settings.parakeet_url
            or not settings.local_speech):
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
        if local:
            await local.start()
        async with httpx.AsyncClient() as http:
            members = build_members(settings, http, local)
            pool = app.state.pool = SpeechPool(members, settings.drain_timeout_s)
            # the first host's, which /readyz checks (per-host routes go through the pool)
            app.state.registry = pool.first.registry
            app.state.host_health = pool.first.host_health
            rolling = app.state.rolling = RollingReapply(pool)
            store = JobStore(settings.data_dir / "jobs.sqlite3")
            voices = app.state.voices = VoiceLibrary(settings.data_dir / "speakers.sqlite3")
            audio_jobs = app.state.audio_jobs = _audio_jobs(settings, store, pool)
            clear_spool(settings.data_dir)  # leftovers of a process that was killed
            await audio_jobs.start()
            app.state.http = http
            for member in members:
                member.start()
            try:
                yield
            finally:
                await audio_jobs.stop()
                await rolling.stop()
                store.close()
                voices.close()
                for member in members:
                    await member.close()
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
    app.include_router(pool_routes.router)
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
