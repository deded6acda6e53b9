from __future__ import annotations

import asyncio
import io
import json
import tarfile

import pytest

from app.remote.docker import ContainerInfo, Docker, parse_size, tar_of
from app.errors import CommandFailed, ContainerNotFound
from app.remote.ssh import CommandResult


def inspect_json(name: str, status: str = "running", oom: bool = False, **host) -> dict:
    return {"Name": f"/{name}", "RestartCount": 2,
            "State": {"Status": status, "Running": status == "running", "OOMKilled": oom,
                      "ExitCode": 137 if oom else 0, "Pid": 42,
                      "StartedAt": "2026-11-24T09:00:00.123456789Z",
                      "FinishedAt": "0001-01-01T00:00:00Z"},
            "HostConfig": {"Memory": host.get("memory", 0), "MemorySwap": host.get("swap", 0)}}


class FakeSSH:
    """Answers docker commands from a script; records each argv (unit tests only)."""

    def __init__(self, *results: CommandResult) -> None:
        self.results = list(results)
        self.calls: list[tuple[list[str], bytes | None]] = []

    async def run(self, argv, *, input=None, timeout=None) -> CommandResult:
        self.calls.append((list(argv), input))
        result = self.results.pop(0)
        return CommandResult(list(argv), result.exit_status, result.stdout, result.stderr)


class ShellOver:
    """RemoteShell's `run` answered by a FakeSSH (the real shell: tests/sim)."""

    def __init__(self, ssh: FakeSSH) -> None:
        self.ssh = ssh

    async def run(self, argv, timeout=None) -> CommandResult:
        return await self.ssh.run(argv, timeout=timeout)


def docker_over(ssh: FakeSSH, prefix: list[str]) -> Docker:
    docker = Docker(ssh, prefix)  # type: ignore[arg-type]
    docker.shell = docker.stats_shell = ShellOver(ssh)  # type: ignore[assignment]
    return docker


def result(stdout: bytes = b"", stderr: str = "", status: int = 0) -> CommandResult:
    return CommandResult([], status, stdout, stderr)


def test_sizes_from_docker_stats():
    assert parse_size("7.402MiB") == int(7.402 * 1024**2)
    assert parse_size("1.5GB") == 1_500_000_000
    assert parse_size("0B") == 0
    with pytest.raises(ValueError):
        parse_size("lots")


def test_only_an_exited_container_flagged_oom_was_killed_for_memory():
    # `docker start` leaves OOMKilled=true on a running container
    assert not ContainerInfo.from_inspect(inspect_json("a", "running", oom=True)).killed_for_memory
    assert ContainerInfo.from_inspect(inspect_json("a", "exited", oom=True)).killed_for_memory
    assert not ContainerInfo.from_inspect(inspect_json("a", "exited")).killed_for_memory


def test_inspect_many_reports_missing_containers_as_none():
    ssh = FakeSSH(result(json.dumps([inspect_json("parakeet-asr", memory=5, swap=5)]).encode(),
                         "Error: No such object: magpie-tts\n", 1))
    docker = docker_over(ssh, ["sudo", "docker"])
    found = asyncio.run(docker.inspect_many(["parakeet-asr", "magpie-tts"]))
    assert found["magpie-tts"] is None
    info = found["parakeet-asr"]
    assert (info.status, info.restart_count, info.memory_limit, info.finished_at) == (
        "running", 2, 5, None)
    assert ssh.calls[0][0] == ["sudo", "docker", "inspect", "--type", "container",
                               "parakeet-asr", "magpie-tts"]


def test_other_inspect_failures_raise_with_stderr():
    docker = docker_over(FakeSSH(result(b"", "permission denied on docker.sock", 1)), ["docker"])
    with pytest.raises(CommandFailed, match="permission denied on docker.sock"):
        asyncio.run(docker.inspect_many(["x"]))


def test_actions_on_a_missing_container_raise_container_not_found():
    docker = Docker(FakeSSH(result(b"", "Error response from daemon: No such container: x", 1)),
                    ["docker"])
    with pytest.raises(ContainerNotFound, match="'x' does not exist on Spark 2"):
        asyncio.run(docker.restart("x"))


def test_memory_cap_forbids_swap():
    ssh = FakeSSH(result())
    asyncio.run(Docker(ssh, ["docker"]).update_memory("parakeet-asr", 1024))
    assert ssh.calls[0][0] == ["docker", "update", "--memory", "1024", "--memory-swap", "1024",
                               "parakeet-asr"]


def test_copy_in_sends_a_tar_stream_on_stdin():
    ssh = FakeSSH(result())
    asyncio.run(Docker(ssh, ["docker"]).copy_in("c", "/opt/app", {"main.py": b"print(1)"}))
    argv, stdin = ssh.calls[0]
    assert argv == ["docker", "cp", "-", "c:/opt/app"]
    with tarfile.open(fileobj=io.BytesIO(stdin)) as tar:
        assert tar.extractfile("main.py").read() == b"print(1)"


def test_tar_of_strips_leading_slashes():
    with tarfile.open(fileobj=io.BytesIO(tar_of({"/opt/a.py": b"x"}))) as tar:
        assert tar.getnames() == ["opt/a.py"]


def test_memory_usage_from_one_docker_stats_through_its_own_shell():
    rows = [{"Name": "parakeet-asr", "MemUsage": "1.5GiB / 4GiB"},
            {"Name": "magpie-tts", "MemUsage": "7.4MiB / 125GiB"}]
    ssh = FakeSSH(result("\n".join(map(json.dumps, rows)).encode()))
    docker = docker_over(ssh, ["docker"])
    usage = asyncio.run(docker.memory_usage(["parakeet-asr", "magpie-tts"]))
    assert usage == {"parakeet-asr": int(1.5 * 1024**3), "magpie-tts": int(7.4 * 1024**2)}
    assert ssh.calls[0][0][:3] == ["docker", "stats", "--no-stream"]


def test_memory_usage_of_a_container_gone_meanwhile_raises():
    ssh = FakeSSH(result(b"", "Error response from daemon: No such container: parakeet-asr", 1))
    with pytest.raises(ContainerNotFound):
        asyncio.run(docker_over(ssh, ["docker"]).memory_usage(["parakeet-asr"]))
