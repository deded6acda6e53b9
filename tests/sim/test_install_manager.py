"""The install manager on a simulated Spark 2 that starts WITHOUT a speech container.

A private Docker Engine and sshd on loopback (sim/spark2.py); the base image is a Debian
made here with mmdebstrap (sim.images.cached_base) in place of NVIDIA's PyTorch image;
image/Dockerfile.speech is built for real with ENGINE=cpu over spark-control's SSH
connection. The tests run in file order and share the host: install, then upgrades
(changed context; a build that fails; a server that never loads; the SSH connection cut
mid-build; a cancel), then a rollback. Each failure must leave the old container
serving, untouched, and nothing this job made behind.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.speech_server.context import DOCKERFILE
from helpers import control, copy_context, install_settings
from sim.spark2 import SimSpark2, free_ports, processes
from testaudio.real import multis

pytestmark = pytest.mark.sim
REPO = "spark-control/speech-server"


@pytest.fixture(scope="module")
def host(bare_spark: SimSpark2) -> SimSpark2:
    if "parakeet-asr" in containers(bare_spark):
        bare_spark.docker("rm", "-f", "parakeet-asr")  # a rerun in one session
    return bare_spark


@pytest.fixture(scope="module")
def spare() -> int:
    return free_ports(1)[0]


@pytest.fixture
def settings_for(host: SimSpark2, spare: int):  # type: ignore[no-untyped-def]
    return lambda context=None, **overrides: install_settings(host, spare, context, **overrides)


def start(client: TestClient, kind: str, **body: Any) -> str:
    answer = client.post(f"/api/speech-server/{kind}", json=body or None)
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def follow(client: TestClient, job: str, on_log: Any = None) -> tuple[dict, list[str]]:
    """The job's SSE stream to its end: the final job view and every log line."""
    lines: list[str] = []
    final: dict = {}
    with client.stream("GET", f"/api/speech-server/jobs/{job}/stream") as stream:
        event = ""
        for raw in stream.iter_lines():
            if raw.startswith("event:"):
                event = raw[6:].strip()
            elif raw.startswith("data:"):
                data = json.loads(raw[5:])
                if event == "log":
                    lines.append(data["line"])
                    if on_log:
                        on_log(data["line"])
                else:
                    final = data
    return final, lines


def status(client: TestClient) -> dict:
    answer = client.get("/api/speech-server")
    assert answer.status_code == 200, answer.text
    return answer.json()


def step(job: dict, name: str) -> dict:
    return next(s for s in job["steps"] if s["name"] == name)


def inspect(host: SimSpark2, name: str) -> dict:
    return json.loads(host.docker("inspect", name).stdout)[0]


def containers(host: SimSpark2) -> set[str]:
    return set(host.docker("ps", "-a", "--format", "{{.Names}}").stdout.decode().split())


def tags(host: SimSpark2) -> set[str]:
    out = host.docker("images", "--format", "{{.Repository}}:{{.Tag}}", REPO).stdout.decode()
    return set(out.split())


def dangling_of_ours(host: SimSpark2) -> list[str]:
    out = host.docker("images", "-q", "--filter", "dangling=true", "--filter",
                      "label=spark-control.role=speech-server").stdout.decode()
    return out.split()


def builds_running() -> list[str]:
    """docker CLIs of a build of ours still running on the host (this machine)."""
    return [b" ".join(argv).decode(errors="replace") for _, argv in processes()
            if any(a.startswith(b"spark-control.job=") for a in argv)]


def nothing_half_made(host: SimSpark2, before: dict) -> None:
    """The old container serves as it did; no candidate, tag or build of the job left."""
    now = inspect(host, "parakeet-asr")
    assert now["Id"] == before["Id"] and now["State"]["Running"], "the old container was touched"
    assert now["State"]["StartedAt"] == before["State"]["StartedAt"], "it was restarted"
    assert containers(host) == {"parakeet-asr", "magpie-tts"}
    assert all(":build-" not in tag for tag in tags(host)), tags(host)
    assert not dangling_of_ours(host)
    assert not builds_running()


def healthy(url: str) -> bool:
    body = httpx.get(f"{url}/health", timeout=5).json()
    return body["status"] == "ok"


# -- install ---------------------------------------------------------------------

