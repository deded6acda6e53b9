"""The install manager: what speech server a host runs, and the jobs that change it.

One job at a time (a second is refused with 409), holding the parakeet-asr service in
the registry for its whole run, so the watchdog and the other actions leave it alone.
Jobs live in memory, like the overlay reapply's; the outcome of one is in its job view.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import httpx
from pydantic import BaseModel

from .. import __version__
from ..audio.speech_client import SpeechClient
from ..config import Settings
from ..errors import NotConfigured, RemoteError
from ..progress import Job
from ..registry import Busy, Registry
from ..remote.docker import Docker
from . import images
from .container import main_port, spare_port
from .context import ROOT, ContextMissing, context_digest
from .deploy import STEPS, Deployment, Kind, StepFailed, undo_patiently

log = logging.getLogger(__name__)
State = Literal["installed", "outdated", "missing", "unmanaged", "unreachable", "local"]
LOCAL = ("the install manager builds and runs the speech server on a Spark; no Spark is "
         "configured for this host (SPARK2_HOST is empty, or a HOSTS entry has no ssh_host)")


class ImageView(BaseModel):
    image: str
    version: str | None
    context: str | None


class InstallSettings(BaseModel):
    base: str
    engine: str
    repository: str
    port: int
    spare_port: int
    memory_limit: str
    network: str
    gpus: str
    model_volume: str


class SpeechServerStatus(BaseModel):
    state: State
    detail: str
    container: str
    running: bool | None = None
    current: ImageView | None = None  # what the container runs
    previous: ImageView | None = None  # kept for rollback
    local_version: str = __version__
    local_context: str | None = None  # this spark-control's build context digest
    upgrade_available: bool = False
    running_job: str | None = None
    settings: InstallSettings | None = None


class SpeechServer:
    def __init__(self, settings: Settings, registry: Registry, http: httpx.AsyncClient,
                 speech: SpeechClient | None) -> None:
        self.settings, self.registry, self.http, self.speech = settings, registry, http, speech
        self.names = images.Names(settings.speech_server_image, settings.parakeet_container)
        self.jobs: dict[str, Job] = {}
        self.active: Job | None = None
        self.on_change: list[object] = []  # callables run after a job ends
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled: dict[str, str] = {}
        self._stopping = False  # shutting down: no waiting for an unreachable host

    # -- what is installed --------------------------------------------------------

    async def status(self) -> SpeechServerStatus:
        if not self.settings.remote or not isinstance(self.registry.docker, Docker):
            return SpeechServerStatus(state="local", detail=LOCAL, container=self.names.container)
        base = SpeechServerStatus(state="missing", detail="", container=self.names.container,
                                  running_job=self._running_id(), settings=self._settings_view())
        try:
            base.local_context = context_digest(self.settings.speech_server_context_dir or ROOT)
        except ContextMissing as exc:
            base.detail = str(exc)
        try:
            return await self._read_host(base, self.registry.docker)
        except RemoteError as exc:
            return base.model_copy(update={"state": "unreachable", "detail": exc.message})

    async def _read_host(self, view: SpeechServerStatus, docker: Docker) -> SpeechServerStatus:
        current = await images.inspect_container(docker, self.names.container)
        previous = await images.inspect_image(docker, self.names.previous)
        view.previous = _image_view(previous) if previous else None
        if current is None:
            view.detail = view.detail or (f"no {self.names.container} container on "
                                          f"{self.settings.spark2_host}: install it")
            return view
        view.running, view.current = current.running, _image_view(current)
        view.state, view.detail = _compare(current, view.local_context)
        view.upgrade_available = view.state in ("outdated", "unmanaged")
        return view

    def _settings_view(self) -> InstallSettings:
        s = self.settings
        return InstallSettings(base=s.speech_server_base, engine=s.speech_server_engine,
                               repository=s.speech_server_image, port=main_port(s),
                               spare_port=spare_port(s), memory_limit=s.parakeet_memory_limit,
                               network=s.speech_server_network or "published port",
                               gpus=s.speech_server_gpus, model_volume=s.speech_server_model_volume)

    # -- jobs ------------------------------------------------------------------------

    async def start(self, kind: Kind, no_cache: bool = False) -> Job:
        """Start an install, upgrade or rollback; Busy (409) when it cannot start now."""
        docker = self._docker()
        running = self._running_id()
        if running is not None:
            raise Busy(f"job {running} ({self.jobs[running].view.kind}) is still running")
        self.registry.ensure_free(self._service())
        await self._precheck(kind, docker)
        job = Job(kind, STEPS[kind])
        deployment = Deployment(job, kind, self.settings, docker, self.http, self.speech,
                                no_cache=no_cache)
        self.jobs[job.id] = self.active = job
        task = asyncio.create_task(self._run(job, deployment))
        self._tasks[job.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(job.id, None))
        return job

    async def _precheck(self, kind: Kind, docker: Docker) -> None:
        current = await images.inspect_container(docker, self.names.container)
        if kind == "install" and current is not None:
            raise Busy(f"{self.names.container} already exists on {self.settings.spark2_host}; "
                       "use upgrade to replace it")
        if kind != "install" and current is None:
            raise Busy(f"there is no {self.names.container} to {kind}; install it first")
        if kind == "rollback" and await images.inspect_image(docker, self.names.previous) is None:
            raise Busy(f"no previous image ({self.names.previous}) to roll back to")

    async def cancel(self, job_id: str) -> Job:
        job = self.jobs[job_id]
        task = self._tasks.get(job_id)
        if job.finished or task is None:
            raise Busy(f"job {job_id} has already ended ({job.view.status})")
        self._cancelled[job_id] = "cancelled by the user"
        task.cancel()
        return job

    async def stop(self) -> None:
        self._stopping = True
        for job_id, task in list(self._tasks.items()):
            self._cancelled[job_id] = "spark-control shut down"
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _run(self, job: Job, deployment: Deployment) -> None:
        """The job under the registry's claim; it ends after the claim is let go, whose
        refresh lets readers of /api/services see the new container at once."""
        ok, outcome = False, "internal error"
        try:
            async with self.registry.claim(self._service(), job.view.kind, "speech-server"):
                ok, outcome = await self._run_claimed(job, deployment)
        except Busy as exc:
            outcome = str(exc)
        except Exception as exc:  # a bug must still end the job, visibly
            log.exception("speech-server job %s crashed", job.id)
            outcome = f"internal error: {exc!r}"
        finally:
            for callback in self.on_change:
                callback()  # type: ignore[operator]
            await job.finish(ok, outcome)

    async def _run_claimed(self, job: Job, deployment: Deployment) -> tuple[bool, str]:
        try:
            outcome = await deployment.run()
        except StepFailed as exc:
            return False, await self._undo(deployment, f"{exc.step} failed: {exc}")
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            reason = self._cancelled.pop(job.id, "cancelled")
            await self._end_running_step(job, reason)
            return False, await self._undo(deployment, f"{reason} during {_running_step(job)}")
        log.info("speech-server job %s: %s", job.id, outcome)
        return True, outcome

    async def _undo(self, deployment: Deployment, why: str) -> str:
        patience = 0.0 if self._stopping else self.settings.speech_server_cleanup_retry_s
        left = await undo_patiently(deployment, patience)
        log.warning("speech-server job %s failed: %s; %s", deployment.job.id, why, left)
        return f"{why}. {left}"

    async def _end_running_step(self, job: Job, reason: str) -> None:
        for step in job.view.steps:
            if step.status == "running":
                await job.end(step.name, "failed", reason)

    # -- plumbing --------------------------------------------------------------------

    def _docker(self) -> Docker:
        if not self.settings.remote or not isinstance(self.registry.docker, Docker):
            raise NotConfigured(LOCAL)
        return self.registry.docker

    def _service(self) -> str:
        for name, rt in self.registry.runtime.items():
            if rt.spec.container == self.settings.parakeet_container:
                return name
        raise NotConfigured(f"no service uses the container {self.settings.parakeet_container}")

    def _running_id(self) -> str | None:
        return self.active.id if self.active and not self.active.finished else None


def _running_step(job: Job) -> str:
    failed = [s.name for s in job.view.steps if s.status == "failed"]
    return failed[-1] if failed else "the job"


def _image_view(found: images.Installed) -> ImageView:
    return ImageView(image=found.image, version=found.version, context=found.digest)


def _compare(current: images.Installed, local: str | None) -> tuple[State, str]:
    where = "running" if current.running else "stopped"
    if not current.managed:
        return "unmanaged", (f"{current.name} ({where}) runs {current.image}, not built by "
                             "spark-control: upgrading replaces it (it is kept for rollback)")
    if local is not None and current.digest != local:
        return "outdated", (f"{current.name} ({where}) runs context {(current.digest or '?')[:12]} "
                            f"(spark-control {current.version}); this spark-control has "
                            f"{local[:12]}: upgrade available")
    return "installed", (f"{current.name} ({where}) runs {current.image}, the context of "
                         "this spark-control")
