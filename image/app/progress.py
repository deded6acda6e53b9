"""Jobs made of named steps, whose changes can be followed live.

Every change is appended to the job's event list; a follower first receives the
events that already happened, then new ones as they come, and the stream ends
with the job's final `done` or `failed` event. A job may also keep a log (a build's
output): each line is a `log` event carrying the line alone, not a snapshot of the
job, and only the last MAX_LOG_LINES are kept (a follower that joins late is told how
many it missed).
"""

from __future__ import annotations

import asyncio
import bisect
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse

MAX_LOG_LINES = 20_000
MAX_LINE = 2_000  # characters; pip's progress bars can make one "line" of megabytes
StepStatus = Literal["pending", "running", "ok", "failed", "skipped"]
JobStatus = Literal["running", "done", "failed"]


class Step(BaseModel):
    name: str
    status: StepStatus = "pending"
    detail: str = ""
    started_at: float | None = None
    duration_s: float | None = None


class JobView(BaseModel):
    id: str
    kind: str
    status: JobStatus
    outcome: str = ""  # the final sentence: what happened, and why if it failed
    rolled_back: bool = False
    created_at: float
    finished_at: float | None = None
    steps: list[Step]
    log_lines: int = 0  # lines the job has logged so far


class Event(BaseModel):
    seq: int
    event: Literal["step", "log", "done", "failed"]
    job: JobView | None = None  # a snapshot, for every event but `log`
    line: str | None = None  # for `log`


class Job:
    def __init__(self, kind: str, steps: list[str]) -> None:
        self.view = JobView(id=uuid.uuid4().hex[:12], kind=kind, status="running",
                            created_at=time.time(), steps=[Step(name=s) for s in steps])
        self.events: list[Event] = []
        self._dropped = 0  # log events dropped from the front of `events`
        self._log_kept = 0
        self._changed = asyncio.Condition()

    @property
    def id(self) -> str:
        return self.view.id

    @property
    def finished(self) -> bool:
        return self.view.status != "running"

    def step(self, name: str) -> Step:
        return next(s for s in self.view.steps if s.name == name)

    async def begin(self, name: str, detail: str = "") -> None:
        step = self.step(name)
        step.status, step.detail, step.started_at = "running", detail, time.time()
        await self._emit("step")

    async def note(self, name: str, detail: str) -> None:
        """A running step's detail changes (what it is doing now)."""
        self.step(name).detail = detail
        await self._emit("step")

    async def end(self, name: str, status: StepStatus, detail: str = "") -> None:
        step = self.step(name)
        step.status, step.detail = status, detail or step.detail
        if step.started_at is not None:
            step.duration_s = round(time.time() - step.started_at, 3)
        await self._emit("step")

    async def finish(self, ok: bool, outcome: str, rolled_back: bool = False) -> None:
        for step in self.view.steps:
            if step.status == "pending":
                step.status = "skipped"
        self.view.status = "done" if ok else "failed"
        self.view.outcome, self.view.rolled_back = outcome, rolled_back
        self.view.finished_at = time.time()
        await self._emit("done" if ok else "failed")

    async def log(self, line: str) -> None:
        line = line.rstrip("\r\n")
        if len(line) > MAX_LINE:
            line = line[:MAX_LINE] + " [...]"
        self.view.log_lines += 1
        async with self._changed:
            self.events.append(Event(seq=self._dropped + len(self.events), event="log",
                                     line=line))
            self._log_kept += 1
            if self._log_kept > MAX_LOG_LINES:
                self._drop_oldest_log()
            self._changed.notify_all()

    def log_tail(self, count: int = 40) -> list[str]:
        lines: list[str] = []
        for event in reversed(self.events):
            if len(lines) == count:
                break
            if event.event == "log":
                lines.append(event.line or "")
        return lines[::-1]

    def _drop_oldest_log(self) -> None:
        index = next(i for i, e in enumerate(self.events) if e.event == "log")
        del self.events[index]
        self._dropped += 1
        self._log_kept -= 1

    async def follow(self) -> AsyncIterator[Event]:
        """Every event still kept, then new ones until the final one."""
        sent = 0  # the next seq to send
        while True:
            async with self._changed:
                await self._changed.wait_for(
                    lambda: self._dropped + len(self.events) > sent)
                batch = self.events[bisect.bisect_left(self.events, sent,
                                                       key=lambda e: e.seq):]
                head = self._dropped + len(self.events)
            for event in batch:
                yield event
                if event.event in ("done", "failed"):
                    return
            sent = head

    async def _emit(self, kind: Any) -> None:
        async with self._changed:
            snapshot = self.view.model_copy(deep=True)
            self.events.append(Event(seq=self._dropped + len(self.events), event=kind,
                                     job=snapshot))
            self._changed.notify_all()


def event_stream(job: Job) -> EventSourceResponse:
    """The job as server-sent events: every event still kept, then live ones, until
    `done` or `failed`."""
    async def events() -> AsyncIterator[dict[str, str]]:
        async for event in job.follow():
            yield sse_event(event)

    return EventSourceResponse(events())


def sse_event(event: Event) -> dict[str, str]:
    """One event as sse-starlette sends it: a log line alone, else the job's snapshot."""
    data = (event.model_dump_json(include={"seq", "line"}) if event.event == "log"
            else (event.job or JobView.model_construct()).model_dump_json())
    return {"event": event.event, "id": str(event.seq), "data": data}
