"""What the API and the dashboard show of the pool: each member's state and load."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

if TYPE_CHECKING:
    from .dispatch import SpeechPool
    from .members import Member

MemberState = Literal["active", "drained", "down", "refused", "none"]


class MemberView(BaseModel):
    name: str
    address: str  # the SSH host, or the URL of a member known by its URL only
    managed: bool  # SSH + Docker; false: an external endpoint, health and work only
    state: MemberState  # active: takes work; none: no speech server configured there
    detail: str  # why it takes no work, in words
    drained: bool
    drained_by: str | None  # "by the user", or what it is drained for ("for its restart (...)")
    outstanding_s: float  # seconds of audio sent to it and not answered yet
    in_flight: int
    concurrency: int
    served: int  # units of work it answered since spark-control started
    failed: int  # units that failed there (and were moved)
    last_error: str | None
    embedding_model: str | None


class PoolView(BaseModel):
    members: list[MemberView]
    embedding_model: str | None  # the model every member taking work must use
    outstanding_s: float
    taking_work: int  # members in state active


def member_view(pool: "SpeechPool", member: "Member") -> MemberView:
    load = pool.load[member.name]
    state, detail = _state(pool, member)
    return MemberView(
        name=member.name, address=member.address, managed=member.managed, state=state,
        detail=detail, drained=load.drained_by is not None, drained_by=load.drained_by,
        outstanding_s=round(load.outstanding_s, 1), in_flight=load.in_flight,
        concurrency=member.concurrency, served=load.served, failed=load.failed,
        last_error=load.last_error, embedding_model=pool.model_of(member))


def _state(pool: "SpeechPool", member: "Member") -> tuple[MemberState, str]:
    load = pool.load[member.name]
    if member.client is None:
        return "none", "no speech server (parakeet_url) is configured on this host"
    if load.drained_by is not None:
        return "drained", (f"drained {load.drained_by}: no new work"
                           + (f", {load.in_flight} unit(s) finishing" if load.in_flight else ""))
    refusal = pool.refusal(member)
    if refusal is not None:
        return "refused", refusal
    if not pool.ready(member):
        ssh = pool.unreachable(member)
        if ssh is not None:
            return "down", f"not reachable over SSH ({ssh}): it could not be watched or restarted"
        health = member.asr_health()
        if health is not None and health.ok:
            return "down", f"failed work ({load.last_error}); out until its /health answers"
        return "down", health.detail if health else "not polled yet"
    return "active", "takes work"
