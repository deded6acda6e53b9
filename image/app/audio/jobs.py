"""Audio jobs: transcribe-with-speakers in the background, followed live, kept on disk.

A job owns its work directory (the spooled upload and the chunks cut from it) and
removes it however it ends. At most JOBS_RUNNING jobs run at once; the rest wait
as `queued`, and past JOBS_QUEUE_MAX waiting jobs a new one is refused rather than
accepted and left to rot. Every change is written to the JobStore, so a result
survives a restart and a job cut by one is marked failed with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Literal

from fastapi import HTTPException
from pydantic import BaseModel

from ..errors import RemoteError
from ..metrics import JOB_SECONDS, JOBS
from .jobstore import JobStore
from .pipeline import Placed, Progress, Runner, SpeakersResult, Transcribed, Voices

log = logging.getLogger(__name__)

Status = Literal["queued", "running", "done", "failed", "cancelled"]
FINAL = ("done", "failed", "cancelled")
RESTARTED = "spark-control restarted while this job was {status}; submit the file again"
STOPPED = "spark-control stopped while this job was running; submit the file again"


class AudioJob(BaseModel):
    id: str
    filename: str
    status: Status = "queued"
    stage: str = "queued"  # normalizing, transcribing, merging, then the final status
    chunk: int = 0  # chunks finished, of `chunks`
    chunks: int = 0
    percent: float = 0.0
    error: str | None = None
    duration: float  # seconds of audio
    match_speakers: bool = True  # name known speakers in the result
    hosts: list[ChunkPlace] = []  # the speech host of each finished chunk
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None  # when the finished job and its result are deleted


class ChunkPlace(BaseModel):
    """Where one chunk (or the whole recording, chunk 0) ran."""

    chunk: int  # 0-based, in the order of the recording
    host: str
    failed_on: list[str] = []  # hosts it failed on first, and was moved from


class JobNotFound(HTTPException):
    def __init__(self, message: str) -> None:
        super().__init__(404, message)


class JobNotDone(HTTPException):
    def __init__(self, message: str) -> None:
        super().__init__(409, message)


class QueueFull(HTTPException):
    def __init__(self, message: str) -> None:
        super().__init__(429, message, headers={"Retry-After": "60"})


class _Live:
    """A job of this process: its task and a condition its followers wait on."""

    def __init__(self, job: AudioJob) -> None:
        self.job = job
        self.version = 0
        self.changed = asyncio.Condition()
        self.task: asyncio.Task[None] | None = None
        self.cancelled_because = ""

    async def cancel(self, reason: str) -> None:
        if self.task and not self.task.done():
            self.cancelled_because = reason
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class AudioJobs:
    def __init__(self, store: JobStore, runner: Runner, *, running: int, queue_max: int,
                 retention_s: float, on_fault: Callable[[RemoteError], None]) -> None:
        self.store = store
        self.runner = runner
        self.queue_max = queue_max
        self.retention_s = retention_s
        self.on_fault = on_fault
        self._slots = asyncio.Semaphore(running)
        self._live: dict[str, _Live] = {}
        self._janitor: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Mark jobs cut by the last shutdown as failed, then expire old ones hourly."""
        for state in await self.store.unfinished():
            job = AudioJob.model_validate_json(state)
            self._finish(job, "failed", RESTARTED.format(status=job.status))
            await self._save(job)
            log.warning("audio job %s was cut by a restart; marked failed", job.id)
        self._janitor = asyncio.create_task(self._expire_forever())

    async def stop(self) -> None:
        if self._janitor:
            self._janitor.cancel()
        for live in list(self._live.values()):
            await live.cancel(STOPPED)

    async def _expire_forever(self) -> None:
        while True:
            gone = await self.store.expire(time.time() - self.retention_s)
            if gone:
                log.info("expired %d audio jobs past JOB_RETENTION_H", len(gone))
            await asyncio.sleep(min(3600.0, self.retention_s / 4))

    # -- the API ---------------------------------------------------------------

    def new_id(self) -> str:
        return uuid.uuid4().hex[:16]

    async def submit(self, job_id: str, filename: str, work: Path, source: Path,
                     duration: float, match_speakers: bool = True) -> AudioJob:
        """Accept a spooled upload; the job now owns `work` and removes it at the end."""
        waiting = sum(1 for live in self._live.values() if live.job.status == "queued")
        if waiting >= self.queue_max:
            raise QueueFull(f"{waiting} jobs are already waiting (JOBS_QUEUE_MAX); "
                            "try again when some have finished")
        job = AudioJob(id=job_id, filename=filename, duration=round(duration, 3),
                       match_speakers=match_speakers, created_at=time.time())
        await self._save(job)
        live = self._live[job_id] = _Live(job)
        live.task = asyncio.create_task(self._run(live, work, source))
        return job.model_copy()

    async def get(self, job_id: str) -> AudioJob:
        live = self._live.get(job_id)
        if live is not None:
            return live.job.model_copy()
        state = await self.store.state(job_id)
        if state is None:
            raise JobNotFound(f"no audio job {job_id!r} (unknown, deleted or expired)")
        return AudioJob.model_validate_json(state)

    async def recent(self, limit: int = 50) -> list[AudioJob]:
        return [AudioJob.model_validate_json(s) for s in await self.store.recent(limit)]

    async def result(self, job_id: str) -> Transcribed:
        """The finished job's result (speakers as labels) and its voiceprints."""
        job = await self.get(job_id)
        if job.status != "done":
            raise JobNotDone(f"job {job_id} is {job.status}"
                             + (f": {job.error}" if job.error else "; its result is not "
                                "ready yet"))
        stored = await self.store.result(job_id)
        if stored is None or stored[0] is None:  # deleted between the two reads
            raise JobNotFound(f"no audio job {job_id!r} (deleted)")
        result, voices = stored
        return Transcribed(result=SpeakersResult.model_validate_json(result),
                           voices=Voices.model_validate_json(voices) if voices else Voices())

    async def delete(self, job_id: str) -> None:
        """Cancel the job if it is still going, and forget it and its result."""
        live = self._live.get(job_id)
        if live is None:
            await self.get(job_id)  # JobNotFound for an unknown id
        else:
            await live.cancel("deleted by a client")
        await self.store.delete(job_id)

    async def follow(self, job_id: str) -> AsyncIterator[AudioJob]:
        """The job's current state, then each change, ending with its final state."""
        live = self._live.get(job_id)
        if live is None:
            yield await self.get(job_id)
            return
        seen = -1
        while True:
            async with live.changed:
                await live.changed.wait_for(lambda: live.version != seen)
                seen, job = live.version, live.job.model_copy()
            yield job
            if job.status in FINAL:
                return

    # -- running a job -----------------------------------------------------------

    async def _run(self, live: _Live, work: Path, source: Path) -> None:
        job = live.job
        try:
            async with self._slots:
                job.status, job.started_at = "running", time.time()
                await self._changed(live)
                done = await self.runner(source, work, job.duration, self._progress(live),
                                         self._placed(live))
            await self.store.save_result(job.id, done.result.model_dump_json(),
                                         done.voices.model_dump_json())
            self._finish(job, "done", None)
        except asyncio.CancelledError:
            reason = live.cancelled_because or STOPPED
            self._finish(job, "failed" if reason == STOPPED else "cancelled", reason)
        except Exception as exc:  # a job never dies silently: every failure is recorded
            if isinstance(exc, RemoteError):
                self.on_fault(exc)
            self._finish(job, "failed", _reason(exc))
        finally:
            shutil.rmtree(work, ignore_errors=True)
            await asyncio.shield(self._changed(live))
            self._live.pop(job.id, None)

    def _progress(self, live: _Live) -> Progress:
        async def progress(stage: str, done: int, total: int) -> None:
            job = live.job
            job.stage, job.chunk, job.chunks = stage, done, total
            job.percent = {"normalizing": 2.0, "merging": 97.0}.get(
                stage, round(5 + 90 * done / max(total, 1), 1))
            await self._changed(live)
        return progress

    def _placed(self, live: _Live) -> Placed:
        async def placed(index: int, host: str, failed_on: list[str]) -> None:
            live.job.hosts = sorted([*live.job.hosts, ChunkPlace(
                chunk=index, host=host, failed_on=failed_on)], key=lambda p: p.chunk)
            await self._changed(live)
        return placed

    def _finish(self, job: AudioJob, status: Status, error: str | None) -> None:
        job.status, job.stage, job.error = status, status, error
        job.finished_at = time.time()
        job.expires_at = job.finished_at + self.retention_s
        JOBS.labels(status).inc()
        JOB_SECONDS.labels(status).observe(job.finished_at - job.created_at)
        if status == "done":
            job.percent = 100.0
        log.info("audio job %s %s%s", job.id, status, f": {error}" if error else "")

    async def _changed(self, live: _Live) -> None:
        await self._save(live.job)
        async with live.changed:
            live.version += 1
            live.changed.notify_all()

    async def _save(self, job: AudioJob) -> None:
        await self.store.save(job.id, job.model_dump_json(), job.status, job.created_at,
                              job.finished_at)


def _reason(exc: Exception) -> str:
    if isinstance(exc, RemoteError):
        return exc.message
    if isinstance(exc, HTTPException):  # ffmpeg could not decode a span
        return str(exc.detail)
    log.error("audio job failed", exc_info=exc)
    return f"internal error ({type(exc).__name__}: {exc}); see the spark-control log"
