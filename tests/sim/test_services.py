"""The services registry against the simulated Spark 2 (real sshd, real dockerd)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from helpers import control, inspect, metric, service, sim_settings, wait_for
from testaudio.generate import make_conversation

pytestmark = pytest.mark.sim
CAP = 1024**3  # sim_settings(): the CPU engine (CAM++) peaks at ~690 MB RSS on a 45 s file


def test_state_is_read_from_docker_and_health(sim):
    with control(sim_settings(sim)) as client:
        asr = wait_for(lambda: _state(client, "parakeet-asr") == "healthy" and
                       service(client, "parakeet-asr"), what="parakeet-asr healthy")
        tts = service(client, "magpie-tts")
        body = client.get("/api/services").json()

    assert body["spark2"]["reachable"] is True
    assert asr["container"]["status"] == "running"
    assert asr["container"]["started_at"] == inspect(sim, "parakeet-asr", "{{.State.StartedAt}}")
    assert asr["health"]["body"]["engine"] == "cpu"
    assert "whisper/tiny.en+pocketsphinx-align" in asr["models"]
    assert asr["memory"]["usage_bytes"] > 1024**2
    assert tts["state"] == "healthy"
    assert tts["models"] == ["magpie-tts-standin"]
    assert [s["name"] for s in body["services"]] == ["parakeet-asr", "magpie-tts"]


def test_memory_cap_applied_at_startup(sim):
    assert inspect(sim, "parakeet-asr", "{{.HostConfig.Memory}}") == "0"
    with control(sim_settings(sim)) as client:
        wait_for(lambda: service(client, "parakeet-asr")["memory"]["cap_enforced"],
                 what="cap shown as enforced")
        assert service(client, "parakeet-asr")["memory"]["limit_bytes"] == CAP
        assert service(client, "magpie-tts")["memory"]["cap_bytes"] is None

    assert inspect(sim, "parakeet-asr", "{{.HostConfig.Memory}}") == str(CAP)
    assert inspect(sim, "parakeet-asr", "{{.HostConfig.MemorySwap}}") == str(CAP)
    assert inspect(sim, "magpie-tts", "{{.HostConfig.Memory}}") == "0"


def test_stop_start_restart(sim):
    with control(sim_settings(sim)) as client:
        wait_for(lambda: _state(client, "magpie-tts") == "healthy", what="healthy")

        stopped = client.post("/api/services/magpie-tts/stop")
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["service"]["state"] == "stopped"
        assert inspect(sim, "magpie-tts", "{{.State.Status}}") == "exited"

        started = client.post("/api/services/magpie-tts/start")
        assert started.status_code == 200, started.text
        assert inspect(sim, "magpie-tts", "{{.State.Running}}") == "true"
        wait_for(lambda: _state(client, "magpie-tts") == "healthy", what="healthy after start")

        before = inspect(sim, "magpie-tts", "{{.State.StartedAt}}")
        restarted = client.post("/api/services/magpie-tts/restart").json()
        assert restarted["record"] == {**restarted["record"], "action": "restart", "by": "user",
                                       "outcome": "ok"}
        assert inspect(sim, "magpie-tts", "{{.State.StartedAt}}") != before
        assert restarted["service"]["restart_count"] == 1
        wait_for(lambda: _state(client, "magpie-tts") == "healthy", what="healthy after restart")


def test_restart_reapplies_memory_cap(sim):
    # A long poll interval: only the restart itself can put the cap back in time.
    with control(sim_settings(sim, poll_interval_s=600)) as client:
        wait_for(lambda: inspect(sim, "parakeet-asr", "{{.HostConfig.Memory}}") == str(CAP),
                 what="cap at startup")
        sim.docker("update", "--memory", "500m", "--memory-swap", "1g", "parakeet-asr")
        result = client.post("/api/services/parakeet-asr/restart")
        assert result.status_code == 200, result.text
        assert result.json()["service"]["memory"]["cap_enforced"] is True
    assert inspect(sim, "parakeet-asr", "{{.HostConfig.MemorySwap}}") == str(CAP)


def test_memory_cap_is_enforced_and_oom_is_reported(sim):
    # No restart budget: the OOM-killed state stays visible.
    with control(sim_settings(sim, auto_restart_max=0)) as client:
        wait_for(lambda: service(client, "parakeet-asr")["memory"]["cap_enforced"], what="cap")
        assert _allocate_in_server(sim, "parakeet-asr", mb=1000) == 137
        asr = wait_for(lambda: (s := service(client, "parakeet-asr"))["state"] == "oom_killed"
                       and s, what="oom_killed state")
        assert "memory" in asr["state_detail"]
        assert asr["container"]["oom_killed"] is True
        assert inspect(sim, "parakeet-asr", "{{.State.Running}}") == "false"


def test_watchdog_restarts_oom_killed_service(sim):
    with control(sim_settings(sim)) as client:
        wait_for(lambda: service(client, "parakeet-asr")["memory"]["cap_enforced"], what="cap")
        kills = metric(client, "spark_control_service_oom_kills_total", service="parakeet-asr")
        labels = {"service": "parakeet-asr", "action": "restart", "by": "watchdog"}
        restarts = metric(client, "spark_control_service_restarts_total", **labels)
        assert _allocate_in_server(sim, "parakeet-asr", mb=1000) == 137
        asr = wait_for(lambda: (s := service(client, "parakeet-asr"))["history"] and
                       s["state"] == "healthy" and s, timeout=30, what="auto-restart")
        assert metric(client, "spark_control_service_oom_kills_total",
                      service="parakeet-asr") == kills + 1
        assert metric(client, "spark_control_service_restarts_total", **labels) == restarts + 1
    record = asr["history"][-1]
    assert record["by"] == "watchdog" and record["outcome"] == "ok"
    assert "OOM" in record["reason"]
    assert asr["auto_restarts_in_window"] == 1
    assert inspect(sim, "parakeet-asr", "{{.State.Running}}") == "true"
    assert inspect(sim, "parakeet-asr", "{{.HostConfig.Memory}}") == str(CAP)


def test_second_action_on_same_service_is_409(sim):
    with control(sim_settings(sim, stop_grace_s=3)) as client:
        wait_for(lambda: _state(client, "magpie-tts") == "healthy", what="healthy")
        # A stopped (SIGSTOP) process makes `docker restart` wait out the grace time.
        os.kill(sim.container_pid("magpie-tts"), signal.SIGSTOP)
        first: dict = {}
        worker = threading.Thread(target=lambda: first.update(
            r=client.post("/api/services/magpie-tts/restart")))
        worker.start()
        wait_for(lambda: service(client, "magpie-tts")["action"], what="restart running")
        second = client.post("/api/services/magpie-tts/stop")
        other = client.post("/api/services/parakeet-asr/restart")
        worker.join(30)
    assert second.status_code == 409
    assert "restart of magpie-tts is already running" in second.json()["detail"]
    assert other.status_code == 200  # the lock is per service
    assert first["r"].status_code == 200


def test_unknown_service_is_404(sim):
    with control(sim_settings(sim)) as client:
        for method, path in [("get", "/api/services/nope"), ("post", "/api/services/nope/stop"),
                             ("post", "/api/services/nope/deep-check")]:
            response = getattr(client, method)(path)
            assert response.status_code == 404
            assert "no service named 'nope'" in response.json()["detail"]
        assert client.post("/api/services/magpie-tts/explode").status_code == 422


def test_missing_container_is_a_clear_error(sim):
    specs = [{"name": "ghost", "container": "ghost-asr", "url": "http://127.0.0.1:9",
              "kind": "asr"}]
    with control(sim_settings(sim, services=specs)) as client:
        ghost = wait_for(lambda: _state(client, "ghost") == "missing" and
                         service(client, "ghost"), what="missing state")
        assert "container 'ghost-asr' does not exist on Spark 2" in ghost["state_detail"]
        response = client.post("/api/services/ghost/start")
    assert response.status_code == 502
    assert response.json()["error"] == "container_not_found"
    assert "ghost-asr" in response.json()["detail"]


def test_wedged_service_fails_deep_check_and_is_restarted(sim):
    # The healthy check gets 10 s (a loaded 2-core machine must not fail it); the wedged
    # one 1 s, so that its own auto-restart comes before the health poller's evidence
    # moves anything else to act. The watchdog reads the bound at each check. No startup
    # grace: the container was just created, and a failed /health inside the grace reads
    # "starting", which the watchdog never restarts (a CI run lost that race).
    with control(sim_settings(sim, deep_check_timeout_s=10, startup_grace_s=0)) as client:
        wait_for(lambda: _state(client, "magpie-tts") == "healthy", what="healthy")
        ok = client.post("/api/services/magpie-tts/deep-check").json()
        assert ok["result"]["verdict"] == "ok" and ok["auto_restart"] is None
        client.app.state.settings.deep_check_timeout_s = 1

        wedged_pid = sim.container_pid("magpie-tts")
        os.kill(wedged_pid, signal.SIGSTOP)  # accepts connections, never answers
        check = client.post("/api/services/magpie-tts/deep-check").json()
        assert check["result"]["verdict"] == "failed"
        assert "no answer within 1 s" in check["result"]["detail"]
        assert check["auto_restart"]["by"] == "watchdog"
        assert check["auto_restart"]["outcome"] == "ok"
        assert sim.container_pid("magpie-tts") != wedged_pid
        wait_for(lambda: _state(client, "magpie-tts") == "healthy", what="healthy again")
        assert service(client, "magpie-tts")["deep_check"]["verdict"] == "failed"


def test_deep_check_runs_periodically(sim):
    # A 10 s timeout: on a loaded 2-core CI machine a 3 s one timed out on an idle server.
    with control(sim_settings(sim, deep_check_interval_s=1, deep_check_timeout_s=10)) as client:
        tts = wait_for(lambda: service(client, "magpie-tts")["deep_check"], timeout=15,
                       what="a periodic deep check")
        assert tts["verdict"] == "ok"
        # the real speech server transcribes the second of silence
        asr = wait_for(lambda: service(client, "parakeet-asr")["deep_check"], what="asr check")
        assert asr["verdict"] == "ok", asr
        assert service(client, "parakeet-asr")["history"] == []


def test_probes(sim):
    with control(sim_settings(sim)) as client:
        assert client.get("/livez").json() == {"status": "alive"}
        ready = wait_for(lambda: (r := client.get("/readyz")).status_code == 200 and r,
                         what="ready")
        assert ready.json()["checks"] == {"ssh": "ok", "parakeet-asr": "ok"}
        client.post("/api/services/parakeet-asr/stop")
        not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["parakeet-asr"].startswith("stopped")


def _state(client, name: str) -> str:
    return service(client, name)["state"]


def _allocate_in_server(sim, container: str, mb: int) -> int:
    """Make the server process the kernel's first OOM victim, then overrun the cap."""
    python = inspect(sim, container, "{{.Path}}")
    sim.docker("exec", container, "sh", "-c", "echo 1000 > /proc/1/oom_score_adj")
    result = sim.docker("exec", container, python, "-c",
                        f"import time; x = bytearray({mb} * 1024 * 1024); time.sleep(5)",
                        check=False)
    time.sleep(0.2)
    return result.returncode


