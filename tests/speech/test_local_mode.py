"""Local mode: no Spark configured, so spark-control runs the project's speech server
(CPU engine) as a supervised child process, and the main job still works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from app.config import Settings
from helpers import authed, wait_for
from sim.spark2 import free_ports


def local_settings(tmp_path: Path, **extra) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", poll_interval_s=0.5,
                    stop_grace_s=3, **extra)


def asr(client) -> dict:
    return client.get("/api/services/parakeet-asr").json()


def test_local_mode_serves_transcription_with_speakers(real_conversation, tmp_path):
    wav, turns = real_conversation
    with authed(local_settings(tmp_path)) as client:
        wait_for(lambda: asr(client)["state"] == "healthy", timeout=120,
                 what="the local speech server to load")
        service = asr(client)
        assert service["url"].startswith("http://127.0.0.1:")
        assert service["memory"]["usage_bytes"] > 50 * 2**20  # read from /proc
        assert client.get("/readyz").status_code == 200
        with wav.open("rb") as f:
            response = client.post("/api/audio/transcribe-with-speakers",
                                   files={"file": ("c.wav", f, "audio/wav")})
        assert response.status_code == 200, response.text
        assert response.json()["speakers_detected"] == len({t[2] for t in turns}) == 3
        models = client.get("/api/speech-models").json()
        assert models["status"] == "local" and "Spark" in models["detail"]
        reapply = client.post("/api/speech-models/reapply")
        assert reapply.status_code == 503 and "apply to" in reapply.json()["detail"]
        host = wait_for(lambda: (h := client.get("/api/host").json())["reachable"] and h,
                        what="this machine's host figures")
    assert host["source"] == "local"
    meminfo = Path("/proc/meminfo").read_text().split()
    assert host["snapshot"]["memory"]["total_bytes"] == int(
        meminfo[meminfo.index("MemTotal:") + 1]) * 1024


def test_local_server_is_stopped_started_and_revived_when_it_dies(tmp_path):
    with authed(local_settings(tmp_path)) as client:
        wait_for(lambda: asr(client)["state"] == "healthy", timeout=120, what="healthy")
        pid = asr(client)["container"] and _pid(client)
        stopped = client.post("/api/services/parakeet-asr/stop")
        assert stopped.status_code == 200, stopped.text
        assert asr(client)["state"] == "stopped"
        assert not _alive(pid)
        assert client.post("/api/services/parakeet-asr/start").status_code == 200
        wait_for(lambda: asr(client)["state"] == "healthy", timeout=120, what="healthy again")
        os.kill(_pid(client), signal.SIGKILL)  # dies by itself, as far as we know
        wait_for(lambda: asr(client)["restart_count"] == 1, timeout=30, what="a revival")
        wait_for(lambda: asr(client)["state"] == "healthy", timeout=120, what="revived")
    assert not _alive(_pid_from_log(tmp_path))  # stopped with spark-control


def test_the_run_command_serves_local_mode_on_its_own(tmp_path):
    """What `scripts/run` ends in: `python -m app.cli` with nothing configured."""
    port = free_ports(1)[0]
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "SPARK2_HOST": "",
           "PARAKEET_URL": "", "POLL_INTERVAL_S": "0.5"}
    env.pop("PARAKEET_URL")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _get(f"{url}/readyz") == 200, timeout=120, what="readyz")
        token = (tmp_path / "data" / "auth-token").read_text().strip()
        services = httpx.get(f"{url}/api/services", headers={"Authorization": f"Bearer {token}"})
        assert services.json()["services"][0]["state"] == "healthy"
        assert services.json()["mode"] == "local"
        assert httpx.get(f"{url}/api/services").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=30)[0].decode()
    assert output.count(f"localhost:{port}/login?token={token}") == 1  # printed once
    assert "logger=app.access" in output and "request_id=" in output  # logfmt lines


def _get(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return None


def _pid(client) -> int:
    return client.app.state.registry.docker.speech.proc.pid


def _pid_from_log(tmp_path: Path) -> int:
    log = (tmp_path / "data" / "local-speech.log").read_text()
    return int(log.split("Started server process [")[-1].split("]")[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_the_local_server_takes_chunks_bigger_than_the_public_upload_cap(conversation,
                                                                        tmp_path, monkeypatch):
    """MAX_UPLOAD_MB caps the compressed original; the child gets 16 kHz WAVs of up to a
    chunk (45 s here: 1.4 MB, over a 1 MB cap the child used to inherit -> 502)."""
    ogg = tmp_path / "conversation.ogg"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(conversation.wav), "-c:a", "libopus",
                    "-b:a", "24k", str(ogg)], check=True)
    assert ogg.stat().st_size < 2**20 < conversation.wav.stat().st_size
    monkeypatch.setenv("MAX_UPLOAD_MB", "1")  # as from .env: the child inherited it
    with authed(local_settings(tmp_path)) as client:
        assert client.app.state.settings.max_upload_mb == 1
        wait_for(lambda: asr(client)["state"] == "healthy", timeout=120, what="healthy")
        with ogg.open("rb") as f:
            response = client.post("/api/audio/transcribe-with-speakers",
                                   files={"file": ("c.ogg", f, "audio/ogg")})
        assert response.status_code == 200, response.text
        assert response.json()["segments"]


def test_the_local_server_dies_with_spark_control_and_a_restart_runs_one(tmp_path):
    """SIGKILL spark-control: its speech server goes too; one an earlier run left behind
    (its pid file says so) is stopped by the next start."""
    data = tmp_path / "data"
    first = _serve(data)
    try:
        child = int(wait_for(lambda: _read(data / "local-speech.pid"), timeout=60,
                             what="the pid file"))
        assert _alive(child)
        first.kill()  # no chance to clean up
        first.wait(10)
        wait_for(lambda: not _alive(child), timeout=10, what="the orphan to die")
    finally:
        first.kill()
    leftover = subprocess.Popen(  # as if PDEATHSIG had not fired: a server still running
        [sys.executable, "-m", "uvicorn", "main:app", "--app-dir",
         str(Path(__file__).resolve().parents[2] / "image" / "parakeet_patches"),
         "--host", "127.0.0.1", "--port", str(free_ports(1)[0])],
        env={**os.environ, "ENGINE": "cpu"}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (data / "local-speech.pid").write_text(f"{leftover.pid}\n")
    second = _serve(data)
    try:
        wait_for(lambda: leftover.poll() is not None, timeout=30, what="the leftover to stop")
        wait_for(lambda: _read(data / "local-speech.pid") not in (None, str(leftover.pid)),
                 timeout=30, what="the new server")
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(30)
        leftover.kill()


def _serve(data: Path) -> subprocess.Popen:
    env = {**os.environ, "DATA_DIR": str(data), "SPARK2_HOST": ""}
    env.pop("PARAKEET_URL", None)
    return subprocess.Popen([sys.executable, "-m", "app.cli", "--host", "127.0.0.1",
                             "--port", str(free_ports(1)[0])], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
