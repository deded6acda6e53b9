"""Watchdog decisions with a scripted docker (fault injection; the real thing is in sim/)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import respx

from app.config import Settings
from app.remote.docker import ContainerInfo
from app.registry import DockerSnapshot, Registry
from app.registry.watchdog import Watchdog

URL = "http://asr:8000"


class ScriptedDocker:
    def __init__(self, status: str = "running", oom: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.info = ContainerInfo(name="parakeet-asr", status=status, running=status == "running",
                                  oom_killed=oom, exit_code=137 if oom else 0, started_at=None,
                                  finished_at=None, restart_count=0, health=None,
                                  memory_limit=0, memory_swap=0, pid=1)

    async def inspect_many(self, names):
        return {n: self.info if n == "parakeet-asr" else None for n in names}

    async def memory_usage(self, names):
        return {}

    async def restart(self, name, grace_s=10):
        self.calls.append(("restart", name))
        self.info = ContainerInfo(**{**self.info.__dict__, "status": "running", "running": True,
                                     "oom_killed": False})

    async def update_memory(self, name, limit):
        self.calls.append(("update_memory", name, limit))
        self.info = ContainerInfo(**{**self.info.__dict__, "memory_limit": limit,
                                     "memory_swap": limit})


def setup(docker: ScriptedDocker, **settings) -> tuple[Registry, Watchdog]:
    s = Settings(_env_file=None, spark2_host="spark", parakeet_url=URL,
                 services=[{"name": "parakeet-asr", "container": "parakeet-asr", "url": URL,
                            "kind": "asr", "memory_limit": "1g"}], **settings)
    registry = Registry(s, docker, httpx.AsyncClient())  # type: ignore[arg-type]
    return registry, Watchdog(registry)


@respx.mock
def test_failed_deep_check_restarts_until_the_budget_is_spent(caplog):
    respx.post(f"{URL}/v1/audio/transcriptions").respond(500, text="CUDA error")
    respx.get(f"{URL}/health").respond(json={"status": "ok"})
    docker = ScriptedDocker()
    registry, watchdog = setup(docker, auto_restart_max=2)

    async def scenario():
        await registry.docker_poller.refresh()
        return [await watchdog.check("parakeet-asr") for _ in range(3)]

    caplog.set_level(logging.WARNING)
    outcomes = asyncio.run(scenario())
    assert [r.verdict for r, _ in outcomes] == ["failed"] * 3
    assert [rec is not None for _, rec in outcomes] == [True, True, False]
    assert docker.calls.count(("restart", "parakeet-asr")) == 2
    assert ("update_memory", "parakeet-asr", 1024**3) in docker.calls
    assert "NOT restarting" in caplog.text
    status = registry.status("parakeet-asr")
    assert status.auto_restarts_in_window == 2
    assert [h.by for h in status.history] == ["watchdog", "watchdog"]


@respx.mock
def test_rejected_deep_check_does_not_restart():
    respx.post(f"{URL}/v1/audio/transcriptions").respond(404)
    respx.get(f"{URL}/health").respond(json={"status": "ok", "work": {"calls": 0}})
    docker = ScriptedDocker()
    registry, watchdog = setup(docker)

    async def scenario():
        await registry.docker_poller.refresh()
        return await watchdog.check("parakeet-asr")

    result, record = asyncio.run(scenario())
    assert result.verdict == "rejected" and record is None
    assert ("restart", "parakeet-asr") not in docker.calls


@respx.mock
def test_oom_killed_container_is_restarted_once_per_kill():
    respx.get(f"{URL}/health").respond(json={"status": "ok"})
    docker = ScriptedDocker(status="exited", oom=True)
    registry, watchdog = setup(docker)

    async def scenario():
        snapshot = DockerSnapshot({"parakeet-asr": docker.info}, {})
        await registry.docker_poller.refresh()  # listeners see the OOM kill
        await watchdog._on_snapshot(snapshot)  # a second look before the restart ran
        await asyncio.sleep(0.05)
        await watchdog.stop()

    asyncio.run(scenario())
    assert docker.calls.count(("restart", "parakeet-asr")) == 1
    record = registry.status("parakeet-asr").history[-1]
    assert "OOM" in record.reason and record.outcome == "ok"


@respx.mock
def test_a_service_the_user_stopped_is_left_alone():
    docker = ScriptedDocker(status="exited", oom=True)
    registry, watchdog = setup(docker)
    registry.get("parakeet-asr").desired_running = False

    async def scenario():
        await registry.docker_poller.refresh()
        await asyncio.sleep(0.05)
        await watchdog.stop()

    asyncio.run(scenario())
    assert ("restart", "parakeet-asr") not in docker.calls
