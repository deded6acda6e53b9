"""Reapply the overlay on every managed host, one host at a time.

One job, one step per host. Each host's own reapply (speech_models.py) runs in turn,
and drains that host first (the registry's guard), so the others keep serving: a
rolling update. The step shows the host job's running step as it goes; the first host
that fails (its own job rolls it back) stops the roll, and the hosts after it are
skipped, so a bad overlay reaches one host only.
"""

from __future__ import annotations

import asyncio
import logging

from ..errors import NotConfigured
from ..progress import Job
from ..registry import Busy
from .dispatch import SpeechPool
from .members import Member

log = logging.getLogger(__name__)


class RollingReapply:
    def __init__(self, pool: SpeechPool) -> None:
        self.pool = pool
        self.jobs: dict[str, Job] = {}
        self.active: Job | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> Job:
        """Busy (409) when a roll or any host's own job or action is running."""
        hosts = [m for m in self.pool.members.values() if m.managed]
        if not hosts:
            raise NotConfigured("no speech host is managed over SSH (SPARK2_HOST or HOSTS "
                                "entries with ssh_host): there is no container to patch")
        if self.active is not None and not self.active.finished:
            raise Busy(f"reapply on every host is already running (job {self.active.id})")
        for member in hosts:  # refuse now, not halfway through the roll
            member.speech_models.ensure_can_start()
        job = self.active = Job("reapply-all", [m.name for m in hosts])
        self.jobs[job.id] = job
        task = asyncio.create_task(self._run(job, hosts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, job: Job, hosts: list[Member]) -> None:
        done: list[str] = []
        try:
            for member in hosts:
                if not await self._one(job, member):
                    await job.finish(False, f"stopped at {member.name}: "
                                            f"{job.step(member.name).detail}; "
                                            + _reapplied(done))
                    return
                done.append(member.name)
            await job.finish(True, f"reapplied on {', '.join(done)}, one host at a time")
        except Exception as exc:  # a bug must still end the job, visibly
            log.exception("reapply-all job %s crashed", job.id)
            await job.finish(False, f"internal error: {exc!r}")

    async def _one(self, job: Job, member: Member) -> bool:
        await job.begin(member.name, "draining")
        try:
            inner = member.speech_models.start("reapply")
        except Busy as exc:
            await job.end(member.name, "failed", str(exc))
            return False
        async for event in inner.follow():
            running = [s.name for s in (event.job.steps if event.job else []) if
                       s.status == "running"]
            if running:
                await job.note(member.name, f"job {inner.id}: {running[0]}")
        ok = inner.view.status == "done"
        await job.end(member.name, "ok" if ok else "failed", inner.view.outcome)
        return ok


def _reapplied(done: list[str]) -> str:
    return (f"already reapplied on {', '.join(done)}" if done
            else "no host was changed for good (its own job rolled it back)")