def test_install_on_a_spark_with_no_speech_container(host, settings_for):
    settings = settings_for()
    with control(settings) as client:
        assert "parakeet-asr" not in containers(host)
        before = status(client)
        assert before["state"] == "missing" and before["local_context"]
        _wait_for(lambda: client.get("/api/services/parakeet-asr").json()["state"] == "missing",
                  10)

        job, lines = follow(client, start(client, "install"))
        assert job["status"] == "done", job
        assert [s["status"] for s in job["steps"]] == ["ok"] * 7
        # the build log came live: the legacy builder's steps, pip's install, the tag
        assert any(line.startswith("Step 1/") for line in lines)
        assert any("Successfully installed" in line for line in lines)
        assert job["log_lines"] == len(lines) > 50

        now = status(client)
        assert now["state"] == "installed" and not now["upgrade_available"]
        assert now["current"]["context"] == before["local_context"]
        service = client.get("/api/services/parakeet-asr").json()
        assert service["state"] == "healthy", service
        assert service["memory"]["cap_enforced"] and service["memory"]["limit_bytes"] == 1 << 30
        overlay = client.get("/api/speech-models").json()
        assert overlay["status"] == "in_sync", overlay

        container = inspect(host, "parakeet-asr")
        config = container["HostConfig"]
        assert config["Memory"] == config["MemorySwap"] == 1 << 30  # capped, no swap
        assert config["RestartPolicy"]["Name"] == "unless-stopped"
        assert container["Config"]["Labels"]["spark-control.context"] == before["local_context"]
        assert container["Config"]["Healthcheck"]["Test"][0] == "CMD-SHELL"
        assert tags(host) == {f"{REPO}:{before['local_context'][:12]}"}
        assert not builds_running()

        # real speech through spark-control, to the installed server
        clip = next(m for m in multis() if m.name.startswith("falcon"))
        with clip.wav.open("rb") as f:
            answer = client.post("/api/audio/transcribe-with-speakers",
                                 files={"file": (clip.wav.name, f, "audio/wav")})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["speakers_detected"] == len(clip.speakers) and len(body["segments"]) >= 3

        again = client.post("/api/speech-server/install")
        assert again.status_code == 409 and "use upgrade" in again.json()["detail"]


# -- upgrades that fail: the old container serves on, nothing left ---------------------

def test_an_upgrade_whose_build_fails(host, settings_for, tmp_path):
    context = copy_context(tmp_path / "ctx")
    (context / "image/parakeet_patches/formats.py").write_text("def broken(:\n")
    before = inspect(host, "parakeet-asr")
    with control(settings_for(context)) as client:
        assert status(client)["state"] == "outdated"
        job, lines = follow(client, start(client, "upgrade"))
    assert job["status"] == "failed" and step(job, "build")["status"] == "failed"
    assert "build failed: docker build exited with" in job["outcome"]
    assert "SyntaxError" in step(job, "build")["detail"]  # the log's last lines say why
    assert "still serves its old image" in job["outcome"]
    assert step(job, "start")["status"] == "skipped"
    nothing_half_made(host, before)


def test_an_upgrade_whose_server_never_loads(host, settings_for, tmp_path):
    context = copy_context(tmp_path / "ctx")
    engines = context / "image/parakeet_patches/engines.py"
    engines.write_text(engines.read_text().replace(
        "    name = (choice", "    import time; time.sleep(3600)\n    name = (choice"))
    before = inspect(host, "parakeet-asr")
    with control(settings_for(context, speech_server_health_timeout_s=12)) as client:
        job, _ = follow(client, start(client, "upgrade"))
    assert job["status"] == "failed" and step(job, "health")["status"] == "failed", job
    assert "did not report the models loaded within 12 s" in job["outcome"]
    assert step(job, "start")["status"] == "ok" and step(job, "switch")["status"] == "skipped"
    nothing_half_made(host, before)
    assert len(tags(host)) == 1  # the new image's tag went with it
    assert healthy(f"http://127.0.0.1:{host.state.parakeet_port}")


def test_an_upgrade_whose_ssh_connection_drops_mid_build(host, settings_for):
    before = inspect(host, "parakeet-asr")
    cut = threading.Event()

    def drop_at_pip(line: str) -> None:
        if line.startswith("Step 10/") and not cut.is_set():  # pip install starts
            cut.set()
            host.stop_sshd()
            threading.Timer(3.0, host.start_sshd).start()  # back a little later

    with control(settings_for()) as client:
        job, _ = follow(client, start(client, "upgrade", no_cache=True), on_log=drop_at_pip)
    assert cut.is_set()
    assert job["status"] == "failed" and step(job, "build")["status"] == "failed", job
    assert "lost the SSH connection" in job["outcome"] or "connection lost" in job["outcome"]
    assert "could not clean up" not in job["outcome"]  # it did, once sshd was back
    _wait_for(lambda: not builds_running(), 30)
    nothing_half_made(host, before)