def _long_job(client, tmp_path, seconds: float) -> str:
    conv = make_conversation(tmp_path / "conv", speakers=2, seconds=seconds, seed=3)
    with conv.wav.open("rb") as f:
        job = client.post("/api/audio/jobs", files={"file": ("long.wav", f, "audio/wav")})
    assert job.status_code == 202, job.text
    return job.json()["id"]


def _job(client, job_id: str) -> dict:
    return client.get(f"/api/audio/jobs/{job_id}").json()


def test_deep_checks_during_a_long_job_defer_and_never_restart(sim, tmp_path):
    """Deep checks every second with a 5 s timeout, while the speech server works on
    a real job: the checks see it busy and the job finishes on the same container."""
    with control(sim_settings(sim, deep_check_interval_s=1, deep_check_timeout_s=5)) as client:
        wait_for(lambda: _state(client, "parakeet-asr") == "healthy", what="healthy")
        pid = sim.container_pid("parakeet-asr")
        job_id = _long_job(client, tmp_path, seconds=150)
        verdicts = []
        while _job(client, job_id)["status"] not in ("done", "failed", "cancelled"):
            check = service(client, "parakeet-asr")["deep_check"]
            verdicts.append(check and check["verdict"])
            time.sleep(0.25)
        job = _job(client, job_id)
        history = service(client, "parakeet-asr")["history"]
    assert job["status"] == "done", job
    assert "busy" in verdicts, verdicts
    assert "failed" not in verdicts and history == []
    assert sim.container_pid("parakeet-asr") == pid


def test_a_server_stopped_mid_job_is_still_restarted(sim, tmp_path):
    with control(sim_settings(sim, deep_check_interval_s=1, deep_check_timeout_s=1)) as client:
        wait_for(lambda: _state(client, "parakeet-asr") == "healthy", what="healthy")
        job_id = _long_job(client, tmp_path, seconds=150)
        wait_for(lambda: (service(client, "parakeet-asr")["deep_check"] or {}).get("verdict")
                 == "busy", what="a deep check that sees the job")
        os.kill(sim.container_pid("parakeet-asr"), signal.SIGSTOP)
        restart = wait_for(lambda: service(client, "parakeet-asr")["history"], timeout=30,
                           what="an auto-restart")[0]
        job = wait_for(lambda: (j := _job(client, job_id))["status"] in ("done", "failed") and j,
                       timeout=120, what="the job to end")
        wait_for(lambda: _state(client, "parakeet-asr") == "healthy", what="healthy again")
    assert restart["by"] == "watchdog" and "no answer" in restart["reason"], restart
    assert job["status"] == "done" or job["error"], job  # never left running, never silent
