from __future__ import annotations

import time

import pytest

from app.remote.docker import ContainerInfo
from app.errors import ContainerNotFound, HostKeyRejected, HostUnreachable
from app.registry.probes import HealthResult
from app.registry.services import ActionView, Observed, derive_state

NOW = time.time()
LONG_AGO = "2026-01-01T00:00:00.000000001Z"


def info(status="running", oom=False, started=LONG_AGO) -> ContainerInfo:
    return ContainerInfo(name="c", status=status, running=status == "running", oom_killed=oom,
                         exit_code=137 if oom else 0, started_at=started, finished_at=None,
                         restart_count=0, health=None, memory_limit=0, memory_swap=0, pid=1)


OK = HealthResult(ok=True, detail="healthy")
DOWN = HealthResult(ok=False, detail="cannot reach http://x/health: refused")
JUST_NOW = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime(NOW - 5))


@pytest.mark.parametrize(("seen", "state", "words"), [
    (Observed(None, None, None, configured=False), "unknown", "not checked yet"),
    (Observed(None, None, OK, configured=False), "healthy", "reached by URL only"),
    (Observed(None, None, DOWN, configured=False), "unhealthy", "refused"),
    (Observed(None, HostUnreachable("cannot reach SSH"), OK), "unreachable", "cannot reach"),
    (Observed(None, HostKeyRejected("host key changed"), OK), "unreachable", "host key"),
    (Observed(None, ContainerNotFound(["d"], 1, "", "c"), None), "missing", "does not exist"),
    (Observed(None, None, None), "unknown", "first poll"),
    (Observed(info("exited", oom=True), None, DOWN), "oom_killed", "memory limit"),
    (Observed(info("exited"), None, DOWN), "stopped", "exit code 0"),
    (Observed(info("running", oom=True), None, OK), "healthy", "/health answers ok"),
    (Observed(info(), None, DOWN), "unhealthy", "refused"),
    (Observed(info(started=JUST_NOW), None, DOWN), "starting", "loading"),
    (Observed(info("restarting"), None, DOWN), "restarting", "docker"),
])
def test_state_labels(seen, state, words):
    got, detail = derive_state(seen, None, grace_s=60, now=NOW)
    assert got == state
    assert words in detail


def test_an_action_in_progress_shows_as_restarting():
    action = ActionView(action="restart", by="watchdog", started_at=NOW)
    assert derive_state(Observed(info(), None, OK), action, 60, NOW)[0] == "restarting"
