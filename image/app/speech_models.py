"""SpeechModelsManager: keeps the parakeet-asr container on the overlay we ship.

Drift: one `docker exec … sha256sum` per check, cached for a few seconds and shared
by every reader. Reapply: preflight → backup (inside the container) → copy (tar
stream) → verify (py_compile inside the container) → restart → wait for /health →
confirm hashes. It never leaves a broken container: a failed verify restores the
originals without a restart; health that never returns restores them, restarts and
waits again ("rolled back").
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
import time
from collections.abc import Awaitable, Callable

from pydantic import BaseModel

from .config import Settings
from .errors import NotConfigured, RemoteError
from .progress import Job
from .overlay import Manifest, OverallStatus, OverlayFile, overall, parse_sha256sum
from .poller import Poller
from .registry.probes import HealthResult, fetch_health
from .registry import Busy, Registry
from .registry.services import ContainerView, ServiceRuntime

log = logging.getLogger(__name__)
REAPPLY = ["preflight", "backup", "copy", "verify", "restart", "wait_health", "confirm"]
RESTART = ["preflight", "restart", "wait_health"]
BACKUP_DIR = ".spark-control-backup"
LOCAL = ("drift and reapply apply to the parakeet-asr container on a Spark; no Spark is "
         "configured for this host (SPARK2_HOST is empty, or a HOSTS entry has no ssh_host), "
         "so there is no container to compare or patch: "
         "the speech server in use runs its own copy of image/parakeet_patches")


class SpeechModelsStatus(BaseModel):
    status: OverallStatus
    detail: str
    files: list[OverlayFile]
    health: HealthResult | None
    models: list[str]
    container: ContainerView | None
    checked_at: float | None
    running_job: str | None


class StepFailed(Exception):
    pass


class SpeechModels:
    def __init__(self, settings: Settings, registry: Registry) -> None:
        self.settings = settings
        self.registry = registry
        self.manifest = Manifest(settings.overlay_source, settings.parakeet_app_dir)
        self.hashes: Poller[dict[str, str]] = Poller("overlay hashes", self._fetch_hashes,
                                                     interval=0)
        self.jobs: dict[str, Job] = {}
        self.active: Job | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- drift ---------------------------------------------------------------

    async def status(self) -> SpeechModelsStatus:
        if not self.settings.remote:
            return self._local_status()
        if self.registry.docker_poller.updated_at is None:
            await self.registry.docker_poller.refresh()  # joins the first poll in flight
        await self._fresh_hashes()
        rt = self._runtime()
        service = self.registry.status(rt.spec.name)
        files = self.manifest.compare(self.hashes.data or {})
        if self.hashes.error is not None:
            state, detail = "unreachable", self.hashes.error.message
        else:
            state = overall(files)
            detail = f"{sum(f.status == 'in_sync' for f in files)}/{len(files)} files in sync"
        return SpeechModelsStatus(
            status=state, detail=detail, files=files, health=service.health,
            models=service.models, container=service.container,
            checked_at=self.hashes.updated_at, running_job=self._running_id())

    def forget_hashes(self) -> None:
        """The container changed under us (an install or upgrade): read them afresh."""
        self.hashes.updated_at = None

    def _local_status(self) -> SpeechModelsStatus:
        service = self.registry.status(self._runtime().spec.name)
        return SpeechModelsStatus(
            status="local", detail=LOCAL, files=[], health=service.health,
            models=service.models, container=None, checked_at=None, running_job=None)

    async def _fresh_hashes(self) -> None:
        age = time.time() - (self.hashes.updated_at or 0)
        if age > self.settings.speech_models_cache_s:
            await self.hashes.refresh()

    async def _fetch_hashes(self) -> dict[str, str]:
        docker = self._docker()
        result = await docker.exec_quick(self._container(), ["sha256sum", "--",
                                                             *self.manifest.remote_paths])
        hashes = parse_sha256sum(result.stdout.decode("utf-8", "replace"))
        if not result.ok and "No such file" not in result.stderr:
            result.check()  # the container is not running, or sha256sum is missing
        return hashes

    # -- jobs --------------------------------------------------------------

    def start(self, kind: str) -> Job:
        """Start a reapply or restart job; raises Busy while another runs."""
        self.ensure_can_start()
        job = Job(kind, REAPPLY if kind == "reapply" else RESTART)
        self.jobs[job.id] = self.active = job
        task = asyncio.create_task(self._run(job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    def ensure_can_start(self) -> None:
        """NotConfigured without a Spark; Busy while a job or an action runs."""
        self._docker()
        running = self._running_id()
        if running is not None:
            raise Busy(f"job {running} ({self.jobs[running].view.kind}) is still running")
        self.registry.ensure_free(self._runtime().spec.name)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, job: Job) -> None:
        try:
            async with self.registry.claim(self._runtime().spec.name, "restart",
                                           "speech-models") as rt:
                await (self._reapply(job, rt) if job.view.kind == "reapply"
                       else self._restart_job(job, rt))
        except Busy as exc:
            await job.finish(False, str(exc))
        except Exception as exc:  # a bug must still end the job, visibly
            log.exception("speech-models job %s crashed", job.id)
            await job.finish(False, f"internal error: {exc!r}")
        finally:
            self.hashes.updated_at = None  # the next reader sees fresh hashes

    async def _restart_job(self, job: Job, rt: ServiceRuntime) -> None:
        try:
            await self._step(job, "preflight", self._preflight)
            await self._step(job, "restart", lambda: self._restart(rt, "restart requested"))
            await self._step(job, "wait_health", self._wait_health)
        except StepFailed as exc:
            await job.finish(False, str(exc))
            return
        await job.finish(True, "restarted; models loaded")

    async def _reapply(self, job: Job, rt: ServiceRuntime) -> None:
        try:
            existing = await self._step(job, "preflight", self._preflight)
            backup = f"{self.settings.parakeet_app_dir}/{BACKUP_DIR}/{job.id}"
            originals = await self._step(job, "backup", lambda: self._backup(backup, existing))
            await self._step(job, "copy", self._copy)
        except StepFailed as exc:
            await job.finish(False, str(exc))
            return
        try:
            await self._step(job, "verify", self._verify)
        except StepFailed as exc:
            try:
                await self._restore(originals)
                await self._remove_added(originals)
            except (RemoteError, StepFailed) as undo:
                await job.finish(False, f"{exc}; restoring the originals failed too: {undo}")
                return
            await job.finish(False, f"{exc}; the original files were restored and the "
                                    "container was not restarted")
            return
        await self._apply_and_confirm(job, rt, originals)

    async def _apply_and_confirm(self, job: Job, rt: ServiceRuntime,
                                 originals: dict[str, bytes]) -> None:
        try:
            await self._step(job, "restart", lambda: self._restart(rt, "overlay reapplied"))
            await self._step(job, "wait_health", self._wait_health)
        except StepFailed as exc:
            await self._roll_back(job, rt, originals, str(exc))
            return
        try:
            await self._step(job, "confirm", self._confirm)
        except StepFailed as exc:
            await job.finish(False, str(exc))
            return
        await job.finish(True, "overlay applied; the models loaded and every file is in sync")

    async def _roll_back(self, job: Job, rt: ServiceRuntime, originals: dict[str, bytes],
                         reason: str) -> None:
        log.warning("reapply %s: rolling back: %s", job.id, reason)
        try:
            await self._restore(originals)  # docker cp: works while the container is down
            await self._restart(rt, f"rollback of reapply {job.id}")
            await self._wait_health()
            await self._remove_added(originals)
        except (RemoteError, StepFailed) as exc:
            await job.finish(False, f"rolled back after: {reason}; but the old files did not "
                                    f"come back healthy either: {exc}", rolled_back=True)
            return
        await job.finish(False, f"rolled back: {reason}; the container runs the previous "
                                "files and is healthy", rolled_back=True)

    async def _step(self, job: Job, name: str, work: Callable[[], Awaitable[object]]) -> object:
        await job.begin(name)
        try:
            result = await work()
        except (RemoteError, StepFailed) as exc:
            message = exc.message if isinstance(exc, RemoteError) else str(exc)
            await job.end(name, "failed", message)
            raise StepFailed(f"{name} failed: {message}") from None
        detail = result if isinstance(result, str) else _describe(result)
        await job.end(name, "ok", detail)
        return result

    # -- the steps ---------------------------------------------------------

    async def _preflight(self) -> list[str]:
        """The container runs; returns which overlay paths exist in it now."""
        info = await self._docker().inspect(self._container())
        if not info.running:
            raise StepFailed(f"container {self._container()} is {info.status}; start it first")
        return sorted(await self._current_hashes())

    async def _backup(self, backup: str, existing: list[str]) -> dict[str, bytes]:
        """Save the current files inside the container (they outlive us) and read them
        back, so a restore works even when the container will not start."""
        await self._exec(["mkdir", "-p", backup])
        if not existing:
            return {}
        await self._exec(["cp", "-p", "--", *existing, backup + "/"])
        saved = await self._docker().copy_out(self._container(), backup)
        by_name = {posixpath.basename(k): v for k, v in saved.items()}
        return {p: by_name[posixpath.basename(p)] for p in existing}

    async def _copy(self) -> str:
        files = self.manifest.files()
        await self._docker().copy_in(self._container(), "/", files)
        return f"{len(files)} files copied"

    async def _verify(self) -> str:
        sources = [p for p in self.manifest.remote_paths if p.endswith(".py")]
        result = await self._docker().exec(
            self._container(), [self.settings.parakeet_python, "-m", "py_compile", *sources])
        if not result.ok:
            raise StepFailed(_last_lines(result.stderr or result.stdout.decode()))
        return f"{len(sources)} files compile"

    async def _restart(self, rt: ServiceRuntime, reason: str) -> str:
        await self.registry.perform(rt, "restart", "speech-models", reason)
        return "restarted"

    async def _wait_health(self) -> str:
        deadline = time.monotonic() + self.settings.reapply_health_timeout_s
        last = "no answer yet"
        while time.monotonic() < deadline:
            health = await fetch_health(self.registry.http, self._runtime().spec.url,
                                        self.settings.health_timeout_s)
            if _loaded(health):
                # Readers of /api/services must see it healthy before the job ends.
                await self.registry.health_pollers[self._runtime().spec.name].refresh(fresh=True)
                return f"models loaded ({', '.join(health.models) or 'no names given'})"
            last = await self._why_unhealthy(health)
            await asyncio.sleep(1.0)
        raise StepFailed(f"/health did not report the models loaded within "
                         f"{self.settings.reapply_health_timeout_s:g} s: {last}")

    async def _why_unhealthy(self, health: HealthResult) -> str:
        info = await self._docker().inspect(self._container())
        if info.running:
            return health.detail
        logs = await self._docker().logs(self._container())
        raise StepFailed(f"the container exited (code {info.exit_code}): {_last_lines(logs)}")

    async def _confirm(self) -> str:
        files = self.manifest.compare(await self._current_hashes())
        wrong = [f.name for f in files if f.status != "in_sync"]
        if wrong:
            raise StepFailed(f"still not in sync after the copy: {', '.join(wrong)}")
        return f"{len(files)} files in sync"

    async def _current_hashes(self) -> dict[str, str]:
        """Container path -> sha256 read now, not from the cache."""
        await self.hashes.refresh()
        if self.hashes.error is not None:
            raise self.hashes.error
        return self.hashes.data or {}

    async def _restore(self, originals: dict[str, bytes]) -> None:
        if originals:
            await self._docker().copy_in(self._container(), "/", originals)

    async def _remove_added(self, originals: dict[str, bytes]) -> None:
        """Delete overlay files that did not exist before (needs a running container)."""
        added = [p for p in self.manifest.remote_paths if p not in originals]
        if added:
            await self._exec(["rm", "-f", "--", *added])

    # -- plumbing ------------------------------------------------------------

    async def _exec(self, argv: list[str]) -> None:
        result = await self._docker().exec(self._container(), argv)
        if not result.ok:
            raise StepFailed(f"`{' '.join(argv[:2])} …` failed: {_last_lines(result.stderr)}")

    def _docker(self):  # type: ignore[no-untyped-def]
        if not self.settings.remote or self.registry.docker is None:
            raise NotConfigured(LOCAL)
        return self.registry.docker

    def _runtime(self) -> ServiceRuntime:
        for rt in self.registry.runtime.values():
            if rt.spec.container == self.settings.parakeet_container or (
                    not self.settings.remote and rt.spec.kind == "asr"):
                return rt
        raise NotConfigured(f"no service uses the container {self.settings.parakeet_container}")

    def _container(self) -> str:
        return self.settings.parakeet_container

    def _running_id(self) -> str | None:
        return self.active.id if self.active and not self.active.finished else None


def _loaded(health: HealthResult) -> bool:
    body = health.body or {}
    return health.ok and body.get("asr_loaded", True) and body.get("diarizer_loaded", True)


def _describe(result: object) -> str:
    if isinstance(result, list):
        return f"{len(result)} overlay files present"
    if isinstance(result, dict):
        return f"{len(result)} files saved in the container and read back"
    return ""


def _last_lines(text: str, count: int = 6) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-count:])[-800:] or "(no output)"