def test_cancel_stops_the_build_and_removes_what_it_made(host, settings_for):
    before = inspect(host, "parakeet-asr")
    with control(settings_for()) as client:
        job_id = start(client, "upgrade", no_cache=True)
        cancelled = threading.Event()

        def cancel_at_pip(line: str) -> None:
            if line.startswith("Step 10/") and not cancelled.is_set():
                cancelled.set()
                answer = client.post(f"/api/speech-server/jobs/{job_id}/cancel")
                assert answer.status_code == 202, answer.text

        job, _ = follow(client, job_id, on_log=cancel_at_pip)
        assert client.post(f"/api/speech-server/jobs/{job_id}/cancel").status_code == 409
    assert job["status"] == "failed" and "cancelled by the user during build" in job["outcome"]
    _wait_for(lambda: not builds_running(), 30)
    nothing_half_made(host, before)


# -- an upgrade that switches, then a rollback ---------------------------------------------

def test_an_upgrade_switches_with_no_failed_request_and_keeps_the_old_image(
        host, settings_for, tmp_path):
    context = copy_context(tmp_path / "ctx")
    dockerfile = context / DOCKERFILE
    dockerfile.write_text(dockerfile.read_text() + "\n# a changed context\n")
    old = inspect(host, "parakeet-asr")
    with control(settings_for(context)) as client:
        assert status(client)["upgrade_available"]
        results: list[tuple[float, int]] = []
        stop = threading.Event()
        load = threading.Thread(target=_keep_asking, args=(client, results, stop))
        load.start()
        try:
            job, _ = follow(client, start(client, "upgrade"))
        finally:
            stop.set()
            load.join()
        assert job["status"] == "done", job
        assert results and all(code == 200 for _, code in results), results
        switch = step(job, "switch")
        during = [at for at, _ in results
                  if switch["started_at"] <= at <= switch["started_at"] + switch["duration_s"]]
        assert len(during) >= 3, (switch, results)  # asked all through the hand-over
        now = status(client)
        assert now["state"] == "installed" and now["current"]["context"] != old["Config"][
            "Labels"]["spark-control.context"]
        assert now["previous"]["context"] == old["Config"]["Labels"]["spark-control.context"]
        assert client.get("/api/speech-models").json()["status"] == "in_sync"
    new = inspect(host, "parakeet-asr")
    assert new["Id"] != old["Id"] and new["Image"] != old["Image"]
    assert containers(host) == {"parakeet-asr", "magpie-tts"}
    assert f"{REPO}:previous" in tags(host) and len(tags(host)) == 3  # new, its digest, previous
    assert inspect(host, f"{REPO}:previous")["Id"] == old["Image"]
    assert not dangling_of_ours(host)
    print(f"requests during the upgrade: {len(results)}, {len(during)} of them during the "
          f"{switch['duration_s']:.1f} s switch, all 200")


def test_rollback_returns_to_the_previous_image(host, settings_for):
    running = inspect(host, "parakeet-asr")
    previous = inspect(host, f"{REPO}:previous")["Id"]
    with control(settings_for()) as client:
        job, _ = follow(client, start(client, "rollback"))
        assert job["status"] == "done", job
        assert status(client)["state"] == "installed"  # this checkout's context again
    assert inspect(host, "parakeet-asr")["Image"] == previous
    assert inspect(host, f"{REPO}:previous")["Id"] == running["Image"]  # a second click undoes
    assert containers(host) == {"parakeet-asr", "magpie-tts"}


def _keep_asking(client: TestClient, results: list[tuple[float, int]],
                 stop: threading.Event) -> None:
    """Short transcriptions through spark-control, one after another, until stopped:
    (when each was sent, its status)."""
    from speech_audio import wav_bytes
    wav = wav_bytes(1.0)  # silence: a real request that returns at once
    while not stop.is_set():
        sent = time.time()
        answer = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav,
                                                                         "audio/wav")})
        results.append((sent, answer.status_code))


def _wait_for(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
