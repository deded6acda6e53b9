"""No Spark, PARAKEET_URL at a speech server that spark-control does not run (the
compose "without a Spark" setup): the service is listed, polled and deep-checked by
URL, /readyz follows its health, and start/stop/restart say why they cannot be done."""

from __future__ import annotations

from app.config import Settings
from helpers import authed, wait_for


def test_a_speech_server_reached_by_url_is_a_listed_healthy_service(cpu_server, tmp_path,
                                                                    conversation):
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", parakeet_url=cpu_server.url,
                        local_speech=False, poll_interval_s=0.5)
    with authed(settings) as client:
        asr = wait_for(lambda: (s := client.get("/api/services/parakeet-asr").json())
                       ["state"] == "healthy" and s, timeout=30, what="parakeet-asr healthy")
        assert asr["url"] == cpu_server.url and asr["container"] is None
        listing = client.get("/api/services").json()
        assert listing["mode"] == "external" and [s["name"] for s in listing["services"]] == [
            "parakeet-asr"]
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"parakeet-asr": "ok"}
        refused = client.post("/api/services/parakeet-asr/restart")
        assert refused.status_code == 503
        assert "reached at its URL only" in refused.json()["detail"]
        check = client.post("/api/services/parakeet-asr/deep-check")
        assert check.status_code == 200 and check.json()["result"]["verdict"] == "ok", check.text
        with conversation.wav.open("rb") as f:
            done = client.post("/api/audio/transcribe-with-speakers",
                               files={"file": ("c.wav", f, "audio/wav")})
        assert done.status_code == 200 and done.json()["segments"]


def test_readyz_is_not_ready_while_that_server_is_down(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", local_speech=False,
                        parakeet_url="http://127.0.0.1:9", poll_interval_s=0.5,
                        health_timeout_s=0.5)
    with authed(settings) as client:
        wait_for(lambda: client.get("/api/services/parakeet-asr").json()["state"]
                 == "unhealthy", timeout=15, what="parakeet-asr unhealthy")
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "cannot reach" in ready.json()["checks"]["parakeet-asr"]
