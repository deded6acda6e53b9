"""Jobs made of named steps, whose changes can be followed live.

Every change is appended to the job's event list; a follower first receives the
events that already happened, then new ones as they come, and the stream ends
with the job's final `done` or `failed` event.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel

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


class Event(BaseModel):
    seq: int
    event: Literal["step", "done", "failed"]
    job: JobView


class Job:
    def __init__(self, kind: str, steps: list[str]) -> None:
        self.view = JobView(id=uuid.uuid4().hex[:12], kind=kind, status="running",
                            created_at=time.time(), steps=[Step(name=s) for s in steps])
        self.events: list[Event] = []
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

    async def follow(self) -> AsyncIterator[Event]:
        """Every event so far, then new ones until the final one."""
        sent = 0
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.events) > sent)
                batch = self.events[sent:]
            for event in batch:
                yield event
                if event.event != "step":
                    return
            sent += len(batch)

    async def _emit(self, kind: Any) -> None:
        async with self._changed:
            snapshot = self.view.model_copy(deep=True)
            self.events.append(Event(seq=len(self.events), event=kind, job=snapshot))
            self._changed.notify_all()
